"""The MILP's first plan and bound from the envelope LP solved by the priced greedy
(`first_plan`): a plan of every row, and row prices whose bound is the envelope LP's optimum."""
import itertools
import time
from dataclasses import replace
from decimal import Decimal as D

import numpy as np
import pytest

from services.budget.optimizer import (
    Channel,
    Deal,
    Group,
    Hill,
    Incremental,
    Infeasible,
    Period,
    Problem,
    Reserve,
    first_plan,
    milp,
    period_prices,
    solve,
)
from services.budget.optimizer.backends import run_highs
from services.budget.optimizer.formulation import formulate
from services.budget.optimizer.milp import _envelopes, _objective, model_values
from services.budget.optimizer.problem import FIRST_TOLERANCE
from services.budget.optimizer.scaled import ScaledProblem
from services.budget.optimizer.windows import lagrangian
from tests.budget.test_optimizer_deals import best_by_enumeration, crowded
from tests.budget.test_optimizer_stop import check_plan_money, s_curves_and_deals
from tests.budget.test_period_prices import _capped_model, _holds, capped_problem


def floors_if_used(channels: int = 12, periods: int = 4) -> Problem:
    """`s_curves_and_deals` with a floor "if used" on every third curve: at its S-curves'
    tangent, above it, or on a concave curve where the plan spends less."""
    problem = s_curves_and_deals(channels, periods)
    return replace(problem, channels=tuple(
        replace(channel, min=D(40_000 + 20_000 * (i % 3)), min_if_used=True)
        if i % 3 == 1 and not isinstance(channel.response, Deal) else channel
        for i, channel in enumerate(problem.channels)))


def floors_if_used_in_a_group(share: str = "0.4") -> Problem:
    """`floors_if_used` (24 x 8) with every third channel in a brand group at `share`."""
    problem = floors_if_used(24, 8)
    return replace(problem, groups=(Group("brand", tuple(c.id for c in problem.channels[::3]),
                                          min_share=D(share)),))


CASES = [crowded(1), crowded(2), crowded(4, (1, 2, 4, 5)), s_curves_and_deals(),
         s_curves_and_deals(channels=24, periods=8), floors_if_used(),
         floors_if_used(channels=24, periods=8),
         # An incremental floor (6,000) makes c7 used: its `min` of 60,000 is a hard one,
         # which the plan with it relaxed missed (54,647).
         replace(floors_if_used(), incremental=Incremental({"c7": D(60_000)}, D("0.9"))),
         floors_if_used_in_a_group()]


@pytest.mark.parametrize("problem", CASES)
def test_the_first_plan_keeps_every_row_and_its_prices_bound_as_the_envelope_lp(problem):
    model = ScaledProblem(problem)
    cells = model.cells(FIRST_TOLERANCE, time.perf_counter() + 60)
    hulls = _envelopes(cells)
    envelope_model = formulate(model, hulls, exact=())
    found = first_plan.envelope_plan(model, hulls, time.perf_counter() + 60)
    assert found is not None
    plan = found.spend
    y = first_plan.row_prices(model, hulls, envelope_model, found.rows)
    # A plan of the whole model (every cell exact, deals whole): its columns meet every row.
    whole = formulate(model, cells)
    assert whole.feasible(whole.columns_for(cells, plan))
    # The prices bound every plan (L(y) holds at any prices); taken from the priced greedy's
    # proven optimum, they bound as tightly as HiGHS's own solve of the envelope LP (its
    # objective differs by the spend tie-break only, a 1e-9 of a unit spent).
    optimum = run_highs(envelope_model, 60, relax=True).bound
    assert optimum is not None
    bound = lagrangian(envelope_model, y)
    assert bound >= optimum * (1 - 1e-7)
    assert bound <= optimum * (1 + 1e-6)
    assert _objective(model, cells, plan) <= bound


def _counted_lps(monkeypatch) -> tuple[list[int], list[bool]]:
    """Each priced greedy LP's columns, and whether its columns met its rows, as solved."""
    sizes: list[int] = []
    planned: list[bool] = []
    restricted = period_prices._Restricted.solve

    def counted(lp, low, high, deadline, stop=None):
        answer = restricted(lp, low, high, deadline, stop)
        sizes.append(int((high - low).sum()))
        planned.append(answer is not None)
        return answer

    monkeypatch.setattr(period_prices._Restricted, "solve", counted)
    return sizes, planned


def test_with_groups_the_lps_after_a_widened_one_start_again_from_its_plan(monkeypatch):
    # Started from the relaxed solve's thresholds, the floors chosen leave columns that
    # cannot meet the channels' floors: the LP meets its rows only widened to 2,464 columns,
    # 4e-5 from its bound. The LPs after it had kept those columns and grown (2,481 and 2,485;
    # on a department's 160 x 52, seven LPs of 48,000-55,000 columns, 5 s of CPU); started
    # again from the segments its plan holds, they are 29 and 33 columns, and the plan is the
    # same (the first test holds it to the envelope LP).
    model = ScaledProblem(floors_if_used_in_a_group())
    hulls = _envelopes(model.cells(FIRST_TOLERANCE, time.perf_counter() + 60))
    relaxed = first_plan._solve(model, hulls, None, None, time.perf_counter() + 60, None)
    assert relaxed is not None
    spend, start, *_ = relaxed
    spent = np.bincount(hulls.channel, weights=spend, minlength=len(model.problem.channels))
    sizes, planned = _counted_lps(monkeypatch)
    assert first_plan._solve(model, hulls, first_plan._bought(hulls, spend),
                             first_plan._used(model, spent), time.perf_counter() + 60, None,
                             start) is not None
    # The last LP that met its rows after one that could not: the widened one.
    last = max(i for i in range(1, len(sizes)) if planned[i] and not planned[i - 1])
    assert last + 1 < len(sizes)
    assert max(sizes[last + 1:]) < sizes[last] / 4


def test_with_groups_floors_chosen_start_from_the_greedys_thresholds(monkeypatch):
    # Trial 19: with groups' shares, floors "if used" chosen past what the relaxed plan spends
    # on their channels left the relaxed solve's thresholds' columns short of the floors: three
    # LPs without a plan, then one widened to 2,464 columns here (77,000 at 150 x 52, 1.4 s of
    # CPU). From the greedy's thresholds, which meet the floors, every LP has a plan (12, 1,101
    # and 1,104 columns, as the relaxed solve's from the greedy) and the plan is the same (the
    # first test holds it to the envelope LP).
    model = ScaledProblem(floors_if_used_in_a_group())
    hulls = _envelopes(model.cells(FIRST_TOLERANCE, time.perf_counter() + 60))
    sizes, planned = _counted_lps(monkeypatch)
    assert first_plan.envelope_plan(model, hulls, time.perf_counter() + 60) is not None
    assert all(planned)
    assert max(sizes) < 2_000


def test_a_floor_if_used_the_relaxed_plan_spends_part_of_is_chosen_the_way_that_gains():
    # The relaxed plan spends 46.3 % of c19's floor, and rounding at half shuts it; used, the
    # envelope LP with the floors chosen earns 0.1 % more (1.8254 against 1.8236, the plan
    # with each choice solved alike). The first plan has tried it, and uses c19.
    model = ScaledProblem(floors_if_used_in_a_group())
    hulls = _envelopes(model.cells(FIRST_TOLERANCE, time.perf_counter() + 60))
    deadline = time.perf_counter() + 60
    relaxed = first_plan._solve(model, hulls, None, None, deadline, None)
    assert relaxed is not None
    channels = len(model.problem.channels)
    spent = np.bincount(hulls.channel, weights=relaxed[0], minlength=channels)
    used = first_plan._used(model, spent)
    c19 = next(c for c, channel in enumerate(model.problem.channels) if channel.id == "c19")
    floor = model.money(model.problem.channels[c19].min)
    assert 0.45 * floor < spent[c19] < 0.5 * floor and not used[c19]
    rounded = first_plan._solve(model, hulls, first_plan._bought(hulls, relaxed[0]), used,
                                deadline, None)
    assert rounded is not None
    found = first_plan.envelope_plan(model, hulls, deadline)
    assert found is not None
    assert np.bincount(hulls.channel, weights=found.spend, minlength=channels)[c19] >= \
        floor * (1 - 1e-9)
    assert float(model_values(hulls, found.spend).sum()) >= rounded[3] * (1 + 5e-4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_first_plan_buys_the_enumerations_deals_where_the_lp_buys_them_whole(seed):
    # Two deals over three capped periods: the envelope LP buys each deal whole or not at all
    # here, and the plan with those deals is within 1 % of the best of every choice.
    problem = crowded(seed)
    optimum, deals, _ = best_by_enumeration(problem)
    model = ScaledProblem(problem)
    cells = model.cells(FIRST_TOLERANCE, time.perf_counter() + 60)
    hulls = _envelopes(cells)
    found = first_plan.envelope_plan(model, hulls, time.perf_counter() + 60)
    assert found is not None
    assert _objective(model, cells, found.spend) >= optimum * (1 - 1e-2)


def test_a_request_of_s_curves_deals_caps_and_a_group_starts_without_the_highs_envelope_lp(
        monkeypatch):
    # The dept request of 200 x 52 (trial 18e): HiGHS's coarse envelope LP (84,000 columns on
    # 82 rows) took 6.7 s of CPU, and a 5 or 10 s limit answered no plan. Its start is now the
    # priced greedy's: the LP over every segment is not solved, and the answer is proven.
    def refused(*args, **kwargs):
        raise AssertionError("the coarse envelope LP was solved")
    monkeypatch.setattr(milp, "relax_then_fix", refused)
    problem = replace(s_curves_and_deals(channels=24, periods=8), time_limit=60)
    result = solve(problem)
    check_plan_money(problem, result)
    assert result.status == "optimal" and result.approximation_error <= 1e-3


def test_floors_if_used_start_from_the_priced_greedy_and_reach_the_enumerations_best(
        monkeypatch):
    # Trial 18h's 225 x 52 request with 28 floors "if used" started from HiGHS's coarse
    # envelope LP (9.7 s of its 20) and answered 46,739,203 with an error bound of 0.0997; the
    # envelope LP with each floor relaxed (spend from 0, its binary's LP relaxation) is
    # concave, the priced greedy's, and its plan with each floor's channel used or shut where
    # it spends at least half its floor answers 51,293,042 (error 0.0021). Here the answer
    # equals the best of every used-or-shut choice, each solved with the floor made hard.
    def refused(*args, **kwargs):
        raise AssertionError("the coarse envelope LP was solved")
    problem = replace(floors_if_used(channels=8, periods=2), time_limit=60)
    monkeypatch.setattr(milp, "relax_then_fix", refused)
    result = solve(problem)
    monkeypatch.undo()
    check_plan_money(problem, result)
    assert result.status == "optimal"
    floored = [i for i, channel in enumerate(problem.channels) if channel.min_if_used]
    best = D(0)
    for used in itertools.product((False, True), repeat=len(floored)):
        channels = list(problem.channels)
        for i, on in zip(floored, used):
            channels[i] = replace(channels[i], min_if_used=False, min=channels[i].min if on
                                  else None, max=channels[i].max if on else D(0))
        try:
            best = max(best, solve(replace(problem, channels=tuple(channels))).expected_return)
        except Infeasible:
            continue
    assert abs(result.expected_return - best) <= best * D("0.001")


def test_a_stop_during_the_first_plan_ends_it(monkeypatch):
    # The priced greedy lets a stop be on the concave route, whose proven plan is its only one;
    # here the MILP has an answer without this plan, and a cancel must be heard within a
    # second (a stop at 0.5 s of a 200 x 52 request was answered 1.6 s later).
    problem = s_curves_and_deals(channels=24, periods=8)
    model = ScaledProblem(problem)
    hulls = _envelopes(model.cells(FIRST_TOLERANCE, time.perf_counter() + 60))
    heard: list[bool] = []
    solved: list[int] = []
    late: list[bool] = []
    lp = period_prices._Restricted.solve

    def solve_lp(self, *args):
        late.append(bool(heard))
        answer = lp(self, *args)
        solved.append(1)
        return answer

    monkeypatch.setattr(period_prices._Restricted, "solve", solve_lp)
    # Unstopped, the plan takes four LPs: the stop comes after the first, second or third.
    for first in (1, 2, 3):
        heard.clear()
        solved.clear()

        def stop(first: int = first) -> bool:
            if len(solved) >= first:
                heard.append(True)
            return bool(heard)

        assert first_plan.envelope_plan(model, hulls, time.perf_counter() + 60, stop) is None
    assert late and not any(late)   # LPs were solved, none once the stop was heard


@pytest.mark.parametrize(("seed", "groups"), [(seed, seed % 3) for seed in range(5000, 5060)])
def test_scaled_plan_keeps_every_row_below_its_bound(seed, groups):
    # Concave curves (their own envelopes) under period caps and 0-2 groups' shares: the
    # greedy's plan scaled to the rows (`scaled_plan`) keeps every one of them, and the
    # greedy's optimum under the budget alone bounds the whole LP's optimum (the priced
    # greedy's, proven).
    model, cells = _capped_model(capped_problem(seed, groups=groups))
    relaxed, scaled = first_plan.scaled_plan(model, cells)
    proven, _ = period_prices.solve(model, cells)
    if proven is None:
        return
    bound = _objective(model, cells, relaxed)
    assert _objective(model, cells, proven.spend) <= bound * (1 + 1e-9) + 1e-12
    if scaled is not None:
        _holds(model, cells, scaled)
        assert _objective(model, cells, scaled) <= \
            _objective(model, cells, proven.spend) * (1 + 1e-9) + 1e-12


# Twelve S-curves over four weeks, the last four (the weakest) a brand group at `min_share` 0.3.
S_CURVES_WITH_A_BRAND = Problem(
    total=D(1_200_000), decimals=2, reserve=Reserve(percent=D(10)),
    channels=tuple(Channel(f"s{i}", Hill(D(900_000 - 50_000 * i), D(60_000 + 5_000 * i),
                                         D(2 + i % 3 * D("0.75"))))
                   for i in range(12)),
    periods=tuple(Period(f"w{p}", weight=D(w)) for p, w in enumerate(("1", "1.2", "0.9", "0.7"))),
    groups=(Group("brand", tuple(f"s{i}" for i in range(8, 12)), min_share=D("0.3")),))


def test_scaled_plan_splits_the_money_at_a_missed_share():
    # Trial 21's 1,000 x 52 S-curves with a brand group at min_share 0.3 of 250 channels, cut
    # small: the envelopes' greedy gives the brand less. Its members given 0.3 of the money
    # and the others the rest, each side by the greedy, is the envelope LP's optimum (no
    # period is capped): the priced greedy's, to float noise. With the others scaled down to
    # the share, the plan returned 43 % of it (the trial's: 70.1 M of 91.5 M).
    problem = S_CURVES_WITH_A_BRAND
    model = ScaledProblem(problem)
    hulls = _envelopes(model.cells(FIRST_TOLERANCE))
    relaxed, scaled = first_plan.scaled_plan(model, hulls)
    brand = np.isin(hulls.channel, model.members(problem.groups[0]))
    assert relaxed[brand].sum() < 0.3 * relaxed.sum()
    assert scaled is not None
    _holds(model, hulls, scaled)
    envelope = first_plan.envelope_plan(model, hulls, time.perf_counter() + 60)
    assert envelope is not None
    assert _objective(model, hulls, scaled) == pytest.approx(
        _objective(model, hulls, envelope.spend), rel=1e-7)


def test_scaled_plan_with_no_time_for_another_pass_scales_the_greedys_optimum(monkeypatch):
    # The greedy reads no clock: past `until` its plan is scaled down to the share (the
    # brand's others), with no pass of the greedy for the split.
    model = ScaledProblem(S_CURVES_WITH_A_BRAND)
    hulls = _envelopes(model.cells(FIRST_TOLERANCE))
    passes = []
    made = first_plan.greedy.solve

    def counted(*args):
        passes.append(1)
        return made(*args)

    monkeypatch.setattr(first_plan.greedy, "solve", counted)
    relaxed, scaled = first_plan.scaled_plan(model, hulls, time.perf_counter())
    assert len(passes) == 1 and scaled is not None
    _holds(model, hulls, scaled)
    brand = np.isin(hulls.channel, model.members(S_CURVES_WITH_A_BRAND.groups[0]))
    np.testing.assert_allclose(scaled[brand], relaxed[brand], rtol=1e-8)
