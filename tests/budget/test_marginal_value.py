"""The budget's marginal value on the true curves: what one more unit of money to spend earns,
held against the derivative found by solving again with more money on curves cut finely."""
import math
from dataclasses import replace
from decimal import Decimal as D

import pytest

from services.budget.optimizer import (
    Allocation,
    Channel,
    Deal,
    Group,
    Hill,
    Incremental,
    Linear,
    Period,
    Points,
    Problem,
    Reserve,
    solver,
)
from services.budget.optimizer.assembly import allocation
from services.budget.optimizer.marginal import first_unit_value, next_unit_value
from services.budget.optimizer.scaled import Cells, ScaledProblem, Solution

NONE = Reserve(percent=D(0))


def hill(beta: int, k: int, alpha: str) -> Hill:
    return Hill(D(beta), D(k), D(alpha))


def planned(problem: Problem, monkeypatch: pytest.MonkeyPatch
            ) -> tuple[ScaledProblem, Cells, Solution, Allocation]:
    """The plan as the solver hands it to the assembly, and the answer."""
    handed: list[tuple[ScaledProblem, Cells, Solution]] = []

    def spy(model, cells, solution, error, seconds, **given):
        handed.append((model, cells, solution))
        return allocation(model, cells, solution, error, seconds, **given)
    with monkeypatch.context() as patch:
        patch.setattr(solver, "allocation", spy)
        answer = solver.solve(problem)
    (model, cells, solution), = handed
    return model, cells, solution, answer


def value(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> float:
    model, cells, solution, _ = planned(problem, monkeypatch)
    found = next_unit_value(model, cells, solution.spend, seconds=5.0)
    assert found is not None
    return found


def finely(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> Allocation:
    """The plan on curves cut 1,000 times finer than the first round (near the true optimum)."""
    with monkeypatch.context() as patch:
        patch.setattr(solver, "FIRST_TOLERANCE", 1e-6)
        patch.setattr(solver, "REFINEMENTS", 1)
        return solver.solve(problem)


def raised(problem: Problem, monkeypatch: pytest.MonkeyPatch, share: str = "0.0005") -> float:
    """What the money added returns per unit, the total raised by `share` of it (to the
    right: raising the budget is the rule), on the fine plans."""
    step = problem.total * D(share)
    before, after = finely(problem, monkeypatch), \
        finely(replace(problem, total=problem.total + step), monkeypatch)
    profit = problem.objective == "max_profit"
    gained = after.expected_return - before.expected_return - \
        (after.spend - before.spend if profit else 0)
    return float(gained / ((after.total - after.reserve) - (before.total - before.reserve)))


def readme() -> Problem:
    return Problem(total=D(1_000_000), decimals=2, reserve=Reserve(percent=D(10)),
                   channels=(Channel("search", Linear(D("2.1")), max=D(400_000)),
                             Channel("video", hill(900_000, 250_000, "2.2"), min=D(50_000)),
                             Channel("kol-a", Deal(D(80_000), D(240_000)))),
                   groups=(Group("brand", ("video", "kol-a"), min_share=D("0.2")),))


def test_the_readme_example_is_valued_at_videos_slope_not_its_pieces_chord(monkeypatch):
    # The next unit goes to video (search is at its max, the deal bought), at 420,000 on the
    # concave part of its S-curve: R'(420,000) = 900,000 · 2.2 · r / (420,000 · (1 + r)^2)
    # with r = (420/250)^2.2 = 3.1328: 0.864948 (its marginal_roi), where the piece's chord
    # the models price is 0.917887.
    model, cells, solution, answer = planned(readme(), monkeypatch)
    found = next_unit_value(model, cells, solution.spend, seconds=5.0)
    video = answer.allocations[1]
    assert (video.amount, video.marginal_roi) == (D("420000.00"), D("0.864948"))
    assert found == pytest.approx(0.864948, abs=1e-6)
    assert found == pytest.approx(raised(readme(), monkeypatch), rel=2e-3)


def test_two_concave_curves_are_valued_at_the_true_optimums_price(monkeypatch):
    # a: 1,000,000 · x^0.8 / (x^0.8 + 300,000^0.8), b: 600,000 · x / (x + 100,000), 500,000
    # to spend. The true optimum gives a 300,000 and b 200,000, where both slopes are 2/3:
    # a's 1,000,000 · 0.8 / (4 · 300,000), b's 600,000 · 100,000 / 300,000^2. The pieces' plan
    # gives a 291,819 (slope 0.6853) and b 208,181 (0.6317), and prices a's chord, 0.669434.
    problem = Problem(total=D(500_000), decimals=2, reserve=NONE,
                      channels=(Channel("a", hill(1_000_000, 300_000, "0.8")),
                                Channel("b", hill(600_000, 100_000, "1"))))
    assert value(problem, monkeypatch) == pytest.approx(2 / 3, rel=3e-3)


def test_a_kink_is_valued_by_raising_the_budget(monkeypatch):
    # a's points end at 200,000 (2.5 a unit, then 1.5), which is all the money: the next unit
    # earns nothing more on a (flat past its last point) and 1.2 on b, so 1.2, though the
    # last unit earned 1.5 (the two sides' mean, 1.35, is what no unit earns).
    problem = Problem(total=D(200_000), decimals=2, reserve=NONE, channels=(
        Channel("a", Points(((D(0), D(0)), (D(100_000), D(250_000)),
                             (D(200_000), D(400_000))))),
        Channel("b", Linear(D("1.2")), max=D(100_000))))
    assert value(problem, monkeypatch) == pytest.approx(1.2, abs=1e-6)
    assert raised(problem, monkeypatch) == pytest.approx(1.2, abs=1e-6)


def test_channels_held_at_their_floors_are_valued_at_the_best_next_unit(monkeypatch):
    # Incremental, 20 %: a at its cap of 600,000, b and c at their floors of 240,000 and
    # 160,000 with slopes 0.6560 and 0.6636: the next unit goes to c, at c's slope (the prices
    # of the two floors and the budget are otherwise a range).
    problem = Problem(total=D(1_000_000), decimals=2, reserve=NONE, channels=(
        Channel("a", hill(3_000_000, 300_000, "0.8")),
        Channel("b", hill(700_000, 250_000, "0.9")),
        Channel("c", hill(500_000, 150_000, "0.85"))),
        incremental=Incremental({"a": D(500_000), "b": D(300_000), "c": D(200_000)}, D("0.2")))
    model, cells, solution, answer = planned(problem, monkeypatch)
    assert [a.binding for a in answer.allocations] == \
        [("incremental_max",), ("incremental_min",), ("incremental_min",)]
    found = next_unit_value(model, cells, solution.spend, seconds=5.0)
    assert found == pytest.approx(float(answer.allocations[2].marginal_roi), abs=1e-6)
    assert found == pytest.approx(raised(problem, monkeypatch), rel=3e-3)


WEEKS = tuple(Period(f"w{j}", weight=D(w)) for j, w in enumerate(("1.3", "0.8", "1", "0.5")))
SHAPES = {
    "capped": Problem(total=D(1_000_000), decimals=2, reserve=NONE, channels=(
        Channel("a", hill(2_000_000, 300_000, "0.8"), max=D(200_000)),
        Channel("b", hill(900_000, 400_000, "0.9")), Channel("c", Linear(D("1.1")),
                                                            max=D(50_000)))),
    "period caps": Problem(total=D(600_000), decimals=2, reserve=NONE, channels=(
        Channel("a", hill(1_500_000, 300_000, "0.8")), Channel("b", hill(700_000, 150_000, "0.95"))),
        periods=(Period("q1", weight=D("1.4"), cap=D(100_000)), Period("q2"),
                 Period("q3", weight=D("0.7")))),
    "group min": Problem(total=D(1_000_000), decimals=2, reserve=Reserve(percent=D(5)), channels=(
        Channel("a", hill(3_000_000, 300_000, "0.8")), Channel("b", hill(700_000, 250_000, "0.9")),
        Channel("c", hill(500_000, 150_000, "0.85"))),
        groups=(Group("brand", ("b", "c"), min_share=D("0.4")),)),
    "group max": Problem(total=D(1_000_000), decimals=2, reserve=NONE, channels=(
        Channel("a", hill(3_000_000, 300_000, "0.8")), Channel("b", hill(700_000, 250_000, "0.9")),
        Channel("c", hill(500_000, 150_000, "0.85"))),
        groups=(Group("perf", ("a",), max_share=D("0.5")),)),
    "s-curve": Problem(total=D(1_000_000), decimals=2, reserve=NONE, channels=(
        Channel("tv", hill(2_000_000, 300_000, "2.5")),
        Channel("search", hill(500_000, 100_000, "0.8")))),
    "s-curve weeks": Problem(total=D(800_000), decimals=2, reserve=NONE, channels=(
        Channel("tv", hill(2_500_000, 400_000, "2.2")),
        Channel("social", hill(600_000, 120_000, "0.9"))), periods=WEEKS[:3]),
    "deals": Problem(total=D(700_000), decimals=2, reserve=NONE, channels=(
        Channel("kol", Deal(D(100_000), D(300_000))), Channel("kol2", Deal(D(150_000), D(200_000))),
        Channel("a", hill(1_200_000, 250_000, "0.8")), Channel("b", hill(500_000, 80_000, "0.9")))),
    "min if used": Problem(total=D(600_000), decimals=2, reserve=NONE, channels=(
        Channel("a", hill(1_000_000, 200_000, "0.8")),
        Channel("b", hill(900_000, 300_000, "1.6"), min=D(150_000), min_if_used=True))),
    "weighted weeks, profit": Problem(
        total=D(300_000), decimals=2, reserve=NONE, objective="max_profit", channels=(
            Channel("a", hill(3_000_000, 300_000, "0.7")), Channel("b", hill(900_000, 100_000, "0.9"))),
        periods=WEEKS),
}


@pytest.mark.parametrize("name", SHAPES)
def test_the_value_is_what_more_money_earns_on_the_true_curves(name, monkeypatch):
    # The pieces' chords price these 0.9-3.9 % off (capped 0.258858 where 0.2494 is earned,
    # the deals 0.787909 where 0.7643 is); the fine plans' gain per unit added has a bend of
    # its own of about 0.1 %.
    problem = SHAPES[name]
    assert value(problem, monkeypatch) == pytest.approx(raised(problem, monkeypatch), rel=3e-3)


def test_the_first_unit_is_split_as_the_groups_shares_say():
    # Nothing to spend (a 100 % reserve). brand (a, 1 a unit) must hold half of any spend,
    # and b earns 3: the first unit earns 0.5 · 1 + 0.5 · 3 = 2, not b's 3, which would
    # leave brand at 0 %. The plan of 100 more says the same: 50 · 1 + 50 · 3 = 200.
    problem = Problem(total=D(1_000), decimals=2, reserve=Reserve(percent=D(100)), channels=(
        Channel("a", Linear(D(1))), Channel("b", Linear(D(3))), Channel("c", Linear(D(5)),
                                                                     max=D(0))),
        groups=(Group("brand", ("a",), min_share=D("0.5")),))
    assert first_unit_value(ScaledProblem(problem)) == pytest.approx(2.0)
    more = solver.solve(replace(problem, reserve=Reserve(amount=D(900))))
    assert more.expected_return / more.spend == 2
    # At most 30 % in b: 0.3 · 3 + 0.7 · 1 = 1.6; for max_profit, less the unit: 0.6.
    capped = replace(problem, groups=(Group("perf", ("b",), max_share=D("0.3")),))
    assert first_unit_value(ScaledProblem(capped)) == pytest.approx(1.6)
    profit = replace(capped, objective="max_profit")
    assert first_unit_value(ScaledProblem(profit)) == pytest.approx(0.6)


def test_the_first_unit_is_infinite_only_where_a_steep_curve_may_take_part_of_it():
    # A concave Hill curve's slope at zero spend is infinite; a group holding it out of the
    # spend (max_share 0) leaves the others' best, 2; a group that only deals fill earns 0.
    steep = Channel("tv", hill(1_000_000, 200_000, "0.7"))
    problem = Problem(total=D(1_000), decimals=2, reserve=Reserve(percent=D(100)), channels=(
        steep, Channel("search", Linear(D(2)))))
    assert first_unit_value(ScaledProblem(problem)) == math.inf
    held = replace(problem, groups=(Group("tv", ("tv",), max_share=D(0)),))
    assert first_unit_value(ScaledProblem(held)) == pytest.approx(2.0)
    deals = replace(problem, channels=problem.channels + (Channel("kol", Deal(D(10), D(30))),),
                    groups=(Group("kol", ("kol",), min_share=D("0.2")),))
    assert first_unit_value(ScaledProblem(deals)) == 0.0
