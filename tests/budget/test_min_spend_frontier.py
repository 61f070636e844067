"""min_spend over concave curves by the greedy's frontier (`spend_frontier`): the least spend
reaching target_return, without a MILP, checked against an independent LP; a target past the
most return named as the MILP's route names it (no database, no HTTP)."""
from dataclasses import replace
from decimal import Decimal as D

import numpy as np
import pytest
from scipy.optimize import linprog

from services.budget.optimizer import (
    Channel,
    Group,
    Hill,
    Infeasible,
    Linear,
    Period,
    Problem,
    Reserve,
    solve,
    solver,
    spend_frontier,
)
from services.budget.optimizer.problem import FIRST_TOLERANCE

NONE = Reserve(amount=D(0))
CENT = D("0.01")


def never(*args, **kwargs):
    raise AssertionError("the MILP's route was taken")


def least_spend(problem: Problem, points: int = 3000) -> float:
    """The least spend of any plan whose return reaches target_return, by an LP apart from the
    optimizer (`curves_lp`): its least is at most the true least, and within the tangents'
    spacing of it."""
    size, rows, bounds = curves_lp(problem, points)
    rows.append(np.r_[np.zeros(size), -np.ones(size)])
    bounds.append(-float(problem.target_return))
    result = linprog(np.r_[np.ones(size), np.zeros(size)], A_ub=np.array(rows),
                     b_ub=np.array(bounds), bounds=[(0, None)] * (2 * size), method="highs")
    assert result.status == 0, result.message
    return float(result.fun)


def curves_lp(problem: Problem, points: int = 3000) -> tuple[int, list[np.ndarray], list[float]]:
    """An LP's rows (A x ≤ b) for every rule of `problem` but its objective's, apart from the
    optimizer: per cell its spend, then its return r ≤ weight · roi · x on a linear curve, and
    on a Hill curve under its tangents at `points` spends (a concave curve lies below each); the
    money, the channels' floors and caps, the periods' caps. Returns the cells' count with the
    rows and their bounds."""
    channels, periods = problem.channels, problem.periods
    n, m = len(channels), len(periods)
    cells = [(c, p) for c in range(n) for p in range(m)]
    size = len(cells)
    share = 1.0 / m
    rows, bounds = [], []

    def row(spend=None, ret=None) -> np.ndarray:
        out = np.zeros(2 * size)
        for i, v in (spend or {}).items():
            out[i] = v
        for i, v in (ret or {}).items():
            out[size + i] = v
        return out

    for i, (c, p) in enumerate(cells):
        weight, response = float(periods[p].weight), channels[c].response
        if isinstance(response, Linear):
            rows.append(row({i: -weight * float(response.roi)}, {i: 1.0}))
            bounds.append(0.0)
            continue
        beta, k, alpha = float(response.beta), float(response.k), float(response.alpha)
        # The cell's curve is weight · share · R(x / share); its tangent at t (spend):
        # g(t) + g'(t) (x − t), g'(t) = weight · R'(t / share).
        t = np.geomspace(1e-4 * k, 1e4 * k, points) * share
        u = (t / share / k) ** alpha
        value = weight * share * beta * u / (1 + u)
        slope = weight * beta * alpha * u / (t / share) / (1 + u) ** 2
        for v, s, at in zip(value, slope, t):
            rows.append(row({i: -s}, {i: 1.0}))
            bounds.append(v - s * at)
        rows.append(row(ret={i: 1.0}))
        bounds.append(weight * share * beta)
    available = float(problem.total - problem.reserve.amount)
    rows.append(row(dict.fromkeys(range(size), 1.0)))
    bounds.append(available)
    for c, channel in enumerate(channels):
        mine = [i for i, (cc, _) in enumerate(cells) if cc == c]
        if channel.max is not None:
            rows.append(row(dict.fromkeys(mine, 1.0)))
            bounds.append(float(channel.max))
        if channel.min is not None:
            rows.append(row(dict.fromkeys(mine, -1.0)))
            bounds.append(-float(channel.min))
    for p, period in enumerate(periods):
        if period.cap is not None:
            rows.append(row({i: 1.0 for i, (_, pp) in enumerate(cells) if pp == p}))
            bounds.append(float(period.cap))
    return size, rows, bounds


LINEAR = Problem(total=D(1000), decimals=2, reserve=NONE, objective="min_spend",
                 target_return=D(300),
                 channels=(Channel("a", Linear(D(2)), max=D(100)),
                           Channel("b", Linear(D(1)), min=D(30)),
                           Channel("c", Linear(D("0.5")))),
                 periods=(Period("p1"), Period("p2", weight=D(2), cap=D(40))))


def test_the_least_spend_of_linear_channels_is_the_lps_to_the_cent(monkeypatch):
    # A cell returns weight × roi a unit: a in p2 4, a in p1 and b in p2 2, b in p1 1. b's floor
    # of 30 goes to p1 (p2's cap of 40 is worth 4 a unit on a), returning 30; a's 40 in p2
    # return 160; the 110 left comes from a in p1 at 2: 55 more. 30 + 40 + 55 = 125 spent, as
    # the LP's least. The MILP's route is not taken.
    monkeypatch.setattr(solver, "solve_milp", never)
    answer = solve(LINEAR)
    assert least_spend(LINEAR) == pytest.approx(125.0, abs=1e-6)
    assert answer.spend == D("125.00")
    assert answer.expected_return == D("300.00")
    assert answer.status == "optimal"
    assert answer.approximation_error == 0


HILLS = Problem(total=D(2_000_000), decimals=2, reserve=NONE, objective="min_spend",
                target_return=D(900_000), time_limit=10.0,
                channels=(Channel("h0", Hill(D(400_000), D(60_000), D("0.6")), min=D(20_000)),
                          Channel("h1", Hill(D(500_000), D(90_000), D("1.0")),
                                  max=D(150_000)),
                          Channel("h2", Hill(D(300_000), D(30_000), D("0.8"))),
                          Channel("l", Linear(D("0.9")))),
                periods=(Period("p1", cap=D(120_000)), Period("p2", weight=D("1.3")),
                         Period("p3", weight=D("0.8"))))


# Every channel capped, the money past their caps: F is flat at the money (price 0), so the
# steps start from the floor, where the Hill curves' first pieces are steep.
CAPPED = replace(HILLS, total=D(10_000_000),
                 channels=tuple(replace(c, max=D(300_000)) for c in HILLS.channels[:3]))


@pytest.mark.parametrize("problem", [replace(HILLS, target_return=D(150_000)),
                                     replace(HILLS, target_return=D(600_000)), HILLS, CAPPED,
                                     replace(CAPPED, target_return=D(800_000))])
def test_the_least_spend_on_hill_curves_is_the_lps_within_its_error(monkeypatch, problem):
    # Concave Hill curves (one with a floor, one capped) beside a linear channel, over three
    # periods, one capped: the answer reaches the target on the true curves, `optimal`, and
    # spends what the LP under the curves' tangents finds least, within its stated error:
    # no plan spends less than spend × (1 − error), and the LP's least is the true least
    # within a millionth.
    monkeypatch.setattr(solver, "solve_milp", never)
    target = problem.target_return
    answer = solve(problem)
    least = D(repr(least_spend(problem)))
    assert answer.expected_return >= target
    assert answer.status == "optimal"
    assert answer.approximation_error <= 0.001
    assert answer.spend >= least - CENT
    assert answer.spend * (1 - D(repr(answer.approximation_error))) <= \
        least * D("1.000001") + CENT


def test_a_target_past_the_most_return_names_it_lowered_without_a_milp(monkeypatch):
    # The most return is max_return's plan (the greedy's, proven): a target 1,000 past it is
    # named lowered by that much alone, to the cent, as the MILP's route names it (beside
    # the money raised, with the target lowered by a cent).
    monkeypatch.setattr(solver, "solve_milp", never)
    most = solve(replace(HILLS, objective="max_return", target_return=None))
    assert most.status == "optimal"
    with pytest.raises(Infeasible) as refused:
        solve(replace(HILLS, target_return=most.expected_return + 1000))
    named = [c for c in refused.value.conflicts if c.constraint == "target_return" and c.alone]
    assert [c.change for c in named] == [D("1000.00")]
    applied = solve(replace(HILLS, target_return=most.expected_return))
    assert applied.expected_return >= most.expected_return


def test_the_frontier_leaves_groups_and_other_objectives_alone():
    # A group's share moves F's price off the budget's row: the MILP's route answers it.
    def applies(problem: Problem) -> bool:
        model = solver.ScaledProblem(problem)
        return spend_frontier.applies(model, model.cells(FIRST_TOLERANCE))
    assert applies(HILLS)
    assert not applies(replace(HILLS, groups=(Group("g", ("h0", "h1"), min_share=D("0.5")),)))
    assert not applies(replace(HILLS, objective="max_return", target_return=None))
