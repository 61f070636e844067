"""Under groups' shares a target_roi no plan reaches names the most any plan reaches per unit
spent, deals bought and `min_if_used` channels used included, and that target answers a plan.

The reference is worked out apart from the optimizer: each deal left out or bought in one of
its periods, each `min_if_used` channel used (its min a floor) or not, and for each such choice
the best return per unit of the linear channels' cells as an LP over y = x / S, t = 1 / S
(Charnes–Cooper), solved by scipy. Linear curves and deals are their own pieces, and the
numbers are such that the best plans spend whole cents."""
import itertools
from decimal import Decimal as D

import numpy as np
import pytest
from scipy.optimize import linprog

from services.budget.optimizer import (
    Channel,
    Deal,
    Group,
    Infeasible,
    Linear,
    Period,
    Problem,
    Reserve,
    solve,
)

ONE = (Period("p"),)
TWO = (Period("p1"), Period("p2", weight=D("1.5"), cap=D(500)))


def request(channels: tuple[Channel, ...], groups: tuple[Group, ...], periods: tuple[Period, ...],
            target: D, total: str = "1000") -> Problem:
    return Problem(total=D(total), decimals=2, reserve=Reserve(amount=D(0)), channels=channels,
                   groups=groups, periods=periods, objective="target_roi", target_roi=target)


CASES = {
    # The trial's shape at its smallest: brand {a} at min_share 0.5 holds half of any plan at
    # 1 a unit, and the deal (6 a unit) is outside it. The shares' LP, which leaves deals out,
    # named 0.5 · 1 + 0.5 · 2 = 1.5; the deal and 100 on a return 700 for 200: 3.5.
    "deal_outside_brand": (
        (Channel("a", Linear(D(1))), Channel("b", Linear(D(2))),
         Channel("d", Deal(D(100), D(600)))),
        (Group("brand", ("a",), min_share=D("0.5")),), ONE, "1000"),
    # Two deals over two periods (the second weighs 1.5 and is capped at 500), one of them in
    # brand at min_share 0.4, b capped at 300.
    "two_deals_two_periods": (
        (Channel("a", Linear(D("1.2"))), Channel("b", Linear(D(2)), max=D(300)),
         Channel("d1", Deal(D(200), D(700))), Channel("d2", Deal(D(150), D(300)))),
        (Group("brand", ("a", "d2"), min_share=D("0.4")),), TWO, "2000"),
    # A deal in perf at max_share 0.3 needs 700 spent outside it, at 1 a unit: 2.2, where the
    # LP mixes a and b at 0.3 · 3 + 0.7 · 1 = 1.6.
    "deal_under_a_max_share": (
        (Channel("a", Linear(D(3))), Channel("b", Linear(D(1))),
         Channel("d", Deal(D(300), D(1500)))),
        (Group("perf", ("a", "d"), max_share=D("0.3")),), ONE, "1000"),
    # m (1.5 a unit) spends at least 200 if used; brand {a, m} at min_share 0.6 beside a deal.
    "min_if_used_in_brand": (
        (Channel("a", Linear(D(1))), Channel("m", Linear(D("1.5")), min=D(200), min_if_used=True),
         Channel("b", Linear(D("2.5"))), Channel("d", Deal(D(100), D(500)))),
        (Group("brand", ("a", "m"), min_share=D("0.6")),), TWO, "1000"),
}


def reference(channels: tuple[Channel, ...], groups: tuple[Group, ...],
              periods: tuple[Period, ...], total: str) -> float:
    """The most return per unit spent over every deal and `min_if_used` choice (see above)."""
    deals = [c for c in channels if isinstance(c.response, Deal)]
    switches = [c.id for c in channels if c.min_if_used]
    return max(_best_of_choice(channels, groups, periods, total, dict(zip(deals, bought)),
                               {c for c, on in zip(switches, used) if not on})
               for bought in itertools.product([None, *range(len(periods))], repeat=len(deals))
               for used in itertools.product([False, True], repeat=len(switches)))


def _best_of_choice(channels: tuple[Channel, ...], groups: tuple[Group, ...],
                    periods: tuple[Period, ...], total: str, bought: dict[Channel, int | None],
                    unused: set[str]) -> float:
    """The LP over y = x / S (per linear cell) and t = 1 / S with the deals `bought` (in the
    period given) and the channels `unused` held at 0, Σ spend · t = 1; −∞ where it has none."""
    lines = [c for c in channels if isinstance(c.response, Linear)]
    weights = [float(p.weight) for p in periods]
    cells = [(c, p) for c in range(len(lines)) for p in range(len(periods))]
    paid = {d: float(d.response.cost) for d, p in bought.items() if p is not None}
    objective = [-float(lines[c].response.roi) * weights[p] for c, p in cells] + [
        -sum(float(d.response.value) * weights[p] for d, p in bought.items() if p is not None)]
    rows: list[list[float]] = []
    bounds: list[float] = []

    def at_most(coef: dict[int, float], t: float, bound: float = 0.0) -> None:
        """Σ coef · y + t · t ≤ bound."""
        rows.append([coef.get(i, 0.0) for i in range(len(cells))] + [t])
        bounds.append(bound)
    at_most(dict.fromkeys(range(len(cells)), 1.0), sum(paid.values()) - float(total))
    for c, line in enumerate(lines):
        mine = [i for i, (owner, _) in enumerate(cells) if owner == c]
        if line.max is not None:
            at_most(dict.fromkeys(mine, 1.0), -float(line.max))
        if line.id in unused:
            at_most(dict.fromkeys(mine, 1.0), 0.0)
        elif line.min is not None:
            at_most(dict.fromkeys(mine, -1.0), float(line.min))
    for p, period in enumerate(periods):
        if period.cap is not None:
            at_most(dict.fromkeys([i for i, (_, q) in enumerate(cells) if q == p], 1.0),
                    sum(cost for d, cost in paid.items() if bought[d] == p) - float(period.cap))
    for group in groups:
        inside = [i for i, (c, _) in enumerate(cells) if lines[c].id in group.channels]
        held = sum(cost for d, cost in paid.items() if d.id in group.channels)
        if group.min_share is not None:
            at_most(dict.fromkeys(inside, -1.0), -held, -float(group.min_share))
        if group.max_share is not None:
            at_most(dict.fromkeys(inside, 1.0), held, float(group.max_share))
    solved = linprog(objective, A_ub=rows, b_ub=bounds,
                     A_eq=[[1.0] * len(cells) + [sum(paid.values())]], b_eq=[1.0], method="highs")
    return -solved.fun if solved.status == 0 and solved.x[-1] > 0 else -np.inf


def true_return(problem: Problem, answer) -> float:
    """The answer's return on the true curves, cell by cell, from its amounts."""
    weights = {p.id: float(p.weight) for p in problem.periods}
    responses = {c.id: c.response for c in problem.channels}
    earned = 0.0
    for allocation in answer.allocations:
        response = responses[allocation.channel]
        for cell in allocation.periods:
            if isinstance(response, Deal):
                earned += weights[cell.period] * float(response.value) * (cell.amount > 0)
            else:
                earned += weights[cell.period] * float(response.roi) * float(cell.amount)
    return earned


@pytest.mark.parametrize("case", CASES)
def test_the_best_roi_named_under_shares_counts_deals_and_min_if_used(case):
    channels, groups, periods, total = CASES[case]
    best = reference(channels, groups, periods, total)
    with pytest.raises(Infeasible) as raised:
        solve(request(channels, groups, periods, D(10), total))
    conflict, = raised.value.conflicts
    named = D(10) - conflict.change
    assert conflict.constraint == "target_roi"
    assert abs(float(named) - best) <= 1e-6
    # The named change applied answers a plan that meets it and holds every share.
    changed = request(channels, groups, periods, named, total)
    answer = solve(changed)
    assert answer.spend > 0 and true_return(changed, answer) >= float(named * answer.spend)
    spent = {a.channel: a.amount for a in answer.allocations}
    for group in groups:
        inside = sum(spent[c] for c in group.channels)
        assert group.min_share is None or inside >= group.min_share * answer.spend
        assert group.max_share is None or inside <= group.max_share * answer.spend

