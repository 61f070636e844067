"""target_roi's answers are true: a plan the pieces miss is answered where the true curves meet
the target, and a request is refused as impossible, never as out of time, when time is left."""
from dataclasses import replace
from decimal import Decimal as D

import pytest

from services.budget.optimizer import (
    Channel,
    Deal,
    Group,
    Hill,
    Infeasible,
    Linear,
    Period,
    Problem,
    Reserve,
    infeasibility,
    solve,
)

NONE = Reserve(amount=D(0))

# Trial 18f, k3 with a's min lowered by 30,000: 10,000 on a returns 60,000 × 10,000 / 40,000 =
# 15,000, exactly 1.5 a unit. The pieces lie below the curve, and the request was refused with
# "lower target_roi to at most 1.498666".
AT_THE_FLOOR = Problem(total=D(50_000), decimals=2, reserve=NONE, objective="target_roi",
                       target_roi=D("1.5"), channels=(
                           Channel("a", Hill(D(60_000), D(30_000), D(1)), min=D(10_000)),
                           Channel("b", Linear(D("1.2")))))


def test_a_plan_at_the_floors_that_meets_the_target_is_answered():
    answer = solve(AT_THE_FLOOR)
    assert (answer.status, answer.spend, answer.expected_return) == \
        ("feasible", D("10000.00"), D("15000.00"))


# A fuzzed request: c1 must spend 10 at 2.2 a unit, c2's S-curve peaks near 6 a unit in p0
# (capped at 100), a deal returns 3.8 a unit. The solver's rounded plan (148.30 for 848.67)
# was short of 6.1663 and the cuts did not mend it: "no plan meeting target_roi to the cent
# found within 10 s" in 0.3 s.
SHORT_OF_IT = Problem(
    total=D(1_000_000), decimals=2, reserve=NONE, objective="target_roi", target_roi=D("6.1663"),
    time_limit=10.0, channels=(
        Channel("c0", Deal(D(500), D("1899.19"))),
        Channel("c1", Linear(D("2.2")), min=D(10)),
        Channel("c2", Hill(D(1000), D(100), D(6)), max=D(5000))),
    periods=(Period("p0", weight=D("1.4"), cap=D(100)), Period("p1", weight=D("0.5"))))
# Another: a deal that must be 70 % of the spend returns 2.06 a unit, c3's deal 3.01, and c2
# (50 a unit) may not be used below 20,000, which the share leaves no room for. The plan spent
# nothing: "no plan that spends found within 10 s".
SHARE_OF_A_DEAL = Problem(
    total=D(1_000_000), decimals=2, reserve=NONE, objective="target_roi", target_roi=D("3.0728"),
    time_limit=10.0, channels=(
        Channel("c0", Deal(D(20_000), D("41124.15"))),
        Channel("c1", Linear(D("1.24")), max=D(5000)),
        Channel("c2", Hill(D(1_000_000), D(100), D(3)), min=D(20_000), max=D(100_000),
                min_if_used=True),
        Channel("c3", Deal(D(500), D("1506.43")))),
    periods=(Period("p0"), Period("p1", weight=D("0.5"))),
    groups=(Group("g", ("c0",), min_share=D("0.7")),))


@pytest.mark.parametrize("problem", [SHORT_OF_IT, SHARE_OF_A_DEAL], ids=["cut", "nothing"])
def test_a_target_no_plan_found_meets_is_refused_with_a_target_that_works(problem):
    with pytest.raises(Infeasible) as caught:
        solve(problem)
    fix, = caught.value.conflicts
    assert fix.constraint == "target_roi" and 0 < fix.change < problem.target_roi
    answer = solve(replace(problem, target_roi=problem.target_roi - fix.change))
    assert answer.spend > 0
    assert answer.expected_return >= (problem.target_roi - fix.change) * answer.spend - D("0.01")


# A fuzzed request: c2 must spend 20,000 with 1,000 available; its S-curve returns about 1.56
# a unit at 20,000 (k 5,000, alpha 6: nearly all of its beta of 1,000,000 past 20,000 is
# beyond its steep part), short of 1.6243. The elastic set, the money raised by 895.20 and
# c2's min lowered by 18,104.81, met the target on the pieces only; applied, the request
# named target_roi lowered by 0.064140 more, and the set now carries it.
MONEY_AND_MIN = Problem(
    total=D(1000), decimals=2, reserve=NONE, objective="target_roi", target_roi=D("1.6243"),
    time_limit=10.0, channels=(
        Channel("c0", Linear(D("2.86"))),
        Channel("c1", Hill(D(1000), D(5000), D(6)), max=D(5000)),
        Channel("c2", Hill(D(1_000_000), D(5000), D(6)), min=D(20_000)),
        Channel("c3", Deal(D(20_000), D("55207.73")))))


def test_a_set_the_target_keeps_short_carries_the_target_lowered():
    with pytest.raises(Infeasible) as caught:
        solve(MONEY_AND_MIN)
    together = [fix for fix in caught.value.conflicts if not fix.alone]
    assert "target_roi" in {fix.constraint for fix in together}
    changed = MONEY_AND_MIN
    for fix in together:
        family, _, label = fix.constraint.partition(":")
        if family == "budget":
            changed = replace(changed, total=changed.total + fix.change)
        elif family == "min":
            changed = replace(changed, channels=tuple(
                replace(c, min=c.min - fix.change) if c.id == label else c
                for c in changed.channels))
        else:
            changed = replace(changed, target_roi=changed.target_roi - fix.change)
    assert solve(changed).spend > 0


# A fuzzed request: c0's min of 20,000 past the 1,000 available, on a curve that returns
# almost nothing there. The elastic set was c0's min lowered alone (by 19,010.75); applied,
# the plan was 0.000609 a unit short of 0.5415, and no lower min makes it work.
MIN_PAST_THE_MONEY = Problem(
    total=D(1000), decimals=2, reserve=NONE, objective="target_roi", target_roi=D("0.5415"),
    time_limit=10.0, channels=(
        Channel("c0", Hill(D(1000), D(200_000), D(6)), min=D(20_000)),
        Channel("c1", Hill(D(50_000), D(100), D(3))),
        Channel("c2", Linear(D("1.25"))),
        Channel("c3", Deal(D(500), D("1079.87")))),
    periods=(Period("p0", cap=D(100)), Period("p1", weight=D("0.5")),
             Period("p2", weight=D("0.5"))))


def test_a_set_of_one_part_that_falls_short_carries_the_target_lowered(monkeypatch):
    # The set's check is given time: cut short (1 s was not enough in a CI run at load 5) a
    # set is named as the elastic model found it, which the README does not guarantee.
    monkeypatch.setattr(infeasibility, "CHECK_SECONDS", 5.0)
    with pytest.raises(Infeasible) as caught:
        solve(MIN_PAST_THE_MONEY)
    together = {fix.constraint: fix.change for fix in caught.value.conflicts if not fix.alone}
    assert set(together) == {"min:c0", "target_roi"}
    changed = replace(MIN_PAST_THE_MONEY, target_roi=D("0.5415") - together["target_roi"],
                      channels=tuple(replace(c, min=c.min - together["min:c0"]) if c.id == "c0"
                                     else c for c in MIN_PAST_THE_MONEY.channels))
    assert solve(changed).spend > 0


# Trial 18g (`t2b_hardmin_w`): m must spend 50,000 on a Hill curve (beta 300,000, k 20,000,
# alpha 0.8) over two periods of weight 1 and 1.7, each half the horizon, so a period's curve
# is w · 0.5 · R(x / 0.5). Beside l at 1.2 a unit, the best return per unit is m at its floor
# split where the periods' slopes meet: 19,868.19 and 30,131.81 return 275,459.7356, 5.5091947
# a unit (the trial's witness plan). The envelopes' pieces split it 20,588.84 / 29,411.16
# (5.508433), and the 422 named 5.507771.
HARD_MIN_WEIGHTED = Problem(total=D(500_000), decimals=2, reserve=NONE, objective="target_roi",
                            target_roi=D(9), channels=(
                                Channel("m", Hill(D(300_000), D(20_000), D("0.8")),
                                        min=D(50_000)),
                                Channel("l", Linear(D("1.2")))),
                            periods=(Period("a"), Period("b", weight=D("1.7"))))


def test_a_floor_split_over_weighted_periods_names_the_best_target_it_reaches():
    with pytest.raises(Infeasible) as refused:
        solve(HARD_MIN_WEIGHTED)
    lowered = [c for c in refused.value.conflicts if c.constraint == "target_roi"]
    assert [(c.change, c.alone) for c in lowered] == [(D("3.490806"), True)]
    answer = solve(replace(HARD_MIN_WEIGHTED, target_roi=D("5.509194")))
    m, _ = answer.allocations
    assert [p.amount for p in m.periods] == [D("19868.19"), D("30131.81")]
    assert answer.spend == D("50000.00")


# Fuzzed requests: one channel used at least at its floor on a concave Hill curve. The floor's
# figure was the envelope's pieces plus the curve's rise above them, a bound no plan reaches,
# and the target lowered to it was refused again applied. c0 at its floor of 10 returns
# 50,000 · 10^0.8 / (10^0.8 + 200,000^0.8) = 18.1129 (1.811292 a unit; 1.834140 was named);
# at 20,000 over two equal halves, 10,000 each, 2 · 0.5 · 1,000 · 20,000 / 20,100 = 995.02
# (0.049751 a unit; 0.049763 was named). With 1,000,000 to spend the first one's bound is
# 2.68 (its curve cut coarser), and the 422 named nothing.
@pytest.mark.parametrize(("total", "curve", "floor", "periods", "target", "reached"), [
    (1000, Hill(D(50_000), D(200_000), D("0.8")), D(10), (), D("1.888"), D("1.811292")),
    (1_000_000, Hill(D(50_000), D(200_000), D("0.8")), D(10), (), D("1.888"), D("1.811292")),
    (1_000_000, Hill(D(1_000), D(100), D(1)), D(20_000), (Period("p0"), Period("p1")),
     D("4.302"), D("0.049751")),
    # Fuzzed: its only period weighs 0, so the floor returns nothing: 0 a unit, a ratio the
    # plan reaches (it was taken for no plan, −∞, and the 422 was a 500).
    (10_000, Linear(D(2)), D(100), (Period("p0", weight=D(0)),), D(1), D(0)),
])
def test_a_floor_is_named_at_what_it_reaches(total, curve, floor, periods, target, reached):
    request = Problem(total=D(total), decimals=2, reserve=NONE, objective="target_roi",
                      target_roi=target, periods=periods,
                      channels=(Channel("c0", curve, min=floor, min_if_used=True),))
    with pytest.raises(Infeasible) as refused:
        solve(request)
    assert [c.change for c in refused.value.conflicts] == [target - reached]
    # Applied, it has a plan (its return on the true curves meets the target; as answered,
    # rounded cell by cell, 18.1129 shows 18.11).
    assert solve(replace(request, target_roi=reached)).spend >= floor


def test_a_min_if_used_floor_named_as_the_best_is_a_plan_at_that_target():
    # Fuzzed: c1 used spends at least 10, split 5 and 5 over two equal halves: 2 · 0.5 · 1,000 ·
    # 10 / (10 + 100) = 90.909091, 9.090909 a unit, named; at that target the plans tried on
    # the true curves held only hard floors, and the request was refused again (9.090882).
    request = Problem(total=D(60_000), decimals=2, reserve=NONE, objective="target_roi",
                      target_roi=D("9.5379"), periods=(Period("p0"), Period("p1")), channels=(
                          Channel("c0", Hill(D(1000), D(100), D("0.5")), min=D(1000),
                                  min_if_used=True),
                          Channel("c1", Hill(D(1000), D(100), D(1)), min=D(10),
                                  min_if_used=True),
                          Channel("c2", Linear(D("2.2")))))
    with pytest.raises(Infeasible) as refused:
        solve(request)
    assert [c.change for c in refused.value.conflicts] == [D("0.446991")]
    answer = solve(replace(request, target_roi=D("9.090909")))
    assert [a.amount for a in answer.allocations] == [0, D(10), 0]


def test_a_tried_plan_whose_cents_break_a_share_is_no_refusal():
    # Fuzzed: the plan holding the group's share of 0.7 that returns most per unit, tried on
    # the true curves, rounds to cents that hold no split of the share (3e-6 short). That
    # plan was answered as the request's conflict, "lower the minimum share of group g by
    # 0.000003", which applied left it as impossible as before. It is a plan that fails, not a
    # refusal: the changes named now are the request's, each enough where it says so.
    request = Problem(
        total=D(1_000_000), decimals=2, reserve=NONE, objective="target_roi",
        target_roi=D("10.0119"), channels=(
            Channel("c0", Hill(D(50_000), D(5_000), D(2))),
            Channel("c1", Hill(D(1_000), D(5_000), D(3)), max=D(100_000)),
            Channel("c2", Hill(D(1_000), D(200_000), D("0.8")), min=D(1_000), max=D(5_000))),
        periods=(Period("p0", weight=D("1.4"), cap=D(100)), Period("p1"),
                 Period("p2", weight=D("0.5"))),
        groups=(Group("g", ("c0",), min_share=D("0.7")),))
    with pytest.raises(Infeasible) as refused:
        solve(request)
    found = refused.value.conflicts
    assert "group_min:g" not in {c.constraint for c in found}
    for fixes in [[c] for c in found if c.alone] + [[c for c in found if not c.alone]]:
        changed = request
        for fix in fixes:
            if fix.constraint == "target_roi":
                changed = replace(changed, target_roi=changed.target_roi - fix.change)
            else:
                assert fix.constraint == "min:c2"
                changed = replace(changed, channels=tuple(
                    replace(c, min=c.min - fix.change) if c.id == "c2" else c
                    for c in changed.channels))
        assert solve(changed).spend > 0


def test_shares_only_nothing_holds_carry_the_target_they_leave_out_of_reach():
    # Fuzzed: the deal c0 (20,000) is past the 1,000 available, so only spending nothing holds
    # its group's share of 0.5; with the share lowered to 0 the best left is c1's S-curve with
    # all 1,000 in one of two halves of weight 0.5: 0.5 · 0.5 · R(2,000) = 0.25 · 50,000 ·
    # 2,000² / (2,000² + 5,000²) = 1,724.14, 1.724137 a unit, under the target of 1.9369. The
    # share was named alone in the set, which applied was refused again.
    request = Problem(total=D(1000), decimals=2, reserve=NONE, objective="target_roi",
                      target_roi=D("1.9369"), channels=(
                          Channel("c0", Deal(D(20_000), D("32339.0"))),
                          Channel("c1", Hill(D(50_000), D(5_000), D(2)))),
                      periods=(Period("p0", weight=D("0.5")), Period("p1", weight=D("0.5"))),
                      groups=(Group("g", ("c0",), min_share=D("0.5")),))
    with pytest.raises(Infeasible) as refused:
        solve(request)
    together = {c.constraint: c.change for c in refused.value.conflicts if not c.alone}
    assert together == {"group_min:g": D("0.5"), "target_roi": D("0.212763")}
    changed = replace(request, target_roi=D("1.724137"),
                      groups=(Group("g", ("c0",), min_share=D(0)),))
    assert solve(changed).spend == D(1000)
