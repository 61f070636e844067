"""Rounding to the minor unit keeps every group's share, the totals and every bound to the cent."""
import random
from decimal import Decimal

import numpy as np
import pytest

from services.budget import optimizer
from services.budget.optimizer.problem import (
    Channel,
    Group,
    Hill,
    Incremental,
    Linear,
    Period,
    Problem,
)
from services.budget.optimizer.rounding import round_allocation
from services.budget.optimizer.scaled import ScaledProblem

CENT = Decimal("0.01")


def _rounded_channels(problem: Problem, plan: list[float]) -> list[Decimal]:
    """The channel totals `round_allocation` makes of `plan` (money per channel, one period)."""
    model = ScaledProblem(problem)
    cells = model.cells(4e-4)
    spend = np.array([plan[cell.channel] / model.unit for cell in cells])
    rounded = round_allocation(model, cells, spend)
    return [Decimal(int(u)) * CENT for u in rounded.channels.tolist()]


def test_a_group_held_at_its_least_share_in_floats_keeps_it_in_cents() -> None:
    # As in the trial (4,599,999.99 < 0.25 × 18,400,000.00): the members' fractions of a cent
    # are smaller than the other channel's, which plain largest remainder gives the cent.
    problem = Problem(Decimal("18400000.02"), 2, (
        Channel("a", Linear(Decimal(2))), Channel("b", Linear(Decimal(3))),
        Channel("c", Linear(Decimal(1)))),
        groups=(Group("brand", ("a", "b"), min_share=Decimal("0.25")),))
    amounts = _rounded_channels(problem, [2300000.0025, 2300000.0025, 13800000.015])
    assert sum(amounts) == Decimal("18400000.02")
    assert amounts[0] + amounts[1] == Decimal("4600000.01")
    assert amounts[2] == Decimal("13800000.01")


def test_a_group_held_at_its_most_share_keeps_it_and_the_other_bounds() -> None:
    # The trial's figures: 0.21 × 255.78 = 53.7138 allows 53.71 at most, and tv's fraction is
    # the largest, so plain rounding gives it 53.72. The cent goes to search, social being at
    # its max.
    problem = Problem(Decimal("255.78"), 2, (
        Channel("tv", Linear(Decimal(2))), Channel("search", Linear(Decimal(3))),
        Channel("social", Linear(Decimal(1)), max=Decimal("52.06"))),
        groups=(Group("brand", ("tv",), max_share=Decimal("0.21")),))
    amounts = _rounded_channels(problem, [53.7138, 150.003, 52.0632])
    assert amounts == [Decimal("53.71"), Decimal("150.01"), Decimal("52.06")]


def test_a_floor_far_above_the_plan_is_met_within_the_money_available() -> None:
    # a's incremental floor is 45,000 (50,000 - 10 %) where the plan gave it nothing: the
    # floor is kept and the 4.5 M cents come off b, not a cent past the 100,000 available
    # (one cent came off b before: 144,999.99 in all).
    problem = Problem(Decimal(100000), 2, (
        Channel("a", Linear(Decimal("1.1")), min=Decimal(100), min_if_used=True),
        Channel("b", Linear(Decimal(3)))),
        incremental=Incremental({"a": Decimal(50000)}, Decimal("0.1")))
    assert _rounded_channels(problem, [0.0, 100000.0]) == [Decimal("45000.00"),
                                                          Decimal("55000.00")]


def test_a_plan_past_every_periods_cap_keeps_the_shares_within_the_caps() -> None:
    # The solver may pass the caps by its tolerance (1e-9 of the money: cents on tens of
    # millions): here by 0.011 in all. Rounded to 600.02 before, the shares gave a its cent
    # (300.01 of 0.5 x 600.02), then the caps held only 600.01 and the cent that did not fit
    # was a's, whose fractions are the smallest: a 300.00 of 600.01, below 300.005. The
    # totals are now held to the periods' room, 600.01, of which a's share is 300.01.
    problem = Problem(Decimal(1000), 2, (Channel("a", Linear(Decimal(2))),
                                         Channel("b", Linear(Decimal(3)))),
                      groups=(Group("g", ("a",), min_share=Decimal("0.5")),),
                      periods=(Period("p1", cap=Decimal("300.01")),
                               Period("p2", cap=Decimal("300.00"))))
    model = ScaledProblem(problem)
    cells = model.cells(4e-4)
    plan = {(0, 0): 150.002, (0, 1): 150.002, (1, 0): 150.009, (1, 1): 150.009}
    spend = np.array([plan[cell.channel, cell.period] / model.unit for cell in cells])
    rounded = round_allocation(model, cells, spend)
    assert rounded.channels.tolist() == [30001, 30000]
    assert rounded.periods.tolist() == [30001, 30000]


def _random_problem(seed: int, mins: bool = False) -> Problem:
    rng = random.Random(seed)
    # Mins from a stream of their own, so that a seed's problem without them stays the same.
    floors = random.Random(-seed - 1)
    count = rng.randint(3, 7)
    channels = []
    for c in range(count):
        response = (Linear(Decimal(rng.randint(50, 300)) / 100) if rng.random() < 0.4 else
                    Hill(Decimal(rng.randint(50_000, 900_000)), Decimal(rng.randint(5_000, 90_000)),
                         Decimal(rng.choice(["0.7", "1", "1.6", "2.4"]))))
        cap = Decimal(rng.randint(5_000, 120_000)) + Decimal(rng.randint(0, 99)) / 100 \
            if rng.random() < 0.3 else None
        floor = Decimal(floors.randint(500, 9000)) if mins and floors.random() < 0.4 else None
        channels.append(Channel(f"c{c}", response, min=floor, max=cap,
                                min_if_used=floor is not None and floors.random() < 0.6))
    ids = [c.id for c in channels]
    groups = []
    for g in range(rng.randint(1, 3)):
        members = tuple(rng.sample(ids, rng.randint(1, count - 1)))
        low = Decimal(rng.randint(5, 45)) / 100
        high = low + Decimal(rng.randint(10, 50)) / 100 if rng.random() < 0.5 else None
        groups.append(Group(f"g{g}", members, min_share=low if rng.random() < 0.8 else None,
                            max_share=high))
    periods = tuple(Period(f"p{p}", weight=Decimal(rng.randint(80, 130)) / 100,
                           cap=Decimal(rng.randint(30_000, 90_000)) + Decimal("0.37")
                           if rng.random() < 0.3 else None) for p in range(rng.randint(1, 4)))
    total = Decimal(rng.randint(20_000, 200_000)) + Decimal(rng.randint(0, 99)) / 100
    objective = rng.choice(["max_return", "max_profit"])
    return Problem(total, 2, tuple(channels), groups=tuple(groups), periods=periods,
                   objective=objective, time_limit=10)  # type: ignore[arg-type]


# 63, 197 and 386 need units left unspent, moved past several cells or several moves; 237
# with mins: a "min if used" channel the solver left a fraction of a cent, which is not its min.
@pytest.mark.parametrize(("seed", "mins"), [*((seed, False) for seed in [*range(40), 63, 197, 386]),
                                            *((seed, True) for seed in [*range(30), 237])])
def test_random_plans_keep_the_rounding_rule(seed: int, mins: bool) -> None:
    problem = _random_problem(seed, mins)
    try:
        answer = optimizer.solve(problem)
    except optimizer.Infeasible:
        return
    figures = answer.figures
    amounts = dict(zip(answer.channels, figures.money(figures.amounts)))
    spend = sum(amounts.values(), Decimal(0))
    assert spend == answer.spend
    assert answer.reserve + answer.spend + answer.unspent == problem.total
    for channel in problem.channels:
        assert channel.max is None or amounts[channel.id] <= channel.max
        if channel.min is not None and (amounts[channel.id] or not channel.min_if_used):
            assert amounts[channel.id] >= channel.min, channel
        cells = figures.money(figures.cell_amounts[answer.channels.index(channel.id)])
        assert sum(cells, Decimal(0)) == amounts[channel.id]
    for p, period in enumerate(problem.periods):
        used = sum(figures.money(figures.cell_amounts[:, p]), Decimal(0))
        assert period.cap is None or used <= period.cap
    for group in problem.groups:
        held = sum((amounts[c] for c in group.channels), Decimal(0))
        assert group.min_share is None or held >= group.min_share * spend, group
        assert group.max_share is None or held <= group.max_share * spend, group


def test_a_share_no_cent_split_holds_is_refused_naming_the_share():
    # Trial 18f, c4 with a's min at 40,000.01: b must hold half the spend and the caps allow
    # 80,000, so no plan in cents exists; the solver's tolerance (1e-7 of the money) let its
    # plan through and the answer was `optimal` with a 40,000.01 and b 39,999.99.
    def asked(least: str) -> Problem:
        return Problem(total=Decimal(100_000), decimals=2, channels=(
            Channel("a", Linear(Decimal(2)), min=Decimal(least)),
            Channel("b", Linear(Decimal(1)), min=Decimal(30_000))),
            groups=(Group("g", ("b",), min_share=Decimal("0.5")),),
            periods=(Period("p1", cap=Decimal(50_000)), Period("p2", cap=Decimal(30_000))))

    with pytest.raises(optimizer.Infeasible) as caught:
        optimizer.solve(asked("40000.01"))
    fix, = caught.value.conflicts
    assert fix.detail == "lower the minimum share of group g by 0.000001 (to 0.499999)"
    group, = asked("40000.01").groups
    eased = Group("g", ("b",), min_share=group.min_share - fix.change)
    answer = optimizer.solve(Problem(**{**asked("40000.01").__dict__, "groups": (eased,)}))
    a, b = (allocation.amount for allocation in answer.allocations)
    assert answer.status == "optimal" and a >= Decimal("40000.01") and b >= eased.min_share * (a + b)
    assert [a.amount for a in optimizer.solve(asked("40000.00")).allocations] == \
        [Decimal("40000.00"), Decimal("40000.00")]


def test_a_full_period_passes_its_channels_unit_to_their_next_cell() -> None:
    # Fractions of a cent per cell: a p0 .9, p1 .6, p2 .0; b p0 .8, p1 .5, p2 .1. The totals
    # are 30.02 for a and 30.01 for b (6,002.9 cents wanted: 6,003, a's .5 before b's .4), so
    # a lacks 2 cents over its cells' floors and b 1, and each period has room for 1. By falling
    # fraction: a's p0 takes p0's cent, b's p0 is refused, a's p1 takes p1's, b's p1 is refused
    # and b's p2 takes p2's.
    problem = Problem(Decimal(1000), 2, (Channel("a", Linear(Decimal(2))),
                                         Channel("b", Linear(Decimal(3)))),
                      periods=tuple(Period(f"p{p}", cap=Decimal("20.01")) for p in range(3)))
    model = ScaledProblem(problem)
    cells = model.cells(4e-4)
    plan = {(0, 0): 10.009, (0, 1): 10.006, (0, 2): 10.0,
            (1, 0): 10.008, (1, 1): 10.005, (1, 2): 10.001}
    spend = np.array([plan[cell.channel, cell.period] / model.unit for cell in cells])
    rounded = round_allocation(model, cells, spend)
    units = {(cell.channel, cell.period): units
             for cell, units in zip(cells, rounded.units.tolist())}
    assert [[units[c, p] for p in range(3)] for c in range(2)] == [[1001, 1001, 1000],
                                                                  [1000, 1000, 1001]]
