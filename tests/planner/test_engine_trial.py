"""What a new user's trial of the engine found (issue 13): each test is built from the trial's
own request, shrunk where it could be.

CP-SAT runs in a worker process, as in the service (it cannot share a process with highspy)."""
from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.planner.engine import (
    UNIT,
    Invalid,
    Model,
    Previous,
    Problem,
    Resource,
    Task,
    Work,
    lower_bound,
    priority_rule,
)
from tests.planner.conftest import engine_solve

MON = date(2027, 1, 4)   # a Monday


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
        pool(engine_solve, _chain(None))
    with pytest.raises(Invalid) as due:
        pool(engine_solve, _chain(date(2027, 1, 6)))
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


# --- a re-plan's first answers are never later than a fresh solve's ---------------------------

WEEK1 = [MON + timedelta(days=i) for i in range(5)]   # Mon 4th .. Fri 8th: days 0-4


def _week_off() -> Problem:
    # The trial's week off, shrunk to its chain: copy c (ana) before build b (tom), due
    # Thursday and Friday; the previous plan had c on Thursday and b on Friday, on time. Tom
    # now takes Friday off.
    return Problem(
        start=MON, horizon_days=14, time_limit=5,
        resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),
                   Resource("tom", frozenset({"tech"}), 8 * UNIT, frozenset({WEEK1[4]}))),
        tasks=(Task("c", "copy", 8 * UNIT, deadline=WEEK1[3]),
               Task("b", "tech", 8 * UNIT, deadline=WEEK1[4], predecessors=("c",))),
        previous={"c": Previous("ana", ((WEEK1[3], 8 * UNIT),)),
                  "b": Previous("tom", ((WEEK1[4], 8 * UNIT),))})


def test_a_kept_task_does_not_make_its_follower_late_for_its_resources_day_off():
    # Kept on Thursday, c left b Monday 11th, after tom's Friday off: 1 day late (the keep
    # rule counted b's day over every day, not over tom's). c may hold no day past Wednesday,
    # so it is placed afresh, Monday, and b (its Friday is gone) Tuesday: on time.
    model = Model(_week_off())
    plan = priority_rule.forward(model, lambda t: (t == "b",), keep=True)
    assert plan == {"c": Work("ana", ((0, 8 * UNIT),)), "b": Work("tom", ((1, 8 * UNIT),))}
    assert priority_rule.measure(model, plan) == (0, 2, 1)


def test_a_replans_rules_include_the_fresh_solves_plans():
    # Keeping costs lateness where capacity shrank; lateness comes first, so each rule also
    # runs as a fresh solve runs it: the best is never later than the fresh solve's.
    problem = _week_off()
    model, fresh = Model(problem), Model(replace(problem, previous={}))
    plans = priority_rule.rules(model)
    for name, plan in priority_rule.rules(fresh).items():
        if name == "backward, packed" or name == "backward":
            assert plans[name] == plan
        else:
            assert plans[f"{name}, {priority_rule.AFRESH}"] == plan
