"""target_roi over concave curves by the greedy's frontier (`roi_frontier`): the plan of most
return among those meeting the target, without a MILP, its bound counting the target's row,
and within the time limit (no database, no HTTP)."""
from dataclasses import replace
from decimal import Decimal as D

import numpy as np
import pytest

from services.budget.optimizer import (
    Channel,
    Hill,
    Linear,
    Period,
    Problem,
    Reserve,
    SolveTimeout,
    greedy,
    infeasibility,
    roi_frontier,
    solve,
    solver,
)
from services.budget.optimizer.problem import FIRST_TOLERANCE
from tests.budget.test_optimizer_deadline import ANSWER_MARGIN, clock  # noqa: F401 (fixture)

NONE = Reserve(amount=D(0))


def never(*args, **kwargs):
    raise AssertionError("the MILP's route was taken")


def test_the_frontier_answers_a_binding_target_without_a_milp(monkeypatch):
    # a returns 3 a unit up to its max of 100, b 1 a unit: F(s) = 3s up to 100, then
    # 300 + (s - 100), which meets 2 × s up to s = 200: a at 100 and b at 100, returning 400.
    # The MILP's route answered this `feasible` with no bound (the target binds).
    monkeypatch.setattr(solver, "solve_milp", never)
    answer = solve(Problem(total=D(1000), decimals=2, reserve=NONE, objective="target_roi",
                           target_roi=D(2), channels=(Channel("a", Linear(D(3)), max=D(100)),
                                                      Channel("b", Linear(D(1))))))
    assert {a.channel: a.amount for a in answer.allocations} == {"a": D("100.00"),
                                                                "b": D("100.00")}
    assert answer.expected_return == D("400.00")
    assert answer.status == "optimal"
    assert answer.approximation_error == 0


CONCAVE = Problem(total=D(400_000), decimals=2, reserve=NONE, objective="target_roi",
                  target_roi=D(3), time_limit=10.0,
                  channels=tuple(Channel(f"h{i}", Hill(D(200_000 + 50_000 * i),
                                                      D(40_000 + 10_000 * i), D("0.7")))
                                 for i in range(4)) + (Channel("l", Linear(D("1.5"))),),
                  periods=(Period("p1"), Period("p2", weight=D("1.2")), Period("p3")))


def test_the_frontiers_plan_is_the_most_return_at_the_most_spend_meeting_the_target(
        monkeypatch):
    # Concave Hill curves beside a linear channel under the target, over three periods: the
    # answer meets 3 a unit on the true curves, returns what the most-return plan spending as
    # much returns, and 1 % more money returns less than 3 a unit at best (`max_return`'s
    # greedy, another route, solves both).
    answer = solve(CONCAVE)
    monkeypatch.setattr(solver, "solve_milp", never)
    assert answer.status == "optimal"
    assert answer.expected_return >= 3 * answer.spend * D("0.9999999")

    def most(total: D):
        return solve(replace(CONCAVE, objective="max_return", target_roi=None, total=total))
    same = most(answer.spend)
    assert same.spend == answer.spend
    assert answer.expected_return >= same.expected_return * D("0.999")
    more = most((answer.spend * D("1.01")).quantize(D("0.01")))
    assert more.expected_return < 3 * more.spend


def test_a_plan_past_a_periods_cap_is_left_to_the_milp():
    # A linear channel at 5 under a target of 2: every plan meets it, and the frontier's
    # plan spends the money in p1 first (its ties go in cell order), past p1's cap of 500.
    # The MILP's route answers, within the cap.
    problem = Problem(total=D(4000), decimals=2, reserve=NONE, objective="target_roi",
                      target_roi=D(2), channels=(Channel("a", Linear(D(5))),),
                      periods=(Period("p1", cap=D(500)), Period("p2")))
    answer = solve(problem)
    assert [p.amount for p in answer.allocations[0].periods] == [D("500.00"), D("3500.00")]
    assert answer.expected_return == D("20000.00")


def test_a_bounds_only_request_checks_its_plans_apart_without_the_rules_model(
        clock, monkeypatch):  # noqa: F811
    # Where the pieces find no plan, plans on the true curves apart from them (the best cell's
    # whole units, scaled up) are checked against every rule but target_roi. That rules' model
    # took 7.6 s (profiled) at 1,000 x 52 and read no clock; here it takes 10 s. A request whose
    # rules are bounds alone checks a plan by its sums now, and the plan comes in time.
    def slow(*args, **kwargs):
        clock.lag += 10.0
        return made(*args, **kwargs)
    made = infeasibility.formulate
    monkeypatch.setattr(infeasibility, "formulate", slow)
    # A cent returns 232.32 (900,000 · r / (1 + r), r = (0.01 / 150,000)^0.5), so a target
    # of 20,000 is met by 0.01 alone.
    problem = Problem(total=D(1_000_000), decimals=2, reserve=NONE, objective="target_roi",
                      target_roi=D(20_000), time_limit=2.0,
                      channels=(Channel("a", Hill(D(900_000), D(150_000), D("0.5"))),))
    model = solver.ScaledProblem(problem)
    cells = model.cells(FIRST_TOLERANCE)
    started = clock.perf_counter()
    answer = solver._roi_apart(model, cells, started, started + 1.0, None)
    assert clock.perf_counter() <= started + problem.time_limit + ANSWER_MARGIN
    assert answer is not None
    assert (answer.spend, answer.expected_return) == (D("0.01"), D("232.32"))


def test_the_frontiers_steps_stop_at_the_deadline(clock, monkeypatch):  # noqa: F811
    # Each fill of the money is a greedy's pass (0.02-0.4 s at 1,000 x 52, more under load):
    # here each takes 1 s, and the steps stop once the solver's deadline has passed, where
    # they went on to the plan. The answer, a plan or a 422, comes by the limit and its margin.
    filled = greedy.fill_segments

    def slow(*args, **kwargs):
        clock.lag += 1.0
        return filled(*args, **kwargs)
    monkeypatch.setattr(greedy, "fill_segments", slow)
    problem = replace(CONCAVE, time_limit=2.0)
    started = clock.perf_counter()
    try:
        answer = solve(problem)
    except SolveTimeout:
        answer = None
    assert clock.perf_counter() <= started + problem.time_limit + ANSWER_MARGIN
    if answer is not None:
        assert answer.expected_return >= 3 * answer.spend * D("0.9999999")


@pytest.mark.parametrize("target", [D("0.5"), D("2.5")])
def test_within_bounds_agrees_with_the_rules_model(target):
    # The bounds read off a plan are the rules' model's rows on a bounds-only request:
    # both accept the frontier's plan, and both refuse it past a period's cap.
    problem = replace(CONCAVE, target_roi=target,
                      periods=(Period("p1", cap=D(30_000)), Period("p2")))
    model = solver.ScaledProblem(problem)
    cells = model.cells(1e-3)
    assert roi_frontier.bounds_only(model, cells)
    form = solver.formulate(model, cells)
    plan = np.full(len(cells), 1000.0 / model.unit)
    over = plan.copy()
    over[cells.period == 0] = 40_000.0 / model.unit
    for spend in (plan, over):
        assert roi_frontier.within_bounds(model, cells, spend) == \
            form.feasible(form.columns_for(cells, spend))
