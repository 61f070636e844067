"""What a new user's trial of the engine found (issue 13): each test is built from the trial's
own request, shrunk where it could be.

CP-SAT runs in a worker process, as in the service (it cannot share a process with highspy)."""
from dataclasses import replace
from datetime import date

import pytest

from services.planner.engine import UNIT, Invalid, Model, Problem, Resource, Task, lower_bound
from shared.workers import WorkerPool

MON = date(2027, 1, 4)   # a Monday


def _solve(problem: Problem):
    from services.planner.engine import cp_sat
    return cp_sat.solve(problem)


@pytest.fixture(scope="module")
def pool():
    workers = WorkerPool(1, preload=("services.planner.engine.cp_sat",))
    workers.start()
    yield lambda function, problem: workers.run(function, problem,
                                                timeout=problem.time_limit + 30)
    workers.close()


# --- a chain longer than the horizon, with a deadline: a 422, not a 500 ----------------------

def _chain(deadline: date | None) -> Problem:
    # The trial's scale/min3: 7 tasks of 2 h in a chain need 7 working days (each starts the
    # day after its predecessor's last); the horizon has 5 (Mon 4th .. Fri 8th).
    tasks = tuple(Task(name, "copy", 2 * UNIT, predecessors=(before,) if before else ())
                  for before, name in zip(["", *"abcdef"], "abcdefg", strict=True))
    return Problem(start=MON, horizon_days=5, time_limit=5,
                   resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),),
                   tasks=(*tasks[:-1], replace(tasks[-1], deadline=deadline)))


def test_a_chain_past_the_horizon_with_a_deadline_is_the_same_422_as_without(pool):
    with pytest.raises(Invalid) as without:
        pool(_solve, _chain(None))
    with pytest.raises(Invalid) as due:
        pool(_solve, _chain(date(2027, 1, 6)))
    # f would end on day 6 and g on day 7 of a 5-day horizon: both named, horizon to raise.
    assert due.value.errors == without.value.errors
    assert [field for field, _ in due.value.errors] == ["tasks[5]", "tasks[6]"]
    assert all("raise horizon_days" in detail for _, detail in due.value.errors)


def test_the_lower_bound_of_a_chain_past_the_horizon_is_still_a_bound():
    # It raised IndexError: g is released after f's soonest finish, day 6 of days 0-4, and
    # the energy bound indexed the pool's hours by that day. Released at the horizon's end
    # (day 5) instead, g's 2 h take the pool's next 8 h day, day 5, against its deadline on
    # Wednesday (day 2): 3 days late, priority 1 (the paths, clamped to day 4, say 2).
    assert lower_bound(Model(_chain(date(2027, 1, 6)))) == 3
