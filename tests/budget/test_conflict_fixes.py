"""An impossible request's conflicts are fixes: the request with them applied has a plan."""
from dataclasses import replace
from decimal import Decimal as D

import pytest

from services.budget.optimizer import (
    Channel,
    Conflict,
    Deal,
    Group,
    Hill,
    Incremental,
    Infeasible,
    Linear,
    Period,
    Points,
    Problem,
    Reserve,
    SolveTimeout,
    check_problem,
    infeasibility,
    solve,
)

NONE = Reserve(amount=D(0))


def conflicts(problem: Problem) -> list[Conflict]:
    with pytest.raises(Infeasible) as caught:
        solve(problem)
    return caught.value.conflicts


def applied(problem: Problem, fixes: list[Conflict]) -> Problem:
    """`problem` with the changes `fixes` name (the money available raised with the reserve
    held as an amount)."""
    channels = {channel.id: channel for channel in problem.channels}
    periods = {period.id: period for period in problem.periods}
    groups = {group.id: group for group in problem.groups}
    for fix in fixes:
        family, _, label = fix.constraint.partition(":")
        if family == "budget":
            problem = replace(problem, total=problem.total + fix.change)
        elif family == "max":
            channels[label] = replace(channels[label], max=channels[label].max + fix.change)
        elif family == "min":
            channels[label] = replace(channels[label], min=channels[label].min - fix.change)
        elif family == "period_cap":
            periods[label] = replace(periods[label], cap=periods[label].cap + fix.change)
        elif family == "target_return":
            problem = replace(problem, target_return=problem.target_return - fix.change)
        elif family == "target_roi":
            problem = replace(problem, target_roi=problem.target_roi - fix.change)
        elif family == "group_min":
            groups[label] = replace(groups[label], min_share=groups[label].min_share - fix.change)
        elif family == "group_max":
            groups[label] = replace(groups[label], max_share=groups[label].max_share + fix.change)
        elif family == "tolerance_percent":
            incremental = problem.incremental
            problem = replace(problem, incremental=replace(
                incremental, tolerance=incremental.tolerance + fix.change / 100))
        else:
            raise AssertionError(f"no test applies {fix.constraint}")
    return replace(problem, channels=tuple(channels.values()), periods=tuple(periods.values()),
                   groups=tuple(groups.values()))


def test_a_cap_is_raised_past_the_old_money_where_the_money_is_raised_too():
    # A deal of 150,000 in the one period, capped at 120,000, 100,000 available, a target
    # return of 400,000 that only the deal reaches: raise the money by 50,000 and the cap by
    # 30,000 (80,050 of penalised change, against 400,000 for the target lowered alone). The
    # elastic model cut the curves at the old money, where the cap did not bind: it named the
    # money alone, and the request with it applied was still impossible. (A deal takes no
    # `max`, so the cap is the period's: the API refuses a deal with one.)
    problem = Problem(total=D(100_000), decimals=2, reserve=NONE, objective="min_spend",
                      target_return=D(400_000), channels=(Channel("kol", Deal(D(150_000), D(500_000))),),
                      periods=(Period("p1", cap=D(120_000)),))
    assert check_problem(problem) == []
    found = conflicts(problem)
    together = [fix for fix in found if not fix.alone]
    assert {(fix.constraint, fix.change) for fix in together} == \
        {("budget", D("50000.00")), ("period_cap:p1", D("30000.00"))}
    assert solve(applied(problem, together)).spend == D("150000.00")
    alone, = [fix for fix in found if fix.alone]
    assert (alone.constraint, alone.change) == ("target_return", D("400000.00"))
    assert solve(applied(problem, [alone])).spend == 0


@pytest.mark.parametrize("problem, named", [
    # 3 a unit capped at 50,000, a target of 450,000 with 100,000: the money raised by 50,000
    # and the cap by 100,000, past the old money (150,050 of change, against 200,000 for the
    # cap to the old money and the target lowered by 150,000, named before).
    (Problem(total=D(100_000), decimals=2, reserve=NONE, objective="min_spend",
             target_return=D(450_000), channels=(Channel("a", Linear(D(3)), max=D(50_000)),)),
     {("budget", D("50000.00")), ("max:a", D("100000.00"))}),
    # No cap at all: the money raised by 50,000 (the curve ended at the old money, so the
    # target lowered by 150,000 was named).
    (Problem(total=D(100_000), decimals=2, reserve=NONE, objective="min_spend",
             target_return=D(450_000), channels=(Channel("a", Linear(D(3))),)),
     {("budget", D("50000.00"))}),
    # Two periods capped at 30,000: one of them raised past the old money.
    (Problem(total=D(100_000), decimals=2, reserve=NONE, objective="min_spend",
             target_return=D(450_000), channels=(Channel("a", Linear(D(3))),),
             periods=(Period("p1", cap=D(30_000)), Period("p2", cap=D(30_000)))),
     {("budget", D("50000.00")), ("period_cap:p1", D("90000.00"))}),
])
def test_the_smallest_fix_may_spend_past_the_old_money(problem, named):
    found = conflicts(problem)
    together = [fix for fix in found if not fix.alone]
    assert {(fix.constraint, fix.change) for fix in together} == named
    assert solve(applied(problem, together)).spend == D("150000.00")
    for alone in (fix for fix in found if fix.alone):
        assert solve(applied(problem, [alone])).status == "optimal"


def test_a_min_if_used_channel_is_offered_to_go_unused_at_a_tolerance_of_100():
    # a's min of 50,000 holds only if used, but its previous 60,000 at 10 % make a floor of
    # 54,000 (`min_if_used` with an incremental floor: used it must be). 30,000 available,
    # b held to 18,000-22,000. At 100 % a's floor is 0, so a may go unused and b take 30,000
    # (its cap is 40,000 then): that alone is a fix, besides the elastic model's set.
    problem = Problem(total=D(30_000), decimals=2, reserve=NONE, channels=(
        Channel("a", Linear(D(2)), min=D(50_000), min_if_used=True),
        Channel("b", Linear(D(1)))),
        incremental=Incremental({"a": D(60_000), "b": D(20_000)}, D("0.1")))
    found = conflicts(problem)
    unused, = [fix for fix in found if fix.alone]
    assert (unused.constraint, unused.change) == ("tolerance_percent", D("90.00"))
    assert "leave channel a unused" in unused.detail
    answer = solve(applied(problem, [unused]))
    assert [a.amount for a in answer.allocations] == [D("0.00"), D("30000.00")]
    assert solve(applied(problem, [fix for fix in found if not fix.alone])).status == "optimal"


def test_leaving_a_channel_unused_is_not_offered_where_it_is_no_fix():
    # b's own min of 120,000 is past the 100,000 available whatever a does.
    problem = Problem(total=D(100_000), decimals=2, reserve=NONE, channels=(
        Channel("a", Linear(D(2)), min=D(50_000), min_if_used=True),
        Channel("b", Linear(D(1)), min=D(120_000))),
        incremental=Incremental({"a": D(60_000)}, D("0.1")))
    found = conflicts(problem)
    assert not any("unused" in fix.detail for fix in found)
    assert solve(applied(problem, found)).status == "optimal"


def enough_alone(found: list[Conflict]) -> list[Conflict]:
    """The fixes a 422 calls enough alone: those marked so, and the set's part where the set
    has one part (as the what-if's answer tells them)."""
    together = [fix for fix in found if not fix.alone]
    return [fix for fix in found if fix.alone] + (together if len(together) == 1 else [])


# Trial 18f, k3: a hard min of 40,000 on a curve returning 0.857 a unit there, 10,000 left
# for a channel at 1.2, a target of 1.5: no plan reaches more than 0.926 a unit.
HARD_MIN_ROI = Problem(total=D(50_000), decimals=2, reserve=NONE, objective="target_roi",
                       target_roi=D("1.5"), channels=(
                           Channel("a", Hill(D(60_000), D(30_000), D(1)), min=D(40_000)),
                           Channel("b", Linear(D("1.2")))))
# Trial 18f, t3: a target of 100 a unit; ts returns thousands on its first cent but, used,
# spends at least 5,000 (3 a unit); p must spend 100 and returns 4 a unit at most.
STEEP_ROI = Problem(total=D(1_000_000), decimals=2, reserve=NONE, objective="target_roi",
                    target_roi=D(100), channels=(
                        Channel("ts", Hill(D(30_000), D(4000), D("0.1")), min=D(5000),
                                min_if_used=True),
                        Channel("p", Points(((D(0), D(0)), (D(50), D(10)), (D(150), D(600)),
                                             (D(300), D(700)))), min=D(100))))
# Trial 18f, c4: a's min of 60,000 and a group that puts as much on b do not fit the periods'
# 80,000: lowering a's min by 20,000 is enough alone.
SHARE_AND_MIN = Problem(total=D(100_000), decimals=2, reserve=NONE, channels=(
    Channel("a", Linear(D(2)), min=D(60_000)), Channel("b", Linear(D(1)), min=D(30_000))),
    groups=(Group("g", ("b",), min_share=D("0.5")),),
    periods=(Period("p1", cap=D(50_000)), Period("p2", cap=D(30_000))))


@pytest.mark.parametrize("problem", [HARD_MIN_ROI, STEEP_ROI], ids=["k3", "t3"])
def test_target_roi_is_named_as_the_ratio_to_lower_it_to(problem):
    # It was named as money ("lower target_roi: the return falls 9695.00 short of it"), which a
    # user cannot set: target_roi is a ratio.
    found = conflicts(problem)
    lowered = [fix for fix in found if fix.constraint == "target_roi"]
    assert lowered
    for fix in lowered:
        assert 0 < fix.change < problem.target_roi
        assert fix.detail == f"lower target_roi to at most {problem.target_roi - fix.change}"
    for fix in enough_alone(found):
        assert solve(applied(problem, [fix])).spend > 0, fix
    together = [fix for fix in found if not fix.alone]
    assert solve(applied(problem, together)).spend > 0


def test_the_most_a_plan_returns_per_unit_is_the_target_roi_named():
    # The elastic plan spends least below the target (a alone at 0.857 a unit), where the
    # 10,000 left on b at 1.2 reach 0.926: 0.857 was a larger change than needed.
    fix, = [fix for fix in enough_alone(conflicts(HARD_MIN_ROI)) if fix.constraint == "target_roi"]
    assert D("0.925") < HARD_MIN_ROI.target_roi - fix.change <= D("0.925714")


@pytest.mark.parametrize("problem", [HARD_MIN_ROI, STEEP_ROI, SHARE_AND_MIN],
                         ids=["k3", "t3", "c4"])
def test_every_fix_named_enough_alone_is_enough_applied_alone(problem):
    # t3: "lower the minimum of channel p by 50.00" was the elastic set's one part, so enough
    # alone; applied, the request had no plan (HiGHS's tolerances let ts spend a dollar
    # unused, and its first cents return thousands).
    for fix in enough_alone(conflicts(problem)):
        answer = solve(applied(problem, [fix]))
        assert answer.status in ("optimal", "feasible") and answer.spend > 0, fix


def test_a_part_of_the_set_enough_alone_is_offered():
    # c4 named the min lowered by 10,000 with the group's share, not the min by 20,000 alone.
    found = conflicts(SHARE_AND_MIN)
    assert ("min:a", D("20000.00"), True) in {(fix.constraint, fix.change, fix.alone)
                                              for fix in found}


# Trial 18f, m5 and m8: min_spend on one channel. The changes were told on the curves' pieces,
# which lie below a concave curve: 35.78 to 211.23 more than needed.
ONE_HILL = Problem(total=D(1_000_000), decimals=2, reserve=NONE, objective="min_spend",
                   target_return=D(600_000), channels=(
                       Channel("a", Hill(D(500_000), D(1000), D("0.5"))),))
S_CURVE_WEEKS = Problem(total=D(100_000), decimals=2, reserve=NONE, objective="min_spend",
                        target_return=D(500_000), channels=(
                            Channel("s", Hill(D(800_000), D(150_000), D(3))),),
                        periods=(Period("p1"), Period("p2", weight=D("1.5"))))


@pytest.mark.parametrize("problem, rule, least", [
    # All of 1,000,000 returns 484,673.2849…: the target lowered by 115,326.72, not 115,361.22.
    (ONE_HILL, "target_return", D("115326.72")),
    # All of 100,000 in p2 returns 0.75 × R(200,000) = 421,978.0219…
    (S_CURVE_WEEKS, "target_return", D("78021.98")),
    # 500,000 in p2 needs 0.75 × R(2m) = 500,000: m = 75,000 × 5^(1/3) = 128,248.196…
    (S_CURVE_WEEKS, "budget", D("28248.20")),
], ids=["m5-target", "m8-target", "m8-money"])
def test_a_fix_is_the_smallest_that_works_to_the_cent(problem, rule, least):
    fix, = [fix for fix in enough_alone(conflicts(problem)) if fix.constraint == rule]
    assert fix.change == least
    assert solve(applied(problem, [fix])).status in ("optimal", "feasible")
    with pytest.raises((Infeasible, SolveTimeout)):
        solve(applied(problem, [replace(fix, change=fix.change - D("0.01"))]))


# Trial 18g, t4b_grp_max_min: a's min of 40,000 is 0.4 of the most that can be spent
# (100,000), over g's max_share of 0.3.
SHARE_OVER = Problem(total=D(100_000), decimals=2, reserve=NONE, channels=(
    Channel("a", Linear(D(3)), min=D(40_000)), Channel("b", Linear(D(1)), min=D(30_000))),
    groups=(Group("g", ("a",), max_share=D("0.3")),))
# Trial 18g, probe3: min_spend with a's share at 0.7, a's max, the periods' caps and the
# target all in conflict.
SHARE_SHORT = Problem(total=D(100_000), decimals=2, reserve=NONE, objective="min_spend",
                      target_return=D(300_000), channels=(
                          Channel("a", Hill(D(200_000), D(30_000), D(2)), min=D(20_000),
                                  max=D(50_000)),
                          Channel("b", Linear(D("1.5")), max=D(40_000))),
                      groups=(Group("g", ("a",), min_share=D("0.7")),),
                      periods=(Period("p1", cap=D(30_000)),
                               Period("p2", weight=D(2), cap=D(40_000))))


def test_a_groups_share_is_named_as_the_share_a_user_sets():
    # It was named as money ("raise the maximum share of group g: it is 10000.00 over"), which
    # a user cannot set, and which no fix could be checked with.
    fix, = conflicts(SHARE_OVER)
    assert (fix.constraint, fix.change) == ("group_max:g", D("0.1"))
    assert fix.detail == "raise the maximum share of group g by 0.1 (to 0.4)"
    assert solve(applied(SHARE_OVER, [fix])).status == "optimal"
    # The optimizer applies it too, so that a share named alone is checked like any fix.
    assert infeasibility.applied(SHARE_OVER, NONE.amount, fix) == applied(SHARE_OVER, [fix])
    with pytest.raises(Infeasible):
        solve(applied(SHARE_OVER, [replace(fix, change=fix.change - D("0.000001"))]))


def test_a_set_with_a_groups_share_is_enough_applied():
    found = conflicts(SHARE_SHORT)
    share, = [fix for fix in found if fix.constraint == "group_min:g"]
    assert share.detail.startswith(f"lower the minimum share of group g by "
                                   f"{share.change.normalize():f} (to ")
    together = [fix for fix in found if not fix.alone]
    assert solve(applied(SHARE_SHORT, together)).status in ("optimal", "feasible")
    for fix in enough_alone(found):
        assert solve(applied(SHARE_SHORT, [fix])).status in ("optimal", "feasible"), fix


# A channel held at all of the money by its min and max, on an S-curve's convex part where
# 150,000 returns 53,311.36 (0.355409 a unit): a target of 0.356 needs more money and a higher
# max together. The request's own elastic model has no row for a max at the money; the wider
# model's has, and trying that part alone on the request's own model raised a KeyError (a 500).
HELD_S_CURVE = Problem(total=D(150_000), decimals=2, reserve=NONE, objective="target_roi",
                       target_roi=D("0.356"), channels=(
                           Channel("s", Hill(D(1_000_000), D(200_000), D(10)), min=D(150_000),
                                   max=D(150_000)),))


def test_a_cap_only_the_wider_model_holds_is_named_with_the_money():
    found = conflicts(HELD_S_CURVE)
    assert {fix.constraint for fix in found if not fix.alone} >= {"budget", "max:s"}
    fix, = [fix for fix in enough_alone(found) if fix.constraint == "target_roi"]
    assert fix.detail == "lower target_roi to at most 0.355409"
    assert solve(applied(HELD_S_CURVE, [fix])).spend == D("150000.00")


@pytest.mark.parametrize("problem, rule, least, less", [
    # a alone at m returns 60,000 / (m + 30,000) a unit: 1.5 at m = 10,000, so its min of
    # 40,000 lowered by 30,000.00 (30,036.61 was named, told on the pieces).
    (HARD_MIN_ROI, "min:a", D("30000.00"), D("0.01")),
    # p's 150 return 600: 4.000000 a unit is met (3.999999 was named, the pieces' figure).
    (STEEP_ROI, "target_roi", D("96.000000"), D("0.000001")),
], ids=["k3-min", "t3-target"])
def test_a_fix_is_the_smallest_that_works_to_the_unit(problem, rule, least, less, monkeypatch):
    # Each step is a solve (t3's take 0.3-0.6 s, 23 s in all at load 8): on a busy machine the
    # 0.5 s given to them, or the default 30 s limit and its margin, would end the search
    # early, which this test is not about.
    monkeypatch.setattr(infeasibility, "SMALLEST_SECONDS", 30.0)
    monkeypatch.setattr(infeasibility, "NAMING_SECONDS", 60.0)   # nor by the limit's margin
    fix, = [fix for fix in enough_alone(conflicts(replace(problem, time_limit=60)))
            if fix.constraint == rule]
    assert fix.change == least
    assert solve(applied(problem, [fix])).spend > 0
    with pytest.raises(Infeasible):
        solve(applied(problem, [replace(fix, change=fix.change - less)]))


# Trial 19's ms30_8M_fixA_plus1c in small: a min_spend target 0.07 past the most return, which
# puts a at its max (2 a unit) and b's 90,000 where it earns 0.51 a unit. Each unit moved from b
# to a gains 1.49: raising a's max by 0.05 returns 20,000.10 + R(89,999.95) = 148,571.503…,
# by 0.04 148,571.488…. The pieces named 7.93 (or 8.56), and stepping down from it by doubling
# steps did not reach 0.05 in its time.
LITTLE_A_UNIT = Problem(total=D(100_000), decimals=2, reserve=NONE, objective="min_spend",
                        target_return=D("148571.50"), channels=(
                            Channel("a", Linear(D(2)), max=D(10_000)),
                            Channel("b", Hill(D(200_000), D(50_000), D(1)))))


def test_a_change_named_many_times_too_large_is_made_the_smallest(monkeypatch):
    monkeypatch.setattr(infeasibility, "SMALLEST_SECONDS", 30.0)
    monkeypatch.setattr(infeasibility, "NAMING_SECONDS", 60.0)   # nor by the limit's margin
    fix, = [fix for fix in enough_alone(conflicts(LITTLE_A_UNIT)) if fix.constraint == "max:a"]
    assert fix.change == D("0.05")
    assert solve(applied(LITTLE_A_UNIT, [fix])).expected_return >= D("148571.50")
    with pytest.raises(Infeasible):
        solve(applied(LITTLE_A_UNIT, [replace(fix, change=D("0.04"))]))


def test_min_spend_changes_are_sized_in_the_time_kept_for_it(monkeypatch):
    # Under min_spend each check solves for the most return (2-3 s of CPU at 30 x 8, trial 19),
    # so the checks get what the elastic model leaves of the time limit (half at least), not
    # SMALLEST_SECONDS: with none of those, 0.05 is still reached.
    seconds = []
    honest = infeasibility._honest

    def timed(form, cells, given, start=None):
        seconds.append(given)
        return honest(form, cells, given, start)

    monkeypatch.setattr(infeasibility, "_honest", timed)
    monkeypatch.setattr(infeasibility, "SMALLEST_SECONDS", 0.0)
    fix, = [fix for fix in enough_alone(conflicts(LITTLE_A_UNIT)) if fix.constraint == "max:a"]
    assert fix.change == D("0.05")
    assert max(seconds) <= LITTLE_A_UNIT.time_limit * infeasibility.SIZING_SHARE


# A fuzzed request: c1's min of 60,000 on a curve of 0.56 a unit there, c3's same curve
# steeper near zero, a target of 3.384. The elastic model's set, c1's min lowered by
# 47,019.47, left the plan 4.32 short of the target applied: the set was not checked.
SET_SHORT = Problem(total=D(60_000), decimals=2, reserve=NONE, objective="target_roi",
                    target_roi=D("3.384"), channels=(
                        Channel("c0", Points(((D(0), D(0)), (D(1000), D("1588.89")),
                                              (D(3000), D("5089.73"))))),
                        Channel("c1", Hill(D(50_000), D(5000), D("0.8")), min=D(60_000)),
                        Channel("c2", Deal(D(5000), D("9458.8"))),
                        Channel("c3", Hill(D(50_000), D(5000), D("0.8")))))


def test_the_set_of_changes_is_enough_applied_together_to_the_cent(monkeypatch):
    monkeypatch.setattr(infeasibility, "SMALLEST_SECONDS", 30.0)
    monkeypatch.setattr(infeasibility, "NAMING_SECONDS", 60.0)   # nor by the limit's margin
    together = [fix for fix in conflicts(SET_SHORT) if not fix.alone]
    assert [fix.constraint for fix in together] == ["min:c1"]
    assert solve(applied(SET_SHORT, together)).spend > 0
    with pytest.raises(Infeasible):
        solve(applied(SET_SHORT, [replace(together[0], change=together[0].change - D("0.01"))]))


# Fuzzed (max_profit): c0's min of 40,000 and its group's max share of 0.1 cannot both hold
# with 60,000; the set named together, c0's min lowered by 5,000 and the share raised by
# 0.483334, was one millionth short applied: the elastic model holds the share to its
# tolerance, which the cents miss. Solved applied, the set is widened by what the changed
# request names again (0.000001) and works.
SET_A_MILLIONTH_SHORT = Problem(
    total=D(60_000), decimals=2, reserve=NONE, objective="max_profit", channels=(
        Channel("c0", Points(((D(0), D(0)), (D(1000), D("2927.2480178697456")),
                              (D(3000), D("5205.423833583776")))), min=D(40_000),
                max=D(100_000)),
        Channel("c1", Deal(D(20_000), D("49921.49"))),
        Channel("c2", Points(((D(0), D(0)), (D(1000), D("3703.024064345156")),
                              (D(3000), D("5453.518660378646")))), max=D(5000))),
    groups=(Group("g", ("c0",), max_share=D("0.1")),))


def test_a_set_with_no_return_floor_is_enough_applied():
    found = conflicts(SET_A_MILLIONTH_SHORT)
    together = [fix for fix in found if not fix.alone]
    assert {fix.constraint for fix in together} == {"min:c0", "group_max:g"}
    assert solve(applied(SET_A_MILLIONTH_SHORT, together)).spend > 0
