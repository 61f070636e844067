"""The engine's follow-ups: the time limit bounds the whole call, market holidays apart from
time off, a 422 "does not fit" only when proven, re-plans kept hour for hour, progress and a
stop from outside, and the energy lower bound.

CP-SAT runs in a worker process, as in the service (it cannot share a process with highspy);
progress reports are collected in the worker and returned with the schedule."""
import json
import threading
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from bench.workloads import planted, workload
from services.planner import solving
from services.planner.engine import (
    UNIT,
    Invalid,
    Model,
    Previous,
    Problem,
    Progress,
    Resource,
    Schedule,
    Task,
    lower_bound,
    priority_rule,
)

MON = date(2027, 1, 4)   # a Monday
TUE, WED = MON + timedelta(days=1), MON + timedelta(days=2)


def _solve(problem: Problem) -> Schedule:
    from services.planner.engine import cp_sat
    return cp_sat.solve(problem)


def _solve_watched(problem: Problem) -> tuple[Schedule, list[Progress]]:
    from services.planner.engine import cp_sat
    reports: list[Progress] = []
    return cp_sat.solve(problem, progress=reports.append), reports


def _solve_stopped_at_first_answer(problem: Problem) -> tuple[Schedule, list[Progress]]:
    # The stop comes from outside the search, as a job's cancel would: an Event that the
    # progress callback sets once the search has an answer.
    from services.planner.engine import cp_sat
    reports: list[Progress] = []
    cancel = threading.Event()

    def progress(report: Progress) -> None:
        reports.append(report)
        if report.incumbent is not None:
            cancel.set()
    return cp_sat.solve(problem, progress=progress, stop=cancel.is_set), reports


def _solve_stopped_before(problem: Problem) -> Schedule:
    from services.planner.engine import cp_sat
    return cp_sat.solve(problem, stop=lambda: True)


# --- the time limit bounds the whole call ----------------------------------------------------

def test_a_limit_spent_before_the_search_answers_the_rules_plan_labelled(pool):
    # 480 tasks: the rules alone take longer than a millisecond, so no search is started.
    problem = planted(40, regime="bursty", seed=40, time_limit=0.001)
    schedule = pool(_solve, problem)
    assert schedule.status == "feasible"
    assert schedule.engine == "priority rule (time limit reached before the search)"
    assert len(schedule.assignments) == 480
    assert schedule.bound is not None and schedule.bound <= schedule.weighted_lateness


def test_a_limit_that_leaves_time_searches(pool):
    schedule = pool(_solve, planted(3, seed=3, time_limit=5))
    assert schedule.engine == "CP-SAT" and schedule.weighted_lateness == 0


# --- market holidays apart from time off -----------------------------------------------------

def test_market_holidays_and_time_off_are_named_each_as_what_it_is(pool):
    # 24 h at 8 h a day from Monday: Tuesday is ana's market holiday, Wednesday her day off.
    # Due Tuesday (day 1 of the axis: the holiday is hers alone, so the day stays on it), it
    # works Monday, Thursday and Friday (day 4): 3 working days late.
    ana = Resource("ana", frozenset({"copy"}), 8 * UNIT, time_off=frozenset({WED}),
                   holidays=frozenset({TUE}))
    problem = Problem(start=MON, horizon_days=20, resources=(ana,),
                      tasks=(Task("a", "copy", 24 * UNIT, deadline=TUE),), time_limit=5)
    schedule = pool(_solve, problem)
    assert [d for d, _ in schedule.assignments[0].days] == [MON, MON + timedelta(days=3),
                                                            MON + timedelta(days=4)]
    late = schedule.late[0]
    assert late.days_late == 3 == schedule.weighted_lateness
    assert f"ana was on time off on {WED}" in late.reason
    assert f"{TUE} is a holiday for ana" in late.reason
    assert f"time off on {TUE}" not in late.reason


def test_a_resource_without_holidays_is_as_before():
    ana = Resource("ana", frozenset({"copy"}), 8 * UNIT, frozenset({WED}))
    assert ana.holidays == frozenset()
    model = Model(Problem(start=MON, horizon_days=5, resources=(ana,),
                          tasks=(Task("a", "copy", UNIT),)))
    assert model.available["ana"] == [True, True, False, True, True]


# --- "does not fit" only when proven --------------------------------------------------------

def _started_pair(r2_time_off: frozenset[date] = frozenset()) -> Problem:
    # Two started tasks on Monday over two working days. The rules give s1 the resource with
    # the most hours free on its pinned day (r1, listed first), then s2 can only use r1, which
    # has 8 h left for its 16: the rules fail. s1 on r2 and s2 on r1 fit exactly.
    return Problem(start=MON, horizon_days=2, weekend=frozenset(), time_limit=5, resources=(
        Resource("r1", frozenset({"a", "b"}), 8 * UNIT),
        Resource("r2", frozenset({"a"}), 8 * UNIT, r2_time_off)), tasks=(
        Task("s1", "a", 8 * UNIT, start=MON), Task("s2", "b", 16 * UNIT, start=MON)))


def test_a_problem_the_rules_fail_is_scheduled_when_a_schedule_exists(pool):
    problem = _started_pair()
    with pytest.raises(Invalid):   # the premise: every priority rule fails on it
        priority_rule.schedule(Model(problem))
    schedule = pool(_solve, problem)
    placed = {a.task: a.resource for a in schedule.assignments}
    assert placed == {"s1": "r2", "s2": "r1"}
    assert schedule.engine == "CP-SAT (no priority rule placed every task)"
    assert schedule.status == "optimal"


def test_no_schedule_proven_by_the_search_is_a_422_that_says_so(pool):
    # r2 is off on Monday, so s1 must be on r1 too: 24 h for r1's 16. No cheap bound sees it
    # (r1 alone must do s2's 16 h: it has 16; both have 24 h for 24), the search proves it.
    problem = _started_pair(frozenset({MON}))
    with pytest.raises(Invalid) as raised:
        pool(_solve, problem)
    [(field, detail)] = raised.value.errors
    assert field == "horizon_days" and "the search proved that there is no schedule" in detail


def test_no_schedule_proven_by_the_hours_is_a_422_that_says_so(pool):
    # 4 × 16 h for one designer's 5 days of 8 h: 64 h for 40.
    problem = Problem(start=date(2026, 12, 7), horizon_days=5,
                      resources=(Resource("d", frozenset({"design"}), 8 * UNIT),),
                      tasks=tuple(Task(f"t{i}", "design", 16 * UNIT) for i in range(4)))
    with pytest.raises(Invalid) as raised:
        pool(_solve, problem)
    [(field, detail)] = raised.value.errors
    assert field == "horizon_days"
    assert "need 64 h from 2026-12-07 on" in detail and "have 40 h" in detail


# --- re-plans keep exact hours ---------------------------------------------------------------

def _replan(previous) -> Problem:
    # One task of 16 h that the previous plan split 4 h Mon, 8 h Tue, 4 h Wed. Packed afresh
    # it would end Tuesday (a better last day), but keeping it moves nothing: moves come first.
    return Problem(start=MON, horizon_days=10, time_limit=5,
                   resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),),
                   tasks=(Task("a", "copy", 16 * UNIT),), previous={"a": previous})


SPLIT = ((MON, 4 * UNIT), (TUE, 8 * UNIT), (WED, 4 * UNIT))


def test_a_replan_keeps_the_exact_previous_hours(pool):
    schedule = pool(_solve, _replan(Previous("ana", SPLIT)))
    assert schedule.assignments[0].days == SPLIT and schedule.moved == 0


def test_the_same_start_with_other_hours_counts_as_moved():
    problem = _replan(Previous("ana", SPLIT))
    model = Model(problem)
    packed = priority_rule.forward(model, lambda t: (0,))
    assert packed["a"].first == 0 and packed["a"].hours != ((0, 400), (1, 800), (2, 400))
    assert priority_rule.moved(model, packed) == 1


def test_hours_that_can_no_longer_be_kept_count_as_moved(pool):
    problem = _replan(Previous("ana", SPLIT))
    off = replace(problem.resources[0], time_off=frozenset({TUE}))
    schedule = pool(_solve, replace(problem, resources=(off,)))
    assert schedule.moved == 1 and schedule.makespan == WED   # Mon and Wed, 8 h each


def test_the_older_previous_form_keeps_resource_and_first_day(pool):
    schedule = pool(_solve, _replan(("ana", TUE)))
    assert schedule.assignments[0].start == TUE and schedule.moved == 0


# --- progress and a stop from outside -------------------------------------------------------

def test_progress_reports_incumbent_bound_and_gap(pool):
    # The 42-task workload is not proven within 3 s: the search runs to its limit.
    problem = workload(3, time_limit=3)
    schedule, reports = pool(_solve_watched, problem)
    assert reports and reports[0].incumbent is not None   # the rules' plan comes first
    for report in reports:
        assert report.bound <= report.incumbent
        assert report.gap == (report.incumbent - report.bound) / max(report.incumbent, 1)
    assert [r.elapsed_seconds for r in reports] == sorted(r.elapsed_seconds for r in reports)
    assert [r.incumbent for r in reports] == sorted((r.incumbent for r in reports), reverse=True)
    assert reports[-1].incumbent == schedule.weighted_lateness
    assert reports[-1].bound <= schedule.bound
    # Reports with nothing new come from the timer, not from the search's callbacks.
    assert any((a.incumbent, a.bound) == (b.incumbent, b.bound) for a, b in zip(reports, reports[1:]))


def test_a_stop_from_outside_ends_the_search_with_its_best_answer(pool):
    problem = workload(3, time_limit=60)
    rules = priority_rule.measure(model := Model(problem), priority_rule.schedule(model))[0]
    schedule, reports = pool(_solve_stopped_at_first_answer, problem)
    assert schedule.status == "feasible"
    assert schedule.engine in ("CP-SAT (stopped)", "priority rule (stopped before the search)")
    assert schedule.weighted_lateness <= rules and len(schedule.assignments) == 42


def test_a_stop_before_the_search_answers_the_rules_plan(pool):
    schedule = pool(_solve_stopped_before, workload(3, time_limit=60))
    assert schedule.engine == "priority rule (stopped before the search)"
    assert schedule.status == "feasible" and len(schedule.assignments) == 42


# --- the energy lower bound ----------------------------------------------------------------

def test_the_energy_bound_counts_every_task_the_hours_make_late():
    # Three 8 h tasks due Monday for one person's 8 h a day, priorities 1, 2, 3: 16 h do not
    # fit by Monday, so two tasks are late (at least 1 + 2) and the last ends Wednesday, 2
    # days late (+ 1 more day of the lightest): 4, the optimum (3 Mon, 2 Tue, 1 Wed). The old
    # bound took one task late by 2 days × the lightest priority: 2.
    problem = Problem(start=MON, horizon_days=10,
                      resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),),
                      tasks=tuple(Task(f"t{p}", "copy", 8 * UNIT, deadline=MON, priority=p)
                                  for p in (1, 2, 3)))
    assert lower_bound(Model(problem)) == 4


def test_the_energy_bound_counts_the_followers_of_the_last_late_task():
    # Two 8 h design tasks due Monday for one designer; whichever ends Tuesday is 1 day late,
    # and its 8 h tech follower, due Tuesday, ends Wednesday at the soonest: 1 more. Priority
    # 2 everywhere: 2 × 1 + 2 × 1 = 4, the optimum (the hours alone show 2 for design and 2
    # for tech; adding the tail of design to tech's 2 would count b2 twice: 6 is not a bound).
    problem = Problem(start=MON, horizon_days=10, resources=(
        Resource("design", frozenset({"design"}), 8 * UNIT),
        Resource("tech", frozenset({"tech"}), 8 * UNIT)), tasks=(
        Task("a", "design", 8 * UNIT, deadline=MON, priority=2),
        Task("b", "design", 8 * UNIT, deadline=MON, priority=2),
        Task("a2", "tech", 8 * UNIT, deadline=TUE, priority=2, predecessors=("a",)),
        Task("b2", "tech", 8 * UNIT, deadline=TUE, priority=2, predecessors=("b",))))
    assert lower_bound(Model(problem)) == 4


def test_work_the_rules_cannot_fit_and_too_large_to_search_blames_the_horizon(pool):
    # A user's request (400 tasks, 12 people, chains, a 120-day horizon the work outgrows):
    # nothing is searched, so the answer names the horizon, not the time limit, at once.
    body = json.loads((Path(__file__).parent / "data" / "short_horizon_400_tasks.json")
                      .read_text())
    problem = solving.to_problem(solving.SolveRequest.model_validate(body))
    with pytest.raises(Invalid) as raised:
        pool(_solve, problem)
    [(field, detail)] = raised.value.errors
    assert field == "horizon_days" and "within 120 days" in detail
