"""Re-plans (issue 13): the rule that says which tasks a change left alone and which of them
moved (`engine.stability`), and the engine's order for a re-plan: least weighted lateness
first, then fewest tasks moved, then the earliest last day.

CP-SAT runs in a worker process, as in the service (it cannot share a process with highspy)."""
import time
from dataclasses import replace
from datetime import date, timedelta

from bench.workloads import planted
from services.planner.engine import (
    UNIT,
    Assignment,
    Model,
    Previous,
    Problem,
    Resource,
    Schedule,
    Task,
    Work,
    neighbourhood,
    priority_rule,
    stability,
)
from tests.planner.conftest import engine_solve

MON = date(2027, 1, 4)   # a Monday
TUE, WED, THU, FRI = (MON + timedelta(days=i) for i in range(1, 5))
ANA = Resource("ana", frozenset({"copy"}), 8 * UNIT)


def _schedule(days: dict[str, tuple[tuple[date, int], ...]]) -> Schedule:
    """A schedule of ana's work, only its assignments filled (what the rule reads)."""
    return Schedule(status="feasible", weighted_lateness=0, makespan=None, bound=None,
                    assignments=tuple(Assignment(t, "ana", d[0][0], d[-1][0], d)
                                      for t, d in days.items()),
                    late=(), utilisation=(), engine="test", seconds=0,
                    first_answer_seconds=0, best_answer_seconds=0)


# --- the rule: untouched tasks, and moved hour for hour --------------------------------------

BRIEF = ((MON, 4 * UNIT), (TUE, 4 * UNIT))
BEFORE = Problem(start=MON, horizon_days=14, resources=(ANA,), tasks=(
    Task("c1-a", "copy", 8 * UNIT, campaign="c1", deadline=WED),
    Task("c1-b", "copy", 8 * UNIT, campaign="c1", deadline=FRI, predecessors=("c1-a",)),
    Task("c2-brief", "copy", 8 * UNIT, campaign="c2", deadline=FRI),
    Task("c2-copy", "copy", 8 * UNIT, campaign="c2", deadline=FRI)))
PREVIOUS = {"c1-a": Previous("ana", ((WED, 8 * UNIT),)),
            "c1-b": Previous("ana", ((THU, 8 * UNIT),)),
            "c2-brief": Previous("ana", BRIEF),
            "c2-copy": Previous("ana", ((FRI, 8 * UNIT),))}


def test_a_slip_touches_its_tasks_and_their_followers_only():
    # c1-a's deadline moves: c1-a is touched, and c1-b, which waits for it, is touched too
    # though its own fields are the same. c2 is left alone.
    after = replace(BEFORE, tasks=(replace(BEFORE.tasks[0], deadline=THU), *BEFORE.tasks[1:]))
    assert stability.untouched(BEFORE, after, PREVIOUS) == {"c2-brief", "c2-copy"}


def test_time_off_touches_only_the_tasks_on_that_day():
    # ana takes Friday off: c2-copy (Friday) is touched; the brief (Mon, Tue) is not.
    after = replace(BEFORE, resources=(replace(ANA, time_off=frozenset({FRI})),))
    assert stability.untouched(BEFORE, after, PREVIOUS) == {"c1-a", "c1-b", "c2-brief"}


def test_time_off_under_a_task_touches_the_tasks_that_wait_for_it():
    # ana takes Wednesday off: c1-a (Wednesday) must move, and c1-b, which waits for it, may
    # have to follow, as after a slip: both touched. c2 is left alone.
    after = replace(BEFORE, resources=(replace(ANA, time_off=frozenset({WED})),))
    assert stability.untouched(BEFORE, after, PREVIOUS) == {"c2-brief", "c2-copy"}


def test_a_pin_where_the_task_already_was_is_no_change():
    # Work that started is pinned where the previous plan had it: still untouched. A pin
    # elsewhere is a change.
    started = replace(BEFORE.tasks[2], resource="ana", start=MON)
    assert "c2-brief" in stability.untouched(
        BEFORE, replace(BEFORE, tasks=(*BEFORE.tasks[:2], started, BEFORE.tasks[3])), PREVIOUS)
    elsewhere = replace(started, start=TUE)
    assert "c2-brief" not in stability.untouched(
        BEFORE, replace(BEFORE, tasks=(*BEFORE.tasks[:2], elsewhere, BEFORE.tasks[3])),
        PREVIOUS)


def test_a_resource_with_other_daily_hours_touches_its_tasks():
    after = replace(BEFORE, resources=(replace(ANA, hours_per_day=6 * UNIT),))
    assert stability.untouched(BEFORE, after, PREVIOUS) == set()


def test_moved_means_not_kept_hour_for_hour():
    # The brief keeps its resource and first day but gets Mon 8 h instead of 4 h + 4 h:
    # moved. c2-copy keeps Friday 8 h: not moved. 1 of the 2 untouched tasks (50 %).
    after = replace(BEFORE, tasks=(replace(BEFORE.tasks[0], deadline=THU), *BEFORE.tasks[1:]))
    replanned = _schedule({"c1-a": ((THU, 8 * UNIT),), "c1-b": ((TUE, 8 * UNIT),),
                           "c2-brief": ((MON, 8 * UNIT),), "c2-copy": ((FRI, 8 * UNIT),)})
    share = stability.moved_share(BEFORE, after, PREVIOUS, replanned)
    assert (share.moved, share.untouched, share.percent) == (1, 2, 50.0)


# --- the engine: lateness first, then fewest moved -------------------------------------------

def test_a_replan_moves_an_untouched_task_only_to_avoid_lateness(pool):
    # ana, 8 h a day. Before: s on Tue, u on Mon, v on Wed, each 8 h, all due Friday. s's
    # milestone moves: due Monday now. On time needs s on Monday, so u (untouched) must go:
    # to Tuesday, the only day that keeps the last day on Wednesday. Keeping u instead would
    # leave s 1 working day late: lateness comes before moves. Moved: s and u (u is 1 of the
    # 2 untouched tasks).
    tasks = (Task("s", "copy", 8 * UNIT, deadline=FRI), Task("u", "copy", 8 * UNIT, deadline=FRI),
             Task("v", "copy", 8 * UNIT, deadline=FRI))
    previous = {"s": Previous("ana", ((TUE, 800),)), "u": Previous("ana", ((MON, 800),)),
                "v": Previous("ana", ((WED, 800),))}
    before = Problem(start=MON, horizon_days=14, resources=(ANA,), tasks=tasks, time_limit=10)
    after = replace(before, tasks=(replace(tasks[0], deadline=MON), *tasks[1:]), previous=previous)
    schedule = pool(engine_solve, after)
    days = {a.task: a.days for a in schedule.assignments}
    assert days == {"s": ((MON, 800),), "u": ((TUE, 800),), "v": ((WED, 800),)}
    assert (schedule.weighted_lateness, schedule.moved, schedule.status) == (0, 2, "optimal")
    share = stability.moved_share(before, after, previous, schedule)
    assert (share.moved, share.untouched) == (1, 2)


def test_a_replan_after_no_change_moves_nothing(pool):
    # 72 planted tasks scheduled, then re-planned as they are: the mended previous plan keeps
    # every task, and no plan is better by lateness (the first was proven optimal).
    problem = planted(6, seed=6, time_limit=20)
    first = pool(engine_solve, problem)
    assert first.status == "optimal"
    previous = {a.task: Previous(a.resource, a.days) for a in first.assignments}
    again = pool(engine_solve, replace(problem, previous=previous))
    assert again.moved == 0 and again.weighted_lateness == first.weighted_lateness


def test_the_mended_plan_keeps_what_fits_and_places_the_changed_task_around_it():
    # c1-a's earliest start moves to Friday: its Wednesday no longer fits; everything else
    # keeps its hours, and c1-a goes to the first free hours from Friday (the week after,
    # as Friday is c2-copy's) — then c1-b, which must follow it, cannot stay either.
    after = replace(BEFORE, previous=PREVIOUS, tasks=(
        replace(BEFORE.tasks[0], earliest_start=FRI), *BEFORE.tasks[1:]))
    model = Model(after)
    mended = priority_rule.repair(model, lambda t: (model.order.index(t),))
    assert mended is not None
    assert {t: [model.days[d] for d, _ in w.hours] for t, w in mended.items()} == {
        "c1-a": [MON + timedelta(days=7)], "c1-b": [MON + timedelta(days=8)],
        "c2-brief": [MON, TUE], "c2-copy": [FRI]}


def test_the_neighbourhood_leaves_out_other_resources_and_far_days():
    # bob's task and ana's task three weeks later are outside the changed task's reach.
    bob = Resource("bob", frozenset({"design"}), 8 * UNIT)
    later = MON + timedelta(days=21)
    problem = Problem(start=MON, horizon_days=35, resources=(ANA, bob), tasks=(
        Task("changed", "copy", 8 * UNIT, earliest_start=TUE, deadline=WED),
        Task("near", "copy", 8 * UNIT, deadline=FRI),
        Task("far", "copy", 8 * UNIT, earliest_start=later, deadline=later),
        Task("other", "design", 8 * UNIT, deadline=WED)), previous={
        "changed": Previous("ana", ((MON, 800),)), "near": Previous("ana", ((TUE, 800),)),
        "far": Previous("ana", ((later, 800),)), "other": Previous("bob", ((TUE, 800),))})
    model = Model(problem)
    mended = priority_rule.repair(model, lambda t: (model.order.index(t),))
    assert mended is not None
    windows = {t: (model.earliest(t), model.deadline(t) or 0) for t in model.order}
    assert neighbourhood.reach(model, mended, windows) == {"changed", "near"}


def _plan(model: Model, days: dict[str, tuple[tuple[date, int], ...]]) -> dict[str, Work]:
    return {t: Work("ana", tuple((model.index[d], h) for d, h in hours))
            for t, hours in days.items()}


def test_keep_more_puts_back_what_fits_one_task_at_a_time():
    # Nothing changed, but a stopped search left three tasks moved. c2-brief fits back on
    # Mon 4 h + Tue 4 h at once (its own Monday hours are taken out first). c1-b (Thursday)
    # and c2-copy (Friday) swapped days: each one's previous day holds the other, so neither
    # fits back alone and both stay moved: 3 moved → 2.
    model = Model(replace(BEFORE, previous=PREVIOUS))
    stopped = _plan(model, {"c1-a": ((WED, 8 * UNIT),), "c1-b": ((FRI, 8 * UNIT),),
                            "c2-brief": ((MON, 8 * UNIT),), "c2-copy": ((THU, 8 * UNIT),)})
    assert priority_rule.measure(model, stopped) == (0, 3, 4)
    kept = priority_rule.keep_more(model, stopped)
    assert kept == {**stopped, "c2-brief": Work("ana", ((0, 4 * UNIT), (1, 4 * UNIT)))}
    assert priority_rule.measure(model, kept) == (0, 2, 4)


def test_keep_more_puts_back_a_task_once_another_made_room():
    # c2-copy sits on Tuesday, where c2-brief's previous 4 h no longer fit (8 + 4 > 8): the
    # first pass puts c2-copy back on Friday, the next one c2-brief on Mon + Tue: all kept.
    model = Model(replace(BEFORE, previous=PREVIOUS))
    stopped = _plan(model, {"c1-a": ((WED, 8 * UNIT),), "c1-b": ((THU, 8 * UNIT),),
                            "c2-brief": ((MON, 8 * UNIT),), "c2-copy": ((TUE, 8 * UNIT),)})
    kept = priority_rule.keep_more(model, stopped)
    assert priority_rule.measure(model, kept) == (0, 0, 4)
    assert kept == _plan(model, {t: p.days for t, p in PREVIOUS.items()})


def _put_back_swapped(problem: Problem) -> dict[str, Work]:
    # A stopped search left c2-brief on Mon 8 h and c1-b and c2-copy on each other's day.
    from services.planner.engine import cp_sat
    model = Model(problem)
    stopped = _plan(model, {"c1-a": ((WED, 8 * UNIT),), "c1-b": ((FRI, 8 * UNIT),),
                            "c2-brief": ((MON, 8 * UNIT),), "c2-copy": ((THU, 8 * UNIT),)})
    windows = {t: (model.earliest(t), model.deadline(t) or 0) for t in model.order}
    return cp_sat.put_back(model, stopped, windows, ends=time.perf_counter() + 30)


def test_put_back_swaps_back_what_keep_more_cannot(pool):
    # The same stopped plan as above: keep_more leaves c1-b and c2-copy moved (neither fits
    # back alone); put_back re-places c1-b together with the work around its Thursday (all of
    # ana's week) and finds every task on its previous hours: 3 moved → 0.
    problem = replace(BEFORE, previous=PREVIOUS, time_limit=10)
    model = Model(problem)
    plan = pool(_put_back_swapped, problem)
    assert plan == _plan(model, {t: p.days for t, p in PREVIOUS.items()})
    assert priority_rule.measure(model, plan) == (0, 0, 4)


def _put_back_on_time(problem: Problem) -> dict[str, Work]:
    from services.planner.engine import cp_sat
    model = Model(problem)
    plan = _plan(model, {"s": ((MON, 800),), "u": ((TUE, 800),), "v": ((WED, 800),)})
    # Windows up to the horizon's end: the searches may make a task late.
    windows = {t: (model.earliest(t), len(model.days) - 1) for t in model.order}
    return cp_sat.put_back(model, plan, windows, ends=time.perf_counter() + 30)


def test_put_back_keeps_a_task_moved_where_going_back_makes_one_late(pool):
    # The worked example: s is due Monday now; it was on Tuesday and u on Monday. Going back
    # to the previous plan (u Monday, s Tuesday) moves nothing but leaves s 1 working day
    # late: lateness comes first, so the plan stays, 2 moved.
    tasks = (Task("s", "copy", 8 * UNIT, deadline=MON), Task("u", "copy", 8 * UNIT, deadline=FRI),
             Task("v", "copy", 8 * UNIT, deadline=FRI))
    previous = {"s": Previous("ana", ((TUE, 800),)), "u": Previous("ana", ((MON, 800),)),
                "v": Previous("ana", ((WED, 800),))}
    problem = Problem(start=MON, horizon_days=14, resources=(ANA,), tasks=tasks,
                      previous=previous, time_limit=10)
    model = Model(problem)
    plan = pool(_put_back_on_time, problem)
    assert plan == _plan(model, {"s": ((MON, 800),), "u": ((TUE, 800),), "v": ((WED, 800),)})
    assert priority_rule.measure(model, plan) == (0, 2, 2)
