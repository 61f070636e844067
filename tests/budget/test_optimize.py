"""The optimizer's model, case by case (no database, no HTTP)."""
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
    Linear,
    Period,
    Points,
    Problem,
    Progress,
    Reserve,
    check_problem,
    solve,
)
from services.budget.optimizer.curves import hill
from services.budget.optimizer.rounding import largest_remainder
from services.budget.optimizer.scaled import ScaledProblem


def problem(*channels, total="1000000", reserve=None, **kwargs) -> Problem:
    return Problem(total=D(total), decimals=kwargs.pop("decimals", 2), channels=channels,
                   reserve=reserve or Reserve(), **kwargs)


def amounts(result) -> dict[str, D]:
    return {a.channel: a.amount for a in result.allocations}


def assert_adds_up(result) -> None:
    assert result.spend == sum(a.amount for a in result.allocations)
    assert result.spend + result.reserve + result.unspent == result.total
    assert result.unspent >= 0


def test_solve_linear_fills_best_roi_up_to_its_max():
    result = solve(problem(Channel("search", Linear(D("2.1")), max=D("400000")),
                           Channel("email", Linear(D("1.5"))),
                           reserve=Reserve(percent=D("10"))))
    assert result.reserve == D("100000.00")
    assert amounts(result) == {"search": D("400000.00"), "email": D("500000.00")}
    assert result.expected_return == D("1590000.00")
    assert result.marginal_value_of_budget == D("1.5")
    assert set(result.binding_constraints) == {"budget", "max:search"}
    assert result.status == "optimal"
    assert_adds_up(result)


def test_solve_fixed_reserve_is_held_back_exactly():
    result = solve(problem(Channel("search", Linear(D("2"))), total="1000.05",
                           reserve=Reserve(amount=D("123.45"))))
    assert result.reserve == D("123.45")
    assert result.spend == D("876.60")
    assert_adds_up(result)


def test_solve_percent_reserve_rounds_half_even_to_the_minor_unit():
    result = solve(problem(Channel("search", Linear(D("2"))), total="1000.05",
                           reserve=Reserve(percent=D("10"))))
    assert result.reserve == D("100.00")   # 100.005 → 100.00 (half to even)
    assert_adds_up(result)


def test_solve_yen_has_no_decimals():
    result = solve(problem(Channel("a", Linear(D("2"))), Channel("b", Hill(D(5e6), D(1e6), D("0.8"))),
                           total="10000001", decimals=0, reserve=Reserve(percent=D("7"))))
    assert all(a.amount == a.amount.to_integral_value() for a in result.allocations)
    assert result.reserve == D("700000")
    assert_adds_up(result)


def test_largest_remainder_gives_the_missing_cents_to_the_largest_fractions():
    assert largest_remainder([3333.33, 3333.33, 3333.34], 10000, [0, 0, 0], [10**6] * 3) == \
        [3333, 3333, 3334]
    assert largest_remainder([10.6, 20.7, 30.2], 62, [0, 0, 0], [10, 100, 100]) == [10, 21, 31]
    assert largest_remainder([10.6, 20.7], 30, [11, 0], [100, 100]) == [11, 19]


def test_largest_remainder_fills_a_far_target_by_whole_rounds():
    # 3,000,000 units over 0.5 + 1.5 + 2.5 (floors 0, 1, 2): the second stops at its cap of
    # 10, and the first and third take the rest, 2,999,990, in equal whole rounds of
    # 1,499,994 on their floors 0 and 2 (the third's cap of 2,000,000 is never reached). A
    # unit a round took about a second here.
    assert largest_remainder([0.5, 1.5, 2.5], 3_000_000, [0, 0, 0],
                             [float("inf"), 10, 2_000_000.0]) == [1_499_994, 10, 1_499_996]


def test_solve_s_curves_concentrates_where_a_local_solver_splits():
    # Two identical S-curves and money for one: spending it all on one channel returns far more
    # than the even split a gradient method started from the middle stays at.
    curve = Hill(D("1000000"), D("300000"), D("3"))
    result = solve(problem(Channel("a", curve), Channel("b", curve), total="400000"))
    spent = sorted(amounts(result).values())
    assert spent == [D("0.00"), D("400000.00")]
    even = 2 * 1000000 * (200000 / 300000) ** 3 / (1 + (200000 / 300000) ** 3)
    assert result.expected_return > D(even) * D("1.3")


def test_solve_non_concave_points_finds_the_global_optimum():
    # Nothing comes back below 60k: a concave relaxation would spread money over both.
    late = Points(((D(0), D(0)), (D(60000), D(6000)), (D(100000), D(300000))))
    result = solve(problem(Channel("late", late), Channel("steady", Linear(D("1.2"))), total="100000"))
    assert amounts(result) == {"late": D("100000.00"), "steady": D("0.00")}
    assert result.expected_return == D("300000.00")


def test_solve_buys_a_deal_only_when_it_beats_the_alternative():
    good = solve(problem(Channel("kol", Deal(D("80000"), D("240000"))),
                         Channel("search", Linear(D("2"))), total="100000"))
    assert amounts(good) == {"kol": D("80000.00"), "search": D("20000.00")}
    bad = solve(problem(Channel("kol", Deal(D("80000"), D("150000"))),
                        Channel("search", Linear(D("2"))), total="100000"))
    assert amounts(bad) == {"kol": D("0.00"), "search": D("100000.00")}
    assert bad.allocations[0].marginal_roi is None


def test_solve_min_if_used_is_zero_or_at_least_min():
    channels = (Channel("tv", Linear(D("1.9")), min=D("500000"), min_if_used=True),
                Channel("search", Linear(D("2")), max=D("300000")),
                Channel("email", Linear(D("1.1"))))
    small = solve(problem(*channels, total="400000"))
    assert amounts(small)["tv"] == 0
    large = solve(problem(*channels, total="900000"))
    assert amounts(large)["tv"] == D("600000.00")


def _best_by_enumeration(min_a: int, tolerance: float) -> float:
    """The most a + 3b + 2c over every plan in steps of 1,000 that keeps the rule as the README
    states it: a "min if used" channel a with an incremental floor above 0 is used, at least
    max(min, floor); it may be 0 only where that floor is 0; b within its tolerance; c ≤ 20,000;
    a + b + c ≤ 100,000."""
    steps = np.arange(0, 100_001, 1_000)
    a, b, c = np.meshgrid(steps, steps, steps[steps <= 20_000], indexing="ij")
    floor, cap = 60_000 * (1 - tolerance), 60_000 * (1 + tolerance)
    a_ok = (a <= cap) & ((a >= max(min_a, floor)) | ((a == 0) & (floor <= 0)))
    ok = a_ok & (b >= floor) & (b <= cap) & (a + b + c <= 100_000)
    return float((a + 3 * b + 2 * c)[ok].max())


@pytest.mark.parametrize(("min_a", "tolerance"), [(10_000, "0.5"), (40_000, "0.5"),
                                                  (10_000, "0.9"), (10_000, "1")])
def test_min_if_used_keeps_its_incremental_floor_in_the_model(min_a, tolerance):
    # The MILP dropped a's incremental floor (previous 60,000 − tolerance): at 50 % it left a
    # unused for b's 3.0 and c's 2.0 (a + 3b + 2c = 290,000 at a = 0, b = 90,000, c = 10,000)
    # where a must keep 30,000 (240,000). At 90 % the floor, 6,000, is below the min: a used
    # takes 10,000 (280,000); at 100 % a may go unused (300,000).
    from services.budget.optimizer.backends import run_highs
    from services.budget.optimizer.formulation import formulate
    request = problem(Channel("a", Linear(D(1)), min=D(min_a), min_if_used=True),
                      Channel("b", Linear(D(3))), Channel("c", Linear(D(2)), max=D(20_000)),
                      total="100000",
                      incremental=Incremental({"a": D(60_000), "b": D(60_000)}, D(tolerance)))
    best = _best_by_enumeration(min_a, float(tolerance))
    model = ScaledProblem(request)
    form = formulate(model, model.cells(4e-4))
    run = run_highs(form, 10.0)
    assert run.x is not None
    assert float(form.return_of @ run.x) * model.unit == pytest.approx(best, rel=1e-9)
    assert solve(request).expected_return == D(best)


def test_solve_hard_min_is_a_floor():
    result = solve(problem(Channel("print", Linear(D("0.5")), min=D("100000")),
                           Channel("search", Linear(D("2"))), total="300000"))
    assert amounts(result)["print"] == D("100000.00")
    assert "min:print" in result.binding_constraints


def test_solve_group_share_holds():
    result = solve(problem(Channel("search", Linear(D("3"))),
                           Channel("video", Hill(D("500000"), D("200000"), D("1"))),
                           Channel("kol", Deal(D("50000"), D("60000"))),
                           groups=(Group("brand", ("video", "kol"), min_share=D("0.4")),),
                           total="500000"))
    a = amounts(result)
    assert a["video"] + a["kol"] >= D("0.4") * result.spend - D("0.02")
    assert "group_min:brand" in result.binding_constraints


def test_solve_periods_respect_caps_and_weights():
    periods = (Period("warmup", weight=D("0.5"), cap=D("100000")),
               Period("burst", weight=D("1.5"), cap=D("300000")),
               Period("sustain", weight=D("1")))
    result = solve(problem(Channel("social", Hill(D("600000"), D("150000"), D("0.9"))),
                           Channel("search", Linear(D("1.2"))),
                           periods=periods, total="600000"))
    by_period = {}
    for allocation in result.allocations:
        assert sum(p.amount for p in allocation.periods) == allocation.amount
        assert sum(p.expected_return for p in allocation.periods) == allocation.expected_return
        for p in allocation.periods:
            by_period[p.period] = by_period.get(p.period, D(0)) + p.amount
    assert by_period["warmup"] <= D("100000")
    assert by_period["burst"] == D("300000.00")
    assert "period_cap:burst" in result.binding_constraints
    assert_adds_up(result)


def test_solve_incremental_keeps_channels_near_the_previous_plan():
    previous = {"search": D("500000"), "video": D("500000")}
    result = solve(problem(Channel("search", Linear(D("3"))),
                           Channel("video", Hill(D("400000"), D("200000"), D("1"))),
                           incremental=Incremental(previous, D("0.1"))))
    assert amounts(result) == {"search": D("550000.00"), "video": D("450000.00")}
    assert result.allocations[0].binding == ("incremental_max",)


def test_solve_min_spend_reaches_the_target_at_least_cost():
    result = solve(problem(Channel("search", Linear(D("3")), max=D("100000")),
                           Channel("email", Linear(D("2"))),
                           objective="min_spend", target_return=D("500000")))
    assert amounts(result) == {"search": D("100000.00"), "email": D("100000.00")}
    assert result.unspent == D("800000.00")
    assert "target_return" in result.binding_constraints


def test_solve_max_profit_stops_where_a_unit_returns_a_unit():
    curve = Hill(D("1000000"), D("250000"), D("1"))   # slope 1 at s = 250000: profit 250000
    result = solve(problem(Channel("video", curve), objective="max_profit"))
    assert D("249750") <= result.expected_return - result.spend <= D("250000")
    assert abs(result.spend - D("250000")) < D("10000")
    assert result.unspent > 0


def test_solve_target_roi_keeps_return_over_spend():
    result = solve(problem(Channel("video", Hill(D("1000000"), D("250000"), D("1"))),
                           objective="target_roi", target_roi=D("2")))
    assert result.expected_return >= 2 * result.spend
    assert abs(result.spend - D("250000")) < D("1000")   # 1e6 s/(s+k) = 2 s


def test_solve_target_roi_meets_its_target_on_the_rounded_plan():
    # Trial 18d (`troi_hill_3000`): a concave Hill curve earns without bound per unit near 0,
    # so a target of 3,000 is met by a few cents; the plan was rounded to 0.05 returning
    # 144.09 (2,881.8 per unit). Its average return falls as it grows: 0.04 returns
    # 879000 · r / (1 + r), r = (0.04 / 168000)^0.58, = 126.60 (3,165 per unit).
    result = solve(Problem(total=D(1_000_000), decimals=2, objective="target_roi",
                           target_roi=D(3000), time_limit=10,
                           channels=(Channel("h", Hill(D(879_000), D(168_000), D("0.58"))),)))
    assert result.spend > 0
    assert result.expected_return >= 3000 * result.spend
    assert (result.spend, result.expected_return) == (D("0.04"), D("126.60"))


@pytest.mark.parametrize(("objective", "price"), [({"objective": "max_return"}, D("2.5")),
                                                   ({"objective": "target_roi",
                                                     "target_roi": D("1.5")}, D("2.5")),
                                                   ({"objective": "max_profit"}, D("1.5"))])
def test_solve_with_nothing_to_spend_prices_the_next_unit_where_it_would_go(objective, price):
    # Trial 18d (`edge_total_0`, `edge_troi_total0`): with a total of 0 the budget's price was
    # 0 under max_return and a deal's value per unit (which one unit cannot buy) under
    # target_roi. The next unit goes to the linear channel in w1: 2 × 1.25 (w2 is capped at 0,
    # the S-curve's slope at 0 is 0, the deal needs 80,000); under max_profit, less 1.
    result = solve(Problem(
        total=D(0), decimals=2, **objective,
        channels=(Channel("search", Linear(D(2))), Channel("tv", Hill(D(10 ** 6), D(10 ** 5), D(3))),
                  Channel("kol", Deal(D(80_000), D(800_000)))),
        periods=(Period("w1", weight=D("1.25")), Period("w2", weight=D("1.5"), cap=D(0)))))
    assert result.spend == 0
    assert result.marginal_value_of_budget == price


def test_target_roi_with_nothing_to_spend_and_no_cell_answers_the_empty_plan():
    # Trial 18f `v14`, sent again after session eight's merges: the check that a target is
    # past every cell's best ROI, run before any solve, met no cell at all (a total of 0) and
    # crashed (numpy's repeat of an empty float array, a 500). Spending nothing is the plan.
    result = solve(Problem(
        total=D(0), decimals=2, objective="target_roi", target_roi=D(1),
        channels=(Channel("x", Linear(D(1))), Channel("y", Linear(D(4)))),
        groups=(Group("g", ("y",), min_share=D("0.3"), max_share=D("0.6")),),
        periods=(Period("p1", weight=D(2), cap=D(0)), Period("p2", weight=D("0.5")))))
    assert (result.status, result.spend, result.expected_return) == ("optimal", 0, 0)


def test_solve_names_a_lowered_target_that_is_enough_alone_apart_from_the_set():
    # Trial 18d (`obj_min_spend_9000000000`): a target no curve reaches was answered as one
    # set, "all of these together": the budget raised, caps raised and the target lowered,
    # though the target lowered a little more needs none of the rest. The plan that spends
    # all 300,000 returns at most 2 × 100,000 + 1,000,000 × 200,000 / 300,000 = 866,666.67,
    # so lowered alone the target drops by at least 10,000,000 − 866,666.67.
    asked = problem(Channel("search", Linear(D(2)), max=D(100_000)),
                    Channel("video", Hill(D(1_000_000), D(100_000), D(1))),
                    total="300000", objective="min_spend", target_return=D(10_000_000))
    with pytest.raises(Infeasible) as caught:
        solve(asked)
    conflicts = caught.value.conflicts
    alone = [c for c in conflicts if c.alone]
    assert [c.constraint for c in alone] == ["target_return"]
    assert len([c for c in conflicts if not c.alone]) > 1
    assert alone[0].change >= D("9133333.33")
    fixed = solve(replace(asked, target_return=asked.target_return - alone[0].change))
    assert fixed.expected_return >= asked.target_return - alone[0].change


def test_solve_cbc_agrees_with_highs():
    base = problem(Channel("video", Hill(D("900000"), D("250000"), D("2.2")), min=D("50000")),
                   Channel("kol", Deal(D("80000"), D("240000"))),
                   Channel("social", Points(((D(0), D(0)), (D(100000), D(250000)), (D(300000), D(420000))))),
                   total="600000")
    highs, cbc = solve(base), solve(replace(base, solver="cbc"))
    assert cbc.solver == "CBC" and highs.solver == "HiGHS"
    assert abs(cbc.expected_return - highs.expected_return) <= highs.expected_return * D("1e-6")


def test_solve_reports_a_small_approximation_error_for_curves():
    result = solve(problem(*(Channel(f"c{i}", Hill(D(10 ** 6), D(10 ** 5 * (i + 1)), D("0.5")))
                             for i in range(5))))
    assert 0 < result.approximation_error <= 1e-3


def test_solve_minimums_above_the_money_name_the_conflict():
    with pytest.raises(Infeasible) as caught:
        solve(problem(Channel("video", Linear(D("1")), min=D("250000")),
                      Channel("search", Linear(D("2")), min=D("400000")),
                      total="600000", reserve=Reserve(percent=D("10"))))
    conflict, = caught.value.conflicts
    assert conflict.change == D("110000.00")
    assert conflict.constraint in {"min:video", "min:search"}


def test_solve_minimum_with_everything_in_reserve_names_the_minimum():
    # Reserve = total leaves no money and so no column to solve for; the minimum still cannot
    # be met, by exactly itself.
    with pytest.raises(Infeasible) as caught:
        solve(problem(Channel("search", Linear(D("2")), min=D("75")), total="1000",
                      reserve=Reserve(amount=D("1000"))))
    conflict, = caught.value.conflicts
    assert (conflict.constraint, conflict.change) == ("min:search", D("75.00"))


def test_solve_with_everything_in_reserve_spends_nothing():
    result = solve(problem(Channel("search", Linear(D("2"))), total="1000",
                           reserve=Reserve(amount=D("1000"))))
    assert (result.spend, result.unspent, result.reserve) == (D("0.00"), D("0.00"), D("1000"))


def test_solve_unreachable_target_names_target_return():
    with pytest.raises(Infeasible) as caught:
        solve(problem(Channel("search", Linear(D("2"))), total="1000",
                      objective="min_spend", target_return=D("5000")))
    # 1,500 more money at 2 a unit, or the target 3,000 lower: each enough by itself.
    assert [(c.constraint, c.change) for c in caught.value.conflicts] == \
        [("budget", D("1500.00")), ("target_return", D("3000.00"))]


def test_solve_group_share_beyond_a_cap_names_both_sides():
    with pytest.raises(Infeasible) as caught:
        solve(problem(Channel("video", Linear(D("1")), max=D("100000")),
                      Channel("search", Linear(D("2")), min=D("500000")),
                      groups=(Group("brand", ("video",), min_share=D("0.5")),)))
    names = {c.constraint for c in caught.value.conflicts}
    assert names & {"group_min:brand", "max:video", "min:search"}
    assert all(c.change > 0 for c in caught.value.conflicts)


def _relaxed(request: Problem, conflicts) -> Problem:
    """`request` with the changes its conflicts propose applied."""
    for conflict in conflicts:
        family, _, name = conflict.constraint.partition(":")
        if family == "max":
            request = replace(request, channels=tuple(
                replace(c, max=c.max + conflict.change) if c.id == name else c
                for c in request.channels))
        elif family == "period_cap":
            request = replace(request, periods=tuple(
                replace(p, cap=p.cap + conflict.change) if p.id == name else p
                for p in request.periods))
        elif family == "tolerance_percent":
            assert request.incremental is not None
            request = replace(request, incremental=replace(
                request.incremental,
                tolerance=request.incremental.tolerance + conflict.change / 100))
        elif family == "previous":
            assert request.incremental is not None
            previous = dict(request.incremental.previous)
            previous[name] += conflict.change
            request = replace(request, incremental=replace(request.incremental,
                                                           previous=previous))
        else:
            assert family == "target_return", conflict
            request = replace(request, target_return=request.target_return - conflict.change)
    return request


_CONCAVE = Hill(D(100_000), D(5_000), D("0.8"))


@pytest.mark.parametrize(("request_", "named"), [
    # 2 per unit capped at 1,000 returns 2,000 of the 5,000 asked: 1,500 more spend is the
    # smaller change (3,000 less target costs twice as much).
    (problem(Channel("search", Linear(D(2)), max=D(1_000)), total="10000",
             objective="min_spend", target_return=D(5_000)), {("max:search", D("1500.00"))}),
    # The concave curve returns 30,000 at about 1,736 (28,000 less target otherwise).
    (problem(Channel("search", _CONCAVE, max=D(1_000)), total="10000",
             objective="min_spend", target_return=D(30_000)), {("max:search", None)}),
    # Each period's cap holds 1,000 of the 2,500 needed: 500 more in one of them.
    (problem(Channel("search", Linear(D(2))), total="10000", objective="min_spend",
             target_return=D(5_000), periods=(Period("p1", cap=D(1_000)),
                                              Period("p2", cap=D(1_000)))),
     {("period_cap:p1", D("500.00")), ("period_cap:p2", D("500.00"))}),
    # Within 20 % of 1,000 the cap is 1,200; 2,500 is past even 100 %: the previous amount
    # must be 1,250, and the tolerance 100 %.
    (problem(Channel("search", Linear(D(2))), total="10000", objective="min_spend",
             target_return=D(5_000), incremental=Incremental({"search": D(1_000)}, D("0.2"))),
     {("previous:search", D("250.00")), ("tolerance_percent", D("80.00"))}),
])
def test_an_infeasible_request_can_be_fixed_by_raising_a_curve_channels_cap(request_, named):
    # The elastic model's cells ended at the caps, so it could never propose raising one: it
    # named target_return (3,000 and 28,000 less) where the cap was the smaller change.
    with pytest.raises(Infeasible) as caught:
        solve(request_)
    # The set is one change; a target lowered alone (2,600 with previous 1,000 at 20 %, where
    # a plan returns at most 2 × 1,200) is another, named apart.
    together = [c for c in caught.value.conflicts if not c.alone]
    found = {(c.constraint, c.change) for c in together}
    if ("max:search", None) in named:
        ((name, change),) = found
        assert name == "max:search" and D(700) < change < D(760)
    else:
        assert found == named or len(found) == 1 and found <= named
    # Each change proposed is enough: the request with it applied has a plan.
    assert solve(_relaxed(request_, together)).status == "optimal"
    for alone in (c for c in caught.value.conflicts if c.alone):
        assert solve(_relaxed(request_, [alone])).status == "optimal"


def test_a_floor_past_the_periods_caps_is_fixed_by_either_side():
    # No return floor: the curves past the caps are cut coarsely. search must spend 5,000 and
    # the periods hold 2,000: 3,000 less floor or 3,000 more cap (a tie), either enough.
    request = problem(Channel("search", _CONCAVE, min=D(5_000)), total="10000",
                      periods=(Period("p1", cap=D(1_000)), Period("p2", cap=D(1_000))))
    with pytest.raises(Infeasible) as caught:
        solve(request)
    found = caught.value.conflicts
    assert sum(c.change for c in found) == D(3_000)
    for conflict in found:
        family, _, name = conflict.constraint.partition(":")
        if family == "min":
            request = replace(request, channels=(replace(request.channels[0],
                                                         min=D(5_000) - conflict.change),))
        else:
            assert family == "period_cap"
            request = replace(request, periods=tuple(
                replace(p, cap=p.cap + conflict.change) if p.id == name else p
                for p in request.periods))
    assert solve(request).status == "optimal"


def test_the_elastic_model_keeps_the_cells_it_has_where_cutting_them_again_is_too_late():
    from services.budget.optimizer.infeasibility import _past_caps
    model = ScaledProblem(problem(Channel("search", _CONCAVE, max=D(1_000)), total="10000"))
    cells = model.cells(4e-4)
    # In time, the cell reaches the money available (10,000, the model's 10 units of 1,000).
    (lifted,) = _past_caps(model, cells, float("inf"), True)
    assert lifted.upper == pytest.approx(10.0) and cells[0].upper == pytest.approx(1.0)
    assert _past_caps(model, cells, 0.0, True) is cells


def _with_share(request: Problem, conflict) -> Problem:
    """`request` with a group's share changed as `conflict` proposes."""
    family, _, name = conflict.constraint.partition(":")
    field = {"group_min": "min_share", "group_max": "max_share"}[family]
    sign = -1 if family == "group_min" else 1
    return replace(request, groups=tuple(
        replace(g, **{field: getattr(g, field) + sign * conflict.change}) if g.id == name else g
        for g in request.groups))


@pytest.mark.parametrize(("groups", "channels", "named"), [
    # Two groups with no channel in common, 0.6 of the spend each: 0.2 too much in all.
    ((Group("g", ("a",), min_share=D("0.6")), Group("h", ("b",), min_share=D("0.6"))),
     (), {"group_min:g", "group_min:h"}),
    # b, c hold at least 0.8 with c at most 0.1, and a, b at most 0.3: a + b + c is at most
    # 0.4 of the spend unless g or k gives 0.6 (h's floor alone cannot).
    ((Group("g", ("a", "b"), max_share=D("0.3")), Group("h", ("b", "c"), min_share=D("0.8")),
      Group("k", ("c",), max_share=D("0.1"))), (), {"group_max:g", "group_max:k"}),
    # a may spend nothing, so its group's 10 % is held only by a plan of nothing.
    ((Group("g", ("a",), min_share=D("0.1")),), (Channel("a", Linear(D(2)), max=D(0)),),
     {"group_min:g"}),
])
def test_shares_only_a_plan_of_nothing_holds_are_a_conflict(groups, channels, named):
    # Answered before as that plan: 0 spent, `feasible` with an unknown error (null).
    kept = {c.id: c for c in (Channel("a", Linear(D(2))), Channel("b", _CONCAVE),
                              Channel("c", Linear(D(1))), *channels)}
    request = problem(*kept.values(), total="100000", groups=groups)
    with pytest.raises(Infeasible) as caught:
        solve(request)
    found = caught.value.conflicts
    assert {c.constraint for c in found} <= named
    expected = D("0.2") if len(groups) == 2 else D("0.6") if len(groups) == 3 else D("0.1")
    assert sum(c.change for c in found) == expected
    assert all("no plan that spends anything holds every group's share" in c.detail
               for c in found)
    relaxed = request
    for conflict in found:
        relaxed = _with_share(relaxed, conflict)
    assert solve(relaxed).spend > 0


def test_shares_a_plan_that_spends_can_hold_are_solved():
    # 0.5 and 0.5: every plan split evenly holds both.
    answer = solve(problem(Channel("a", Linear(D(2))), Channel("b", Linear(D(3))),
                           total="100000", groups=(Group("g", ("a",), min_share=D("0.5")),
                                                   Group("h", ("b",), min_share=D("0.5")))))
    assert amounts(answer) == {"a": D("50000.00"), "b": D("50000.00")}


# --- a curve over time: each period earns on the channel's curve scaled to its share ---------

def whole_curve(response, spend: float) -> float:
    """R(spend) of the channel's curve for the whole horizon."""
    model = ScaledProblem(problem(Channel("c", response), total="1"))
    return float(model.true_returns(model.cells(4e-4), np.array([spend / model.unit]))[0]) * \
        model.unit


@pytest.mark.parametrize("response", [Hill(D("900000"), D("250000"), D("0.7")),
                                      Hill(D("900000"), D("250000"), D("2.5")),
                                      Points(((D(0), D(0)), (D(100000), D(250000)),
                                              (D(300000), D(420000))))])
@pytest.mark.parametrize("shares", [None, (D(1), D(3), D(2), D(4))])
def test_an_even_proportional_split_returns_the_whole_curve(response, shares):
    periods = tuple(Period(f"p{i}", share=None if shares is None else shares[i]) for i in range(4))
    model = ScaledProblem(problem(Channel("c", response), periods=periods))
    cells = model.cells(4e-4)
    total = 400000 / model.unit
    split = np.array([cell.share * total for cell in cells])
    assert model.true_returns(cells, split).sum() * model.unit == \
        pytest.approx(whole_curve(response, 400000), rel=1e-12)


def test_solve_over_even_periods_earns_what_the_whole_curve_earns_on_a_concave_curve():
    curve = Hill(D("900000"), D("250000"), D("0.7"))
    periods = tuple(Period(f"p{i}") for i in range(4))
    split = solve(problem(Channel("c", curve), total="400000", periods=periods))
    # No split beats the even one on a concave curve, and the plan is within the promised 0.1 %
    # of it (ties among the periods' equal segments may fall anywhere).
    whole = whole_curve(curve, 400000)
    assert whole * (1 - 1e-3) <= float(split.expected_return) <= whole + 0.01


def test_solve_flighting_an_s_curve_beats_the_even_split():
    # Below the S-curve's tangent point, money bunched in fewer periods climbs past the bend.
    curve = Hill(D("900000"), D("250000"), D("2.5"))
    periods = tuple(Period(f"p{i}") for i in range(4))
    result = solve(problem(Channel("c", curve), total="100000", periods=periods))
    assert float(result.expected_return) > 2 * whole_curve(curve, 100000)
    assert sorted(p.amount for p in result.allocations[0].periods)[:2] == [D("0.00")] * 2


def test_check_problem_wants_every_period_share_or_none():
    periods = (Period("p0", share=D(1)), Period("p1"), Period("p2", share=D(0)))
    fields = {i.field for i in check_problem(problem(Channel("c", Linear(D(1))), periods=periods))}
    assert fields == {"periods", "periods[2].share"}


def test_check_problem_states_the_return_ceiling_exactly():
    # Trial 18f: 1,050,000,000,000,000.015 was told rounded to a whole unit, which hid what
    # the limit was compared with.
    curve = Hill(D("700000000000000.01"), D(1000), D(1))
    issue, = check_problem(problem(Channel("c", curve), periods=(
        Period("p1"), Period("p2", weight=D("1.5")))))
    assert issue.detail.startswith("a plan could return up to 1050000000000000.015, past")


# --- tangent gating, warm starts and progress ----------------------------------------------

def s_curve_mix(seed: int) -> Problem:
    """S-curves, deals, concave curves, caps on some channels and periods, a brand group."""
    rng = np.random.default_rng(seed)
    channels = []
    for i in range(6):
        alpha = D(str(round(rng.uniform(1.5, 4.0), 2))) if i % 2 else D(str(round(rng.uniform(0.5, 1), 2)))
        channels.append(Channel(f"c{i}", Hill(D(int(rng.integers(200_000, 900_000))),
                                              D(int(rng.integers(30_000, 200_000))), alpha),
                                max=D(int(rng.integers(80_000, 400_000))) if i % 3 == 0 else None))
    channels += [Channel(f"deal{d}", Deal(D(int(c)), D(int(c * rng.uniform(1.2, 3.0)))))
                 for d, c in enumerate(rng.integers(20_000, 120_000, 2))]
    periods = tuple(Period(f"p{p}", weight=D(str(round(rng.uniform(0.6, 1.4), 2))),
                           cap=D(int(rng.integers(60_000, 200_000))) if p % 2 else None)
                    for p in range(3))
    brand = Group("brand", ("c1", "c3", "deal0", "deal1"), min_share=D("0.25"))
    return problem(*channels, total=str(int(rng.integers(150_000, 600_000))), periods=periods,
                   groups=(brand,), reserve=Reserve(percent=D(10)))


@pytest.mark.parametrize("seed", range(6))
def test_tangent_gating_finds_the_optimum_of_full_gating(seed):
    case = s_curve_mix(seed)
    tangent, full = solve(case), solve(case, gating="full", warm_start=False)
    assert tangent.status == full.status == "optimal"
    # Both are proven within the MIP gap of the same model's optimum.
    assert float(tangent.expected_return) == pytest.approx(float(full.expected_return), rel=5e-4)
    assert tangent.approximation_error <= 1e-3


def other_shapes(seed: int) -> Problem:
    """The issue's other shapes (bench `hard_problem`) at 8 channels x 3 periods: steep S-curves
    (alpha 2.5-4) on a third of the curves, flatter concave ones (alpha 0.8-1, k near the
    spend), caps on a third, two deals, a cap on every period, seasonal weights, a brand
    group over the S-curves and the deals."""
    rng = np.random.default_rng(seed)
    channels = []
    for i in range(6):
        s_shaped = i % 3 == 1
        alpha = rng.uniform(2.5, 4.0) if s_shaped else rng.uniform(0.8, 1.0)
        k = rng.uniform(60_000, 250_000) if s_shaped else rng.uniform(100_000, 400_000)
        channels.append(Channel(f"c{i}", Hill(D(int(k * rng.uniform(1.5, 4.0))), D(int(k)),
                                              D(str(round(alpha, 2)))),
                                max=D(int(rng.uniform(0.5, 2.0) * 150_000)) if i % 3 == 2 else None))
    for d in range(2):
        cost = int(rng.integers(80_000, 400_000))
        channels.append(Channel(f"deal{d}", Deal(D(cost), D(int(cost * rng.uniform(1.1, 2.5))))))
    periods = tuple(Period(f"p{p}", weight=D(str(round(1 + 0.4 * np.sin(2 * np.pi * p / 3), 3))),
                           cap=D(400_000)) for p in range(3))
    brand = Group("brand", ("c1", "c4", "deal0", "deal1"), min_share=D("0.25"))
    return problem(*channels, total="1200000", periods=periods, groups=(brand,),
                   reserve=Reserve(percent=D(10)), time_limit=30)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tangent_gating_finds_the_optimum_of_full_gating_on_the_other_shapes(seed):
    # Full gating from a cold start is the reference: every cell modelled exactly, no
    # envelope, no warm start, no narrowed curves; HiGHS proves it.
    tangent, full = solve(other_shapes(seed)), solve(other_shapes(seed), gating="full",
                                                     warm_start=False)
    assert tangent.status == full.status == "optimal"
    assert float(tangent.expected_return) == pytest.approx(float(full.expected_return), rel=5e-4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stopped_answer_bounds_the_optimum_on_the_other_shapes(seed):
    # Stopped at its first plan, the answer is feasible with a gap from the envelope's bound
    # (L(y) at the polish's prices): that bound must hold for the optimum full gating proves.
    heard: list[Progress] = []
    first = solve(other_shapes(seed), heard.append, stop=lambda: bool(heard))
    full = solve(other_shapes(seed), gating="full", warm_start=False)
    assert full.status == "optimal"
    assert first.expected_return <= full.expected_return * D("1.0005")
    # The answer's error bounds the true optimum's lead over it; a cent per cell of rounding.
    assert float(full.expected_return) <= \
        float(first.expected_return) * (1 + first.approximation_error) + 0.08


def test_solve_reports_progress_up_to_the_answer():
    heard: list[Progress] = []
    result = solve(s_curve_mix(1), heard.append)
    assert heard
    assert all(p.bound is None or p.incumbent <= p.bound * (1 + 1e-9) for p in heard)
    last = heard[-1]
    assert last.gap is not None and last.gap <= 2e-4
    assert float(result.expected_return) == pytest.approx(last.incumbent, rel=1e-3)


def test_solve_a_total_far_beyond_the_channels_earns_at_least_a_smaller_total():
    # The README's example shape at its largest total (trial of issue 18): money scaled by the
    # whole 9e14 put every curve at 1e-9 of the budget, within the solver's tolerances, and
    # the answer was "optimal" with a gap of 0.35 and 449,793 earned, where a total of 1e6
    # earns 1,946,101.70. More money never earns less, and "optimal" keeps its 0.1 %.
    def shaped(total: str) -> Problem:
        return problem(Channel("search", Linear(D("2.1")), max=D("400000")),
                       Channel("video", Hill(D("900000"), D("250000"), D("2.2"))),
                       Channel("kol", Deal(D("80000"), D("240000"))),
                       total=total, reserve=Reserve(percent=D(10)),
                       periods=(Period("w1"), Period("w2", weight=D("1.3"), cap=D("300000"))),
                       groups=(Group("brand", ("video", "kol"), min_share=D("0.2")),),
                       time_limit=5)

    small, huge = solve(shaped("1000000")), solve(shaped("1000000000000000"))
    # Optimal within 0.1 % (the curves' cut decides the last cents: 1,946,101.66 on the
    # 1,000-point Hill grid of 0f0743d).
    assert abs(small.expected_return - D("1946101.70")) <= D("1946.10")
    assert huge.expected_return >= small.expected_return
    for result in (small, huge):
        assert_adds_up(result)
        if result.status == "optimal":
            assert result.approximation_error <= 1e-3   # the gap included


def test_the_error_bound_counts_what_rounding_to_the_cent_loses():
    """Two equal concave curves share 0.03: the optimum gives each 0.015, the answer is in cents
    (0.02 and 0.01), 1.46 % below it. The bound was the unrounded plan's (0.00028, `optimal`)."""
    curve = Hill(D(1000), D(1_000_000), D("0.5"))
    answer = solve(Problem(total=D("0.03"), decimals=2,
                           channels=(Channel("a", curve), Channel("b", curve))))

    def returns(x: float) -> float:
        return 1000 * x ** 0.5 / (x ** 0.5 + 1000)

    rounded = returns(0.02) + returns(0.01)
    assert sorted(answer.figures.money(answer.figures.amounts)) == [D("0.01"), D("0.02")]
    assert answer.approximation_error >= (2 * returns(0.015) - rounded) / rounded
    assert answer.status == "feasible"


@pytest.mark.parametrize(("objective", "target"), [({"objective": "target_roi"}, "2.5"),
                                                   ({"objective": "min_spend"}, "300000")])
def test_solve_a_hill_curve_of_alpha_0_1(objective, target):
    # Trial 18e (`mini_roi_a0.1`, `mini_ms_a0.1`): the cut's first pieces were 1e-37 wide with
    # slopes of 4e32; HiGHS refused the matrix, the empty model read as solved gave a plan of
    # no columns: a 500 (target_roi) and a 422 with no conflicts (min_spend). 900,000 · r /
    # (1 + r), r = (s / 150,000)^0.1, returns 2.5 s at s = 181,727 (454,317).
    key = "target_roi" if objective["objective"] == "target_roi" else "target_return"
    result = solve(problem(Channel("video", Hill(D(900_000), D(150_000), D("0.1"))),
                           **objective, **{key: D(target)}))
    # The target ROI binds: the frontier's bound counts its row loosened by the curve's rise
    # (`roi_frontier.ceiling`), so the plan is proven (trial 18f had it `feasible`, unbounded).
    assert result.status == "optimal"
    if key == "target_roi":
        # The true optimum, bisected on the curve: 181,726.77 spent for 454,316.92.
        assert result.expected_return * (1 + D(result.approximation_error)) >= D("454316.92")
        assert result.expected_return >= D(target) * result.spend
        assert abs(result.spend - D("181727")) < D(100)
    else:
        assert result.spend > 0


@pytest.mark.parametrize("target", ["14.9", "20", "21.3"])
def test_solve_target_roi_meets_its_target_on_the_true_curves(target):
    # Trial 18e (`obj_2_target_roi`): a plan was checked on its returns rounded to the cent,
    # cell by cell: 0.04 spent at 11.7 needs 0.468 and returned 0.467624, answered as 0.47.
    # Here the old check passed 0.10 returning 1.990528 (2.00 rounded) at a target of 20.
    result = solve(problem(Channel("search", Hill(D(500_000), D(100_000), D("0.9"))),
                           total="50000", objective="target_roi", target_roi=D(target),
                           periods=(Period("a"), Period("b"))))
    cells = [float(p.amount) for p in result.allocations[0].periods]
    earned = sum(0.5 * float(hill(2 * x, 500_000.0, 100_000.0, 0.9)) for x in cells)
    assert result.spend > 0
    assert earned >= float(D(target) * result.spend)


def test_solve_min_spend_meets_its_target_on_the_true_curves():
    # Trial 18e (`ms_7_0.9`, 9 of 40 such requests): an S-curve's pieces lie above its convex
    # part, so a plan meeting the target on them returned 232,886.55 of 232,947.98, `optimal`.
    # Whole units are added where the next unit earns most until the rounded plan meets it.
    target = D("232947.98")
    request = problem(Channel("video", Hill(D(2_000_000), D(50_000), D("1.5"))),
                      Channel("kol", Deal(D(150_000), D(30_000))),
                      Channel("search", Hill(D(500_000), D(100_000), D("0.6")), max=D(300_000)),
                      total="37000", reserve=Reserve(percent=D(50)), objective="min_spend",
                      target_return=target,
                      periods=(Period("p0", cap=D(7400)), Period("p1", weight=D("0.5"))),
                      groups=(Group("brand", ("video", "kol"), min_share=D("0.4")),))
    result = solve(request)
    model = ScaledProblem(request)
    cells = model.cells(1e-3)
    spend = result.figures.cell_amounts[cells.channel, cells.period] / (model.unit * 100)
    assert result.expected_return >= target
    assert float(model.true_returns(cells, spend).sum()) * model.unit >= float(target)
    assert result.spend < D("16400")   # the plan that fell short spent 16,354.75


def test_solve_min_spend_bounds_what_a_plan_meeting_the_target_could_spend_less():
    # Trial 18e (`mini_ms_a0.3`): 14,925.48 spent where 14,881.88 reaches 300,000 (0.29 %
    # more), `optimal` with an approximation_error of 0.000175, a bound on return. Under
    # min_spend it bounds how much less a plan meeting the target could spend, relative to
    # this one's spend: 900,000 · r / (1 + r) = 300,000 at r = 0.5, s = 150,000 · 0.5^(1/0.3).
    result = solve(problem(Channel("video", Hill(D(900_000), D(150_000), D("0.3"))),
                           objective="min_spend", target_return=D(300_000)))
    least = 150_000 * 0.5 ** (1 / 0.3)
    assert result.status == "optimal"
    assert result.expected_return >= 300_000
    assert (float(result.spend) - least) / float(result.spend) <= result.approximation_error
    assert result.approximation_error <= 0.001


@pytest.mark.parametrize("target", ["1.76", "1.9", "2.1371"])
def test_solve_target_roi_names_a_min_if_used_channels_roi_at_its_floor(target):
    # Trial 18e (`roi4_t1.9`, `obj_4_target_roi`): social's first 30,000 return 2 a unit, but
    # used it spends at least 40,000, which return 70,000: 1.75. Targets up to 2 answered "no
    # plan within 20 s" in 0.4 s, those above it named 2.0 (following that failed again).
    social = Channel("social", Points(((D(0), D(0)), (D(30_000), D(60_000)),
                                       (D(100_000), D(130_000)), (D(400_000), D(200_000)))),
                     min=D(40_000), min_if_used=True)
    with pytest.raises(Infeasible) as raised:
        solve(problem(social, Channel("search", Hill(D(500_000), D(400_000), D(1))),
                      total="50000", objective="target_roi", target_roi=D(target)))
    conflict, = raised.value.conflicts
    assert (conflict.constraint, conflict.change) == ("target_roi", D(target) - D("1.75"))
    met = solve(problem(social, Channel("search", Hill(D(500_000), D(400_000), D(1))),
                        total="50000", objective="target_roi", target_roi=D("1.75")))
    assert met.expected_return >= D("1.75") * met.spend > 0


def test_solve_target_roi_names_the_best_roi_a_cent_reaches():
    # Trial 18e (`obj_1_target_roi_hi`): the best was read off the pieces' chords, 8.966896,
    # where 0.01 on this curve returns 0.2506 (25.06 a unit): the named ROI was no bound.
    with pytest.raises(Infeasible) as raised:
        solve(problem(Channel("search", Hill(D(500_000), D(100_000), D("0.9"))),
                      total="50000", objective="target_roi", target_roi=D(5000)))
    conflict, = raised.value.conflicts
    best = 500_000 * (0.01 / 100_000) ** 0.9 / (1 + (0.01 / 100_000) ** 0.9) / 0.01
    assert D(5000) - conflict.change == D(repr(best)).quantize(D("0.000001"), rounding="ROUND_FLOOR")


def test_solve_target_roi_up_to_the_named_best_answers_a_plan():
    # One cent in a period returns 0.5 · R(0.02) = 0.233812 (23.381189 a unit), the best named
    # above it; the pieces, below the curve's first units, found no plan that spends at 23.38
    # and the answer was "no plan within 30 s" at once. The cell's best whole units are the plan.
    result = solve(problem(Channel("search", Hill(D(500_000), D(100_000), D("0.9"))),
                           total="50000", objective="target_roi", target_roi=D("23.38"),
                           periods=(Period("a"), Period("b"))))
    cells = [float(p.amount) for p in result.allocations[0].periods]
    earned = sum(0.5 * float(hill(2 * x, 500_000.0, 100_000.0, 0.9)) for x in cells)
    assert result.spend > 0 and result.status == "feasible"
    assert earned >= float(D("23.38") * result.spend)


def test_solve_target_roi_the_pieces_miss_answers_the_best_cells_first_unit():
    # 0.01 on this curve returns 0.0811 (8.109049 a unit, the best named above it); the first
    # piece, wider than a cent, returns less a unit, so the pieces found no plan that spends
    # and the answer was "no plan within 30 s" at once. The cent is the plan, its distance
    # from the most return unknown.
    result = solve(problem(Channel("search", Hill(D(500_000), D(100_000), D("0.97"))),
                           total="50000", objective="target_roi", target_roi=D("8.1")))
    assert (result.spend, result.status) == (D("0.01"), "feasible")
    assert float(hill(0.01, 500_000.0, 100_000.0, 0.97)) >= 8.1 * 0.01
    assert result.approximation_error == float("inf")


def test_solve_target_roi_on_a_large_total_reaches_a_curves_first_cents():
    # Trial 18f (`g17`, `g23`): on 67,606,624.77 a cent is 1.5e-10 of the money, below the
    # scaled EPS it was divided by, so channel h's first cent was read as 0.3 a unit and the
    # answer named channel l's 1.0. On the true curve h returns 200,000 / (100,000 + s) a unit:
    # 1.9999998 at s = 0.01, and at least 1.9999 up to s = 100,000 · (2 / 1.9999 − 1) = 5.00025.
    channels = (Channel("h", Hill(D(200_000), D(100_000), D(1))), Channel("l", Linear(D(1))))
    result = solve(problem(*channels, total="67606624.77", objective="target_roi",
                           target_roi=D("1.9999")))
    assert (result.spend, result.expected_return) == (D("5.00"), D("10.00"))
    assert D(200_000) * D(5) / D("100005") >= D("1.9999") * result.spend
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, total="67606624.77", objective="target_roi", target_roi=D(2)))
    conflict, = raised.value.conflicts
    assert D(2) - conflict.change == D("1.999999")     # 2,000 / 1,000.0001 = 1.99999980


@pytest.mark.parametrize("total", ["1000", "67606624.77"])
def test_solve_target_roi_names_the_best_roi_a_scan_of_whole_cents_finds(total):
    # Trial 18f (`rr11_1856`): 1.787433 was named (c2's peak) where c0's first cents return
    # 1.856452 a unit. The reference scans every curve's return per unit at whole cents, the
    # first 100,000 and then 20,000 spread over the rest, up to the money (a min_if_used
    # channel from its min), on the curves in Decimal-free closed form.
    channels = (Channel("c0", Hill(D("468541.95"), D("252385.69"), D(1))),
                Channel("c1", Deal(D("869.24"), D("1032.03"))),
                Channel("c2", Hill(D("480823.88"), D("134501.21"), D(2))),
                Channel("c3", Points(((D(0), D(0)), (D(400), D(600)), (D(900), D(1500)))),
                        min=D(500), min_if_used=True))
    cents = round(float(total) * 100)
    spend = np.unique(np.r_[np.arange(1, min(cents, 100_000) + 1),
                            np.geomspace(1, cents, 20_000).round()]) / 100
    curves = {"c0": lambda s: float(D("468541.95")) * s / (s + float(D("252385.69"))),
              "c2": lambda s: float(D("480823.88")) * s ** 2 / (s ** 2 + 134501.21 ** 2),
              "c3": lambda s: np.interp(s, [0, 400, 900], [0, 600, 1500])}
    best = max([float(np.max(curve(spend[spend >= (500 if name == "c3" else 0)]) /
                             spend[spend >= (500 if name == "c3" else 0)]))
                for name, curve in curves.items()] +
               ([1032.03 / 869.24] if float(total) >= 869.24 else []))
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, total=total, objective="target_roi", target_roi=D(3)))
    conflict, = raised.value.conflicts
    named = D(3) - conflict.change
    assert abs(float(named) - best) <= 2e-6
    met = solve(problem(*channels, total=total, objective="target_roi", target_roi=named))
    assert met.expected_return >= named * met.spend > 0


def test_solve_target_roi_where_no_plan_can_spend_names_what_lets_one():
    # Trial 18f (`rr6`): c0's and c1's mins (used or not) and c2's deal all pass the 4,632,488.64
    # available, so no plan spends anything; the best ROI of no cell was −∞, a 500. Raising the
    # money lets c2 (2.93 a unit), c0 (1.49 at its min) or c1 (2.55 at its min) spend, none at
    # 2.990476; c1's min lowered to the money does: its Hill curve returns 119 a unit there.
    def request(c1_min: str) -> Problem:
        return problem(
            Channel("c0", Points(((D(0), D(0)), (D("4307961.61"), D("5411220.07")),
                                  (D("5008443.17"), D("14902745.24")),
                                  (D("5481268.22"), D("16934141.77")))),
                    min=D("11343843.25"), min_if_used=True),
            Channel("c1", Hill(D("1400859315.42"), D("336663340.61"), D("0.1")),
                    min=D(c1_min), min_if_used=True),
            Channel("c2", Deal(D("7721411.43"), D("22637929.36"))),
            total="4632488.64", objective="target_roi", target_roi=D("2.990476"))
    with pytest.raises(Infeasible) as raised:
        solve(request("271782550.28"))
    conflict, = raised.value.conflicts
    assert (conflict.constraint, conflict.change, conflict.alone) == \
        ("min:c1", D("271782550.28") - D("4632488.64"), True)
    met = solve(request("4632488.64"))
    assert met.expected_return >= D("2.990476") * met.spend > 0


def test_solve_target_roi_at_an_s_curves_peak_return_per_unit_answers_a_plan():
    # Trial 18f (`r4_fix`, the fix named for `r4`): s10 in period p2 returns at most
    # 1.4 · R(y) / y = 1.4 · 900,000 / (200,000 · 9^0.1) = 5.0572718 a unit (y = 3x, at
    # (y / k)^10 = alpha − 1 = 9), so 5.057271 is met only within cents of x = 83,048.77. The
    # plan, rounded past that peak, was cut by the slope there, which nears the target: each
    # cut made up half of what it lacked, and after four the answer was "no plan within 30 s"
    # in 0.6 s.
    request = problem(Channel("s10", Hill(D(1_000_000), D(200_000), D(10))),
                      Channel("s4", Hill(D(300_000_000_000), D(90_000_000_000), D(4))),
                      Channel("c1", Hill(D(80_000), D(50_000), D(1))),
                      total="1000000000000", objective="target_roi", target_roi=D("5.057271"),
                      periods=(Period("p1"), Period("p2", weight=D("1.4")),
                               Period("p3", weight=D("0.5"))))
    result = solve(request)
    p2 = {a.channel: {p.period: p.amount for p in a.periods} for a in result.allocations}
    x = float(p2["s10"]["p2"])
    assert result.spend == p2["s10"]["p2"] > 0
    assert 1.4 / 3 * float(hill(3 * x, 1_000_000.0, 200_000.0, 10.0)) >= 5.057271 * x


@pytest.mark.parametrize(("target", "named"), [("2.5", "2"), ("3.5", "2")])
def test_solve_target_roi_under_a_groups_share_names_what_a_plan_holding_it_reaches(target,
                                                                                    named):
    # Trial 18f: half of any plan goes to b (1 a unit), the rest at most to a (3 a unit), so
    # no plan returns more than 0.5 · 3 + 0.5 · 1 = 2 a unit. 3.5 named channel a's 3.0, not
    # reachable; 2.5 ended "no plan that spends found" (a time limit, in a second).
    channels = (Channel("a", Linear(D(3))), Channel("b", Linear(D(1))))
    brand = (Group("brand", ("b",), min_share=D("0.5")),)
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, objective="target_roi", target_roi=D(target), groups=brand))
    conflict, = raised.value.conflicts
    assert (conflict.constraint, D(target) - conflict.change) == ("target_roi", D(named))
    met = solve(problem(*channels, objective="target_roi", target_roi=D(named), groups=brand))
    assert met.expected_return == 2 * met.spend > 0


def test_solve_target_roi_under_a_groups_share_reaches_a_concave_curves_first_cents():
    # A brand group at 0.5 over b (1 a unit) beside h, whose first cent returns 32.77: a cent
    # each returns (32.7779 + 0.01) / 0.02 = 1,638.9481 a unit, the most any plan holding the
    # share reaches in whole cents (h's return per unit falls with its spend). It was "no plan
    # that spends found" at 2,000, where the share's plan named 1.0 before it was tried
    # scaled up (a cent alone cannot be split in halves).
    channels = (Channel("h", Hill(D(900_000), D(250_000), D("0.6"))), Channel("b", Linear(D(1))))
    brand = (Group("brand", ("b",), min_share=D("0.5")),)
    first = float(hill(0.01, 900_000.0, 250_000.0, 0.6))
    best = D(repr((first + 0.01) / 0.02)).quantize(D("0.000001"), rounding="ROUND_FLOOR")
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, objective="target_roi", target_roi=D(2000), groups=brand))
    conflict, = raised.value.conflicts
    assert D(2000) - conflict.change == best
    met = solve(problem(*channels, objective="target_roi", target_roi=best, groups=brand))
    assert met.expected_return >= best * met.spend > 0


def test_solve_target_roi_under_groups_shares_names_the_best_plan_of_a_few_cents():
    # Trial 18g (t7_c): a brand group {a} at min_share 0.7 and perf {b, h} at max_share 0.3.
    # h's return per unit falls with its spend from 23.47 at its first cent, so the best plans
    # are a few cents split by the shares; a whole-cent scan of every plan up to 60 cents finds
    # 0.07 on a and 0.03 on h (7.009573 a unit). "At most 6.071590" was named where the user's
    # 0.03 and 0.01 return 6.6186 a unit, and targets 6.5 and 6.6 were refused.
    channels = (Channel("a", Linear(D(1))), Channel("b", Linear(D(3)), max=D(2_000_000)),
                Channel("h", Hill(D(10_000_000), D(3_000_000), D("0.9"))))
    groups = (Group("brand", ("a",), min_share=D("0.7")),
              Group("perf", ("b", "h"), max_share=D("0.3")))

    def roi(a: int, b: int, h: int) -> float:
        return (a / 100 + 3 * b / 100 + float(hill(h / 100, 10_000_000.0, 3_000_000.0, 0.9))) \
            / ((a + b + h) / 100)
    scan = max(roi(a, b, n - a - b) for n in range(1, 61) for a in range(n + 1)
               for b in range(n - a + 1) if 10 * a >= 7 * n and 10 * (n - a) <= 3 * n)
    best = D(repr(scan)).quantize(D("0.000001"), rounding="ROUND_FLOOR")
    assert best == D("7.009573")
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, total="30000000", objective="target_roi", target_roi=D(40),
                      groups=groups))
    conflict, = raised.value.conflicts
    assert D(40) - conflict.change == best
    for target in (D("6.6"), best):
        met = solve(problem(*channels, total="30000000", objective="target_roi",
                            target_roi=target, groups=groups))
        spent = {channel: int(amount * 100) for channel, amount in amounts(met).items()}
        # Met on the true curves (the answer's returns are rounded to the cent cell by cell).
        assert roi(spent["a"], spent["b"], spent["h"]) >= target > 0
        assert 10 * spent["a"] >= 7 * met.spend * 100 and \
            10 * (spent["b"] + spent["h"]) <= 3 * met.spend * 100


def test_solve_target_roi_under_a_groups_share_counts_a_deal_bought_alone():
    # Trial 18g (t7_d): the deal (1,000,000 for 6,000,000) is in the brand group at min_share
    # 0.5, so buying it alone in p2 (weight 1.5) holds the share and returns 9 a unit. The
    # shares' LP leaves deals out and named its mix of a and x: 1.75.
    channels = (Channel("a", Linear(D("1.5"))), Channel("x", Linear(D(2))),
                Channel("dl", Deal(D(1_000_000), D(6_000_000))))
    brand = (Group("brand", ("a", "dl"), min_share=D("0.5")),)
    periods = (Period("p1"), Period("p2", weight=D("1.5")))
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, total="60000000", objective="target_roi", target_roi=D(40),
                      groups=brand, periods=periods))
    conflict, = raised.value.conflicts
    assert D(40) - conflict.change == D(9)
    met = solve(problem(*channels, total="60000000", objective="target_roi", target_roi=D(9),
                        groups=brand, periods=periods))
    assert (met.spend, met.expected_return) == (D(1_000_000), D(9_000_000))


def test_solve_target_roi_under_a_groups_share_counts_an_s_curve_alone_at_its_peak():
    # Trial 18g (t7b): s1, alone in the brand group at min_share 0.5, returns most per unit
    # at k · (alpha − 1)^(1/alpha) = 6,299,605.25; the whole cents around it return at most
    # 3.174802 a unit, which spending on s1 alone holds. The shares' LP, on s1's concave
    # envelope, named 3.109981.
    channels = (Channel("s1", Hill(D(30_000_000), D(5_000_000), D(3))),
                Channel("s2", Hill(D(10_000_000), D(2_000_000), D(2))),
                Channel("c", Hill(D(4_000_000), D(3_000_000), D(1))))
    brand = (Group("brand", ("s1",), min_share=D("0.5")),)
    peak = 5_000_000 * 2 ** (1 / 3)
    cents = np.arange(round(peak * 100) - 500, round(peak * 100) + 500) / 100
    scan = float(np.max(hill(cents, 30_000_000.0, 5_000_000.0, 3.0) / cents))
    best = D(repr(scan)).quantize(D("0.000001"), rounding="ROUND_FLOOR")
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, total="40000000", objective="target_roi", target_roi=D(10),
                      groups=brand))
    conflict, = raised.value.conflicts
    assert D(10) - conflict.change == best
    met = solve(problem(*channels, total="40000000", objective="target_roi", target_roi=best,
                        groups=brand))
    assert met.expected_return >= best * met.spend > 0
    assert amounts(met)["s1"] == met.spend


def test_solve_target_roi_a_first_cut_refuses_is_cut_finer_before_its_conflicts():
    # Trial 18g (t2b_hardmin_w_alone0): m must spend 24,652.44 (a hard min) over periods a and
    # b (weight 1.7), each half of the horizon: r_p(x) = w_p · 0.5 · R(2x). The user's plan,
    # 9,294.69 in a and 15,357.75 in b, returns 9.0042 a unit on the true curves, but the first
    # cut's pieces, below the curve, reached 8.999619, and the request was refused.
    def returns(a: float, b: float) -> float:
        return 0.5 * float(hill(2 * a, 300_000.0, 20_000.0, 0.8)) + \
            1.7 * 0.5 * float(hill(2 * b, 300_000.0, 20_000.0, 0.8))
    assert returns(9294.69, 15357.75) >= 9 * (9294.69 + 15357.75)
    result = solve(problem(Channel("m", Hill(D(300_000), D(20_000), D("0.8")), min=D("24652.44")),
                           Channel("l", Linear(D("1.2"))), total="500000",
                           objective="target_roi", target_roi=D(9),
                           periods=(Period("a"), Period("b", weight=D("1.7")))))
    cells = {(a.channel, p.period): float(p.amount) for a in result.allocations
             for p in a.periods}
    assert result.spend >= D("24652.44")
    assert returns(cells["m", "a"], cells["m", "b"]) + 1.2 * (cells["l", "a"] + cells["l", "b"]) \
        >= 9 * float(result.spend)


def test_solve_target_roi_above_every_cell_is_named_before_any_solve(monkeypatch):
    # Trial 18g (t7_d): no cell returns more than the deal's 9 a unit, yet the MILP searched for
    # a plan meeting 40 until the time limit (29 s) before the conflict was named. Nor are
    # plans on the true curves tried for it (5.3 s of a 9.5 s 422 at 50 x 13 with shares).
    def no_solve(*args, **kwargs):
        raise AssertionError("a target above every plan's return per unit needs no solve")
    monkeypatch.setattr("services.budget.optimizer.solver.solve_milp", no_solve)
    monkeypatch.setattr("services.budget.optimizer.solver._roi_apart", no_solve)
    channels = (Channel("a", Linear(D("1.5"))), Channel("s", Hill(D(8_000_000), D(1_500_000), D(3))),
                Channel("dl", Deal(D(1_000_000), D(6_000_000))))
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, total="60000000", objective="target_roi", target_roi=D(40),
                      groups=(Group("brand", ("a", "dl"), min_share=D("0.5")),),
                      periods=(Period("p1"), Period("p2", weight=D("1.5")))))
    conflict, = raised.value.conflicts
    assert D(40) - conflict.change == D(9)


def test_solve_target_roi_under_a_groups_share_mixes_without_an_s_curves_envelope():
    # Trial 18g (t7_a): brand {l, s} at min_share 0.6. The shares' LP put brand's part on s,
    # whose envelope promises 1.5 a unit from the first cent, where its first cents return
    # nearly nothing: 1 cent on h and 2 on s returned 542.786933 a unit. A whole-cent scan of
    # every plan up to 40 cents finds 1 cent on h and 2 on l (0.8 a unit): 543.320266.
    def roi(h: int, s: int, low: int) -> float:
        return (float(hill(h / 100, 20_000_000.0, 5_000_000.0, 0.7))
                + float(hill(s / 100, 30_000_000.0, 10_000_000.0, 2.0)) + 0.8 * low / 100) \
            / ((h + s + low) / 100)
    scan = max(roi(h, s, n - h - s) for n in range(1, 41) for h in range(n + 1)
               for s in range(n - h + 1) if 10 * (n - h) >= 6 * n)
    best = D(repr(scan)).quantize(D("0.000001"), rounding="ROUND_FLOOR")
    channels = (Channel("h", Hill(D(20_000_000), D(5_000_000), D("0.7"))),
                Channel("s", Hill(D(30_000_000), D(10_000_000), D(2))),
                Channel("l", Linear(D("0.8"))))
    brand = (Group("brand", ("l", "s"), min_share=D("0.6")),)
    with pytest.raises(Infeasible) as raised:
        solve(problem(*channels, total="50000000", objective="target_roi", target_roi=D(5000),
                      groups=brand))
    conflict, = raised.value.conflicts
    assert D(5000) - conflict.change == best == D("543.320266")
    met = solve(problem(*channels, total="50000000", objective="target_roi", target_roi=best,
                        groups=brand))
    spent = {channel: int(amount * 100) for channel, amount in amounts(met).items()}
    assert roi(spent["h"], spent["s"], spent["l"]) >= best > 0
