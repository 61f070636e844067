"""An impossible request's conflicts are fixes: the request with them applied has a plan."""
from dataclasses import replace
from decimal import Decimal as D

import pytest

from services.budget.optimizer import (
    Channel,
    Conflict,
    Deal,
    Incremental,
    Infeasible,
    Linear,
    Period,
    Problem,
    Reserve,
    check_problem,
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
        elif family == "tolerance_percent":
            incremental = problem.incremental
            problem = replace(problem, incremental=replace(
                incremental, tolerance=incremental.tolerance + fix.change / 100))
        else:
            raise AssertionError(f"no test applies {fix.constraint}")
    return replace(problem, channels=tuple(channels.values()), periods=tuple(periods.values()))


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
