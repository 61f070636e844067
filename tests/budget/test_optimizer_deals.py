"""The deals' search (`deal_search` and the stage in `milp` that uses it): from a plan whose
deals are wrong it reaches the best deal choice, found here by enumeration (every choice's
fully gated MILP solved to optimality); stopped inside it, the solve answers a valid plan."""
import functools
import itertools
import time
import traceback
from dataclasses import replace
from decimal import Decimal as D

import highspy
import numpy as np
import pytest

from bench.optimizer import hard_problem
from services.budget.optimizer import (
    Channel,
    Deal,
    Group,
    Hill,
    Period,
    Problem,
    Reserve,
    first_plan,
    milp,
    solve,
)
from services.budget.optimizer.backends import bounding, run_highs
from services.budget.optimizer.formulation import formulate
from services.budget.optimizer.scaled import EPS, ScaledProblem
from services.budget.optimizer.solver import FIRST_TOLERANCE
from tests.budget.test_optimizer_stop import check_plan_money, s_curves_and_deals


def crowded(seed: int, steep: tuple[int, ...] = (1, 4)) -> Problem:
    """S-shaped (the channels `steep`) and concave channels over 3 periods of unequal weight
    under tight caps, with two deals: a deal's period decides which period's curves it crowds
    out."""
    rng = np.random.default_rng(seed)
    made = []
    for i in range(6):
        k = rng.uniform(60_000, 200_000)
        alpha = rng.uniform(2.5, 3.5) if i in steep else rng.uniform(0.8, 1.0)
        made.append(Channel(f"c{i}", Hill(D(int(k * rng.uniform(2.0, 4.0))), D(int(k)),
                                          D(str(round(alpha, 2))))))
    made += [Channel(f"deal{d}", Deal(D(cost), D(int(cost * rng.uniform(1.3, 1.8)))))
             for d, cost in enumerate(rng.integers(150_000, 300_000, 2).tolist())]
    total = D(1_200_000)
    periods = tuple(Period(f"p{p}", weight=D(w), cap=D(450_000))
                    for p, w in enumerate(("1.4", "0.7", "1.1")))
    return Problem(total=total, decimals=2, reserve=Reserve(percent=D(0)), channels=tuple(made),
                   periods=periods)


@functools.cache
def best_by_enumeration(problem: Problem, tolerance: float = FIRST_TOLERANCE
                        ) -> tuple[float, frozenset[int], float]:
    """Every deal choice (each deal in no period or one), its fully gated MILP solved to
    optimality on the curves cut within `tolerance` (or passed over where its LP relaxation
    cannot beat the best found, 1e-7 of room): the best objective (scaled, on the model's
    curves), its deals' cells, and its plan's return on the true curves (in money: a lower
    bound on the true optimum, within about `tolerance` of it). Made once per problem and
    tolerance: several tests compare with the same case."""
    model = ScaledProblem(problem)
    cells = model.cells(tolerance, time.perf_counter() + 60)
    form = formulate(model, cells)
    deal_columns = np.flatnonzero(form.integer & (form.cell_of >= 0))
    deal_columns = deal_columns[cells.is_deal[form.cell_of[deal_columns]]]
    by_deal: dict[int, list[int]] = {}
    for column in deal_columns:
        by_deal.setdefault(cells[int(form.cell_of[column])].channel, []).append(int(column))
    fixed = []
    for choice in itertools.product(*([None, *columns] for columns in by_deal.values())):
        lower, upper = form.col_lower.copy(), form.col_upper.copy()
        lower[deal_columns], upper[deal_columns] = 0.0, 0.0
        bought = [c for c in choice if c is not None]
        lower[bought], upper[bought] = 1.0, 1.0
        chosen = replace(form, col_lower=lower, col_upper=upper)
        relaxed = run_highs(chosen, 60, relax=True)
        if relaxed.bound is not None:
            fixed.append((relaxed.bound, chosen, bought))
    # Most promising first (by the LP relaxation's bound); a choice whose bound is no better
    # than the best plan found cannot beat it (the fine curves' MILPs took 18 s of CPU, most
    # of one test's time, solved for every choice).
    fixed.sort(key=lambda entry: -entry[0])
    best: tuple[float, frozenset[int], float] = (-np.inf, frozenset(), 0.0)
    for bound, chosen, bought in fixed:
        if bound <= best[0]:
            break
        run = run_highs(chosen, 60, gap=1e-7)
        if run.x is None:
            continue
        assert run.status == "optimal"
        spend = form.cell_spend(run.x, len(cells))
        objective = milp._objective(model, cells, spend)
        if objective > best[0]:
            true = float(model.true_returns(cells, spend).sum()) * model.unit
            best = objective, frozenset(int(form.cell_of[c]) for c in bought), true
    return best


def _no_deals(form, cells, x):
    """The first plan's deals made wrong: none bought."""
    rounded = x.copy()
    rounded[form.integer & (form.cell_of >= 0)] = 0.0
    return rounded


def _none_bought(hulls, spend):
    """`first_plan`'s deals made wrong: none bought."""
    return {}


# The last case: four S-curves, and the LP the search ends on leaves one inside its convex
# start; its settling decides it as the enumeration's optimum has it (decided "below the
# stretch" instead, the plan is 0.12 % short).
@pytest.mark.parametrize(("seed", "steep"), [(1, (1, 4)), (2, (1, 4)), (3, (1, 4)),
                                             (4, (1, 2, 4, 5))])
def test_the_stage_finds_the_best_deals_from_a_plan_whose_deals_are_wrong(seed, steep,
                                                                         monkeypatch):
    problem = crowded(seed, steep)
    optimum, deals, _ = best_by_enumeration(problem)
    assert deals, "a case where buying no deal is best tests nothing"
    monkeypatch.setattr(milp, "_rounded", _no_deals)
    monkeypatch.setattr(first_plan, "_bought", _none_bought)
    staged: list[tuple[float, float | None]] = []
    stage = milp._deal_plan

    def spied(model, cells, form, spend, deadline, stop):
        found = stage(model, cells, form, spend, deadline, stop)
        staged.append((milp._objective(model, cells, spend), None if found is None else found[1]))
        if found is not None:
            bought = {i for i in np.flatnonzero(cells.is_deal) if found[0][i] > 0}
            assert bought == deals
        return found
    monkeypatch.setattr(milp, "_deal_plan", spied)
    result = solve(replace(problem, time_limit=60))
    check_plan_money(problem, result)
    # The stage ran once from the start that bought no deal and reached the enumeration's
    # best choice, its settled plan that choice's optimum (up to the LPs' float noise: the
    # S-curve cells it left inside a stretch decided as the fully gated MILP has them).
    assert len(staged) == 1
    start, found = staged[0]
    assert found is not None and found > start
    assert found >= optimum * (1 - 1e-6)
    model = ScaledProblem(problem)
    assert float(result.expected_return) / model.unit >= optimum * (1 - 1e-3)


def test_an_lp_past_its_own_end_leaves_the_highs_to_the_next():
    # The search's LPs end at its share of the stage's time, the settling's at the stage's
    # end, on one HiGHS: an LP asked for past its own end answers "none" and the next one is
    # solved (were the HiGHS given up, the settling would have no time left).
    model = ScaledProblem(crowded(1))
    form = formulate(model, model.cells(FIRST_TOLERANCE, time.perf_counter() + 60), exact=())
    solve = bounding(form, 60)
    assert solve(form.col_lower, form.col_upper, time.perf_counter()).status == "none"
    assert solve(form.col_lower, form.col_upper).status == "optimal"


def test_the_lps_on_one_highs_are_solved_to_its_end():
    # HiGHS holds a time limit against all the runs of one Highs: the search's LPs, each given
    # the time left, ended unsolved (`kTimeLimit`, no iteration) once the runs before had
    # taken that long; these LPs (9,848 columns, every curve's room cut and given back in
    # turn) take most of the loop's time, so it happened from about 0.9 s on. The loop ends
    # 1 s before the HiGHS's time: its last LP, started just before, has that long on a busy
    # machine (0.1 s was seen run out at load 8), and the runs before it still take longer
    # than half the HiGHS's time.
    model = ScaledProblem(s_curves_and_deals(channels=24, periods=8))
    form = formulate(model, model.cells(FIRST_TOLERANCE, time.perf_counter() + 60), exact=())
    curve = (form.cell_of >= 0) & ~form.integer
    cut = np.where(curve, 0.6 * form.col_upper, form.col_upper)
    solve = bounding(form, 3.0)
    end = time.perf_counter() + 2.0
    statuses, n = set(), 0
    while time.perf_counter() < end:
        statuses.add(solve(form.col_lower, cut if n % 2 else form.col_upper).status)
        n += 1
    assert statuses == {"optimal"}


@pytest.mark.parametrize(("seed", "settled"), [(1, True), (2, True), (3, False)])
def test_deals_searched_on_the_coarse_curves_start_a_plan_within_the_promise(seed, settled,
                                                                             monkeypatch):
    # Where the real curves' model is too big for the search's LPs (100 x 26 other shapes:
    # 146,000 columns, seconds each), the deals are searched for and settled on the coarse
    # curves' model narrowed alike (29,000), and the plan polished on the real curves. Made to
    # happen here (SEARCH_COLUMNS 0), from a start that buys no deal: the stage's plan beats
    # the start, and the answer keeps its promise against the enumeration's optimum. With no
    # time to settle (`settle` answering None), the search's own LP point is the plan.
    problem = crowded(seed)
    optimum, _, _ = best_by_enumeration(problem)
    monkeypatch.setattr(milp, "_rounded", _no_deals)
    monkeypatch.setattr(first_plan, "_bought", _none_bought)
    monkeypatch.setattr(milp, "SEARCH_COLUMNS", 0)
    # From the coarse envelope LP's plan: `first_plan`'s prices can narrow the real curves'
    # model as far as the coarse one (seed 2: 183 columns each).
    monkeypatch.setattr(milp.first_plan, "envelope_plan", lambda *args: None)
    if not settled:
        monkeypatch.setattr(milp.deal_search, "settle", lambda *args: None)
    staged: list[tuple[int, float, float | None]] = []
    stage = milp._deal_plan

    def spied(model, cells, form, spend, deadline, stop):
        found = stage(model, cells, form, spend, deadline, stop)
        staged.append((len(form.cost), milp._objective(model, cells, spend),
                       None if found is None else found[1]))
        return found
    monkeypatch.setattr(milp, "_deal_plan", spied)
    run, bound = milp.run_highs, milp._deal_bound
    # The real curves' models the plan is proven on: HiGHS's MILP's or the deals' bound's.
    proofs: list[int] = []

    def counted(form, seconds, **options):
        if not options.get("relax"):
            proofs.append(len(form.cost))
        return run(form, seconds, **options)

    def bounded(form, *args):
        proofs.append(len(form.cost))
        return bound(form, *args)
    monkeypatch.setattr(milp, "run_highs", counted)
    monkeypatch.setattr(milp, "_deal_bound", bounded)
    result = solve(replace(problem, time_limit=60))
    check_plan_money(problem, result)
    assert len(staged) == 1
    columns, start, found = staged[0]
    assert found is not None and found > start
    assert proofs and columns < min(proofs)   # searched on the coarse curves' model
    model = ScaledProblem(problem)
    reach = float(result.expected_return) * (1 + result.approximation_error)
    assert optimum * model.unit <= reach * (1 + 1e-6)
    assert result.status == "optimal"
    assert float(result.expected_return) / model.unit >= optimum * (1 - 1e-3)


@pytest.mark.parametrize(("stage", "calls"), [("value", 2), ("settled", 1), ("settle", 1)])
def test_a_stop_inside_the_stage_answers_a_valid_plan(stage, calls, monkeypatch):
    problem = crowded(1)
    monkeypatch.setattr(milp, "_rounded", _no_deals)
    monkeypatch.setattr(first_plan, "_bought", _none_bought)
    stages = stage_lps(monkeypatch)
    # Stopped inside the stage: in the search (its second LP, `value`), in the settling of its
    # plan (its first LP, `settled`) or in the flips after it (`settle`), the solve answers the
    # best plan it has, whole deals and caps kept, with a gap that is a proof. The LP asked for
    # when the stop turned true answers at once, as does at most one more on the way out.
    result = solve(replace(problem, time_limit=60), stop=lambda: stages.count(stage) >= calls)
    assert stages.count(stage) == calls and len(stages) <= stages.index(stage) + calls + 1
    check_plan_money(problem, result)
    assert result.status in ("optimal", "feasible") and result.gap is not None
    optimum, _, _ = best_by_enumeration(problem)
    model = ScaledProblem(problem)
    reach = float(result.expected_return) * (1 + result.gap) * (1 + result.approximation_error)
    assert optimum * model.unit <= reach * (1 + 1e-6)


def stage_lps(monkeypatch) -> list[str]:
    """The stage's LPs as they are solved, each named by the function that asked for it."""
    bounding = milp.bounding
    stages: list[str] = []

    def counted(form, seconds, stop=None, start=None):
        solve = bounding(form, seconds, stop, start)

        def each(lower, upper, until=None):
            stages.append(traceback.extract_stack()[-2].name)
            return solve(lower, upper, until)
        return each
    monkeypatch.setattr(milp, "bounding", counted)
    return stages


def test_a_flip_whose_lp_does_not_beat_the_plan_is_not_settled(monkeypatch):
    # Four S-curves, and the settling's flips after its plan: settling the flips whose LPs
    # were worth no more than the plan took 2 LPs more (5 in `settled`, now 3). The answer is
    # the same plan, the enumeration's optimum.
    problem = crowded(3, (1, 2, 4, 5))
    stages = stage_lps(monkeypatch)
    result = solve(replace(problem, time_limit=60))
    assert stages.count("settle") == 3 and stages.count("settled") == 3
    assert result.status == "optimal" and result.expected_return == D("2153685.55")
    optimum, _, _ = best_by_enumeration(problem)
    assert float(result.expected_return) / ScaledProblem(problem).unit >= optimum * (1 - 1e-3)


def test_a_flip_its_plans_prices_bound_below_the_plan_is_not_solved(monkeypatch):
    # The other shapes at 20 x 6: of the settling's two flips, the best plan's LP prices bound
    # one no higher than the plan (L(y) with the flip's bounds), and its LP is not solved (2
    # before); the answer is the same plan.
    stages = stage_lps(monkeypatch)
    result = solve(hard_problem(20, 6, 4, seed=5))
    assert stages.count("settle") == 1
    assert result.status == "optimal" and result.expected_return == D("5942558.12")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_answers_error_bound_holds_against_the_true_curves_optimum(seed, monkeypatch):
    # `approximation_error` bounds how far the true optimum can lie above the answer, the
    # MILP's gap included, and `optimal` means that bound is within 0.1 %: the status no
    # longer asks the gap to fit beside it a second time. The reference is the best plan of
    # every deal choice on curves cut 10 times finer, scored on the true curves (a plan, so at
    # most the true optimum; 4e-6 below the one cut 40 times finer, seed 1). Stopped at its
    # first plan (no deal bought, far from the optimum) the answer's bound is loose and must
    # still hold; run to the end it is `optimal`, and within 0.1 % of the reference.
    problem = replace(crowded(seed), time_limit=60)
    _, _, reference = best_by_enumeration(problem, FIRST_TOLERANCE / 10)
    monkeypatch.setattr(milp, "_rounded", _no_deals)
    monkeypatch.setattr(first_plan, "_bought", _none_bought)
    heard: list = []
    first = solve(problem, heard.append, stop=lambda: bool(heard))
    full = solve(problem)
    for result in (first, full):
        check_plan_money(problem, result)
        assert result.gap is not None
        reach = float(result.expected_return) * (1 + result.approximation_error)
        assert reference <= reach * (1 + 1e-8) + 0.02
    assert float(first.expected_return) < reference * (1 - 1e-2)   # a bound worth testing
    assert full.status == "optimal" and full.approximation_error <= 1e-3
    assert reference <= float(full.expected_return) * (1 + 1e-3)


def test_a_new_users_s_curve_deal_and_group_request_is_optimal_only_at_its_optimum():
    # A new user's request (trial 18c, `t02_s2_1`): an S-curve and a deal in a 40 % group, a
    # "min if used" channel, a capped period. HiGHS at a MIP tolerance of 1e-9 answered the
    # narrowed model `optimal` 5.8 % short (tv at the group's 53,000 where 166,500 is best).
    problem = Problem(
        total=D(300_000), decimals=2, reserve=Reserve(percent=D(5)), time_limit=30,
        channels=(Channel("tv", Hill(D(1_145_000), D(338_000), D("3.36"))),
                  Channel("search", Hill(D(733_000), D(278_000), D("0.94")), max=D(197_000)),
                  Channel("kol", Deal(D(61_000), D(366_000))),
                  Channel("social", Hill(D(536_000), D(106_000), D("1.43")), min=D(52_000),
                          min_if_used=True)),
        periods=(Period("p0", weight=D("0.82"), cap=D(81_581)), Period("p1", weight=D("1.06"))),
        groups=(Group("brand", ("tv", "kol"), min_share=D("0.4")),))
    _, _, reference = best_by_enumeration(problem, FIRST_TOLERANCE / 10)
    result = solve(problem)
    check_plan_money(problem, result)
    assert result.status == "optimal"
    assert reference <= float(result.expected_return) * (1 + result.approximation_error) + 0.02
    assert reference <= float(result.expected_return) * (1 + 1e-3)


def test_a_milps_budget_price_is_its_fixed_lps_from_the_plan(monkeypatch):
    # The budget's price of a MILP's plan is the dual of its LP with the binaries fixed. By
    # presolve and simplex that LP took 1.0 s of CPU at 50 x 13 other shapes once the plan was
    # proven (presolve most of it), by interior point 0.38 s, by simplex from the plan's
    # values 0.02 s; the price is the same.
    runs: list[tuple[object, dict, object]] = []

    def recorded(form, seconds, **options):
        run = run_highs(form, seconds, **options)
        runs.append((form, options, run))
        return run
    monkeypatch.setattr(milp, "run_highs", recorded)
    result = solve(replace(crowded(1), time_limit=60))
    assert result.status == "optimal"
    form, options, run = runs[-1]
    assert options.get("relax") and options.get("start") is not None, "the LP from the plan"
    assert not form.integer.any() or np.all(form.col_lower[form.integer] ==
                                            form.col_upper[form.integer])
    by_simplex = run_highs(form, 60, relax=True)
    budget = form.row_index("budget")
    assert run.row_dual[budget] == pytest.approx(by_simplex.row_dual[budget], rel=1e-6)


def test_the_lps_on_one_highs_are_passed_only_the_bounds_they_change(monkeypatch):
    # Passing every column's bounds took 5 ms of the search's 12 ms LPs at 50 x 13 other
    # shapes (25,000 columns); each LP is still solved as a HiGHS of its own solves it.
    model = ScaledProblem(crowded(1))
    form = formulate(model, model.cells(FIRST_TOLERANCE, time.perf_counter() + 60), exact=())
    curve = np.flatnonzero((form.cell_of >= 0) & ~form.integer)
    cut = form.col_upper.copy()
    cut[curve[:3]] = 0.0
    calls = [form.col_upper, cut, cut, form.col_upper]
    alone = [bounding(form, 60)(form.col_lower, upper).objective for upper in calls]
    passed: list[int] = []
    change = highspy.Highs.changeColsBounds

    def counted(highs, count, *rest):
        passed.append(count)
        return change(highs, count, *rest)
    monkeypatch.setattr(highspy.Highs, "changeColsBounds", counted)
    solve = bounding(form, 60)
    assert [solve(form.col_lower, upper).objective for upper in calls] == \
        pytest.approx(alone, rel=1e-9)
    assert passed == [3, 3]


def test_the_first_lp_on_one_highs_starts_from_the_plan_given(monkeypatch):
    # The search's first LP at 50 x 13 other shapes took 0.46 s of CPU from no basis (a cold
    # dual simplex on many thin columns), 0.02 s from the plan's values.
    model = ScaledProblem(s_curves_and_deals(channels=24, periods=8))
    form = formulate(model, model.cells(FIRST_TOLERANCE, time.perf_counter() + 60), exact=())
    deals = np.flatnonzero(form.integer)
    lower, upper = form.col_lower.copy(), form.col_upper.copy()
    upper[deals[::2]] = 0.0   # the first call changes bounds, which drops a start given before
    iterations: list[int] = []
    run = highspy.Highs.run

    def counted(highs):
        status = run(highs)
        iterations.append(highs.getInfo().simplex_iteration_count)
        return status
    monkeypatch.setattr(highspy.Highs, "run", counted)
    cold = bounding(form, 60)(lower, upper)
    started = bounding(form, 60, start=cold.x)(lower, upper)
    assert started.objective == pytest.approx(cold.objective, rel=1e-9)
    assert iterations[0] > 5 and iterations[1] <= 1, iterations


def test_the_cells_inside_a_stretch_are_found_on_stretches_made_once():
    # The settling asks after each LP which cells its plan leaves inside a non-concave stretch
    # (26 times at 50 x 13 other shapes: 0.29 s of CPU when each call made every curve's
    # stretches again). Found here against each curve's hull, at spends on and around its
    # breakpoints.
    model = ScaledProblem(s_curves_and_deals(channels=24, periods=8))
    cells = model.cells(FIRST_TOLERANCE, time.perf_counter() + 60)
    made = cells.stretches
    rng = np.random.default_rng(0)
    upper = np.array([0.0 if c.segments is None else float(c.segments.lengths.sum())
                      for c in cells])
    for _ in range(20):
        spend = upper * rng.uniform(0.0, 1.0, len(cells)) ** 3
        expected = []
        for i, cell in enumerate(cells):
            seg = cell.segments
            if seg is None or not seg.gated:
                continue
            knots = np.concatenate([[0.0], np.cumsum(seg.lengths)])[seg.hull]
            if any(low + EPS < spend[i] < high - EPS and j + 1 < k
                   for low, high, j, k in zip(knots, knots[1:], seg.hull, seg.hull[1:])):
                expected.append(i)
        assert expected, "spends inside no stretch test nothing"
        assert milp._inside_envelope(cells, spend, frozenset()) == expected
        assert milp._inside_envelope(cells, spend, frozenset(expected[:1])) == expected[1:]
    assert cells.stretches is made
