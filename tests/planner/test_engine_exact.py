"""The engine against an exact solver written here (a branch and bound over each task's resource
and last day, with a max-flow check of the hours): on random small instances of the contract's
problem the engine's weighted lateness and last day equal the exact optimum; the issue's
example; planted zero-lateness workloads reach 0; long chains and 5,000 tasks answer.

CP-SAT runs in a worker process, as in the service (it cannot share a process with highspy)."""
from collections import deque
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench.workloads import planted
from services.planner.engine import UNIT, Invalid, Problem, Resource, Schedule, Task
from shared.workers import WorkerPool

START = date(2027, 1, 4)   # a Monday


def _solve(problem: Problem) -> Schedule:
    # Imported here, in the worker: OR-Tools must never load in the test process.
    from services.planner.engine import cp_sat
    return cp_sat.solve(problem)


@pytest.fixture(scope="module")
def engine():
    pool = WorkerPool(1, preload=("services.planner.engine.cp_sat",))
    pool.start()
    yield lambda problem: pool.run(_solve, problem, timeout=problem.time_limit + 30)
    pool.close()


# --- the exact reference -------------------------------------------------------------------

def _max_flow(capacity: dict[int, dict[int, int]], source: int, sink: int) -> int:
    """Edmonds–Karp on a residual graph given as nested dicts (changed in place)."""
    flow = 0
    while True:
        parent = {source: source}
        queue = deque([source])
        while queue and sink not in parent:
            u = queue.popleft()
            for v, c in capacity[u].items():
                if c > 0 and v not in parent:
                    parent[v] = u
                    queue.append(v)
        if sink not in parent:
            return flow
        path = _path(parent, sink)
        push = min(capacity[parent[v]][v] for v in path)
        for v in path:
            u = parent[v]
            capacity[u][v] -= push
            capacity[v][u] = capacity[v].get(u, 0) + push
        flow += push


def _path(parent: dict[int, int], sink: int) -> list[int]:
    nodes, v = [], sink
    while parent[v] != v:
        nodes.append(v)
        v = parent[v]
    return nodes


def exact(problem: Problem) -> tuple[int, int] | None:
    """(weighted working days late, last working day index) of an optimal schedule, or None
    if the problem has no schedule. Tasks must be listed after their predecessors."""
    calendar = [problem.start + timedelta(days=i) for i in range(problem.horizon_days)]
    days = [d for d in calendar if d.weekday() not in problem.weekend and d not in problem.holidays]
    resources = {r.id: r for r in problem.resources}
    tasks = list(problem.tasks)
    rate = {(t.id, r.id): min(r.hours_per_day, t.max_per_day or t.effort, t.effort)
            for t in tasks for r in problem.resources}
    eligible = {t.id: [r.id for r in problem.resources if t.skill in r.skills
                       and t.resource in (None, r.id)] for t in tasks}
    due = {t.id: None if t.deadline is None else sum(d <= t.deadline for d in days) - 1
           for t in tasks}
    pin = {t.id: days.index(t.start) for t in tasks if t.start is not None}
    best: list[tuple[int, int] | None] = [None]

    def fits(chosen: list[tuple[Task, str, int, int]]) -> bool:
        # source 0 → task (effort) → (resource, day) cell (its rate) → (resource, day) → sink
        # (hours per day); a pinned task keeps one hundredth for its pinned day.
        graph: dict[int, dict[int, int]] = {0: {}, 1: {}}
        node: dict[object, int] = {}

        def at(key: object) -> int:
            if key not in node:
                node[key] = len(graph)
                graph[node[key]] = {}
            return node[key]

        need = 0
        for task, r, first, last in chosen:
            cap = resources[r].hours_per_day
            for d in range(first, last + 1):
                if days[d] in resources[r].time_off:
                    continue
                reserved = 1 if pin.get(task.id) == d else 0
                day = at((r, d))
                graph[day][1] = graph[day].get(1, cap) - reserved
                if graph[day][1] < 0:
                    return False
                graph[at(task.id)][day] = rate[task.id, r] - reserved
            if task.id in pin and (days[pin[task.id]] in resources[r].time_off):
                return False
            effort = task.effort - (1 if task.id in pin else 0)
            graph[0][at(task.id)] = effort
            need += effort
        return _max_flow(graph, 0, 1) == need

    def search(i: int, chosen: list[tuple[Task, str, int, int]], late: int, span: int) -> None:
        if best[0] is not None and (late, span) >= best[0]:
            return
        if i == len(tasks):
            best[0] = (late, span)
            return
        task = tasks[i]
        last_of = {t.id: last for t, _, _, last in chosen}
        first = max([0 if task.earliest_start is None
                     else sum(d < task.earliest_start for d in days)]
                    + [last_of[p] + 1 for p in task.predecessors])
        if task.id in pin:
            if pin[task.id] < first:
                return
            first = pin[task.id]
        # Two shortcuts that never change what `fits` would answer and spare most of its
        # max-flows (209,267 calls on the 60 examples -> 27,876): a later last day only adds
        # edges to the flow, so a resource the task fits on keeps fitting; and no flow gives
        # the task more than its own rate on its resource's working days in the window.
        fitting: set[str] = set()
        for last in range(first, len(days)):
            cost = late + task.priority * max(0, last - due[task.id]) \
                if due[task.id] is not None else late
            if best[0] is not None and (cost, max(span, last)) >= best[0]:
                break   # a later last day costs no less
            for r in eligible[task.id]:
                own = rate[task.id, r] * sum(days[d] not in resources[r].time_off
                                             for d in range(first, last + 1))
                if r in fitting or (own >= task.effort
                                    and fits([*chosen, (task, r, first, last)])):
                    fitting.add(r)
                    search(i + 1, [*chosen, (task, r, first, last)], cost, max(span, last))

    search(0, [], 0, -1)
    return best[0]


# --- instances -----------------------------------------------------------------------------

@st.composite
def small(draw) -> Problem:
    resources = []
    for i in range(draw(st.integers(1, 2))):
        resources.append(Resource(
            f"r{i}", frozenset(draw(st.sets(st.sampled_from("ab"), min_size=1))),
            draw(st.sampled_from([4, 6, 8])) * UNIT,
            frozenset(START + timedelta(days=d) for d in draw(st.sets(st.integers(0, 11),
                                                                       max_size=2)))))
    skills = sorted({s for r in resources for s in r.skills})
    tasks = []
    for i in range(draw(st.integers(1, 6))):
        tasks.append(Task(
            id=f"t{i}", skill=draw(st.sampled_from(skills)),
            effort=int(draw(st.sampled_from([2, 3.5, 4, 6, 8, 12])) * UNIT),
            earliest_start=START + timedelta(days=draw(st.integers(0, 3))),
            deadline=draw(st.one_of(st.none(), st.builds(
                lambda d: START + timedelta(days=d), st.integers(0, 11)))),
            priority=draw(st.integers(1, 3)),
            predecessors=tuple(sorted(draw(st.sets(st.sampled_from([f"t{j}" for j in range(i)]),
                                                   max_size=2)) if i else [])),
            max_per_day=draw(st.sampled_from([None, 2 * UNIT, 4 * UNIT]))))
    return Problem(start=START, horizon_days=18, resources=tuple(resources), tasks=tuple(tasks),
                   holidays=frozenset({START + timedelta(days=9)}), time_limit=10)


@settings(max_examples=60, deadline=None, phases=[Phase.generate], derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(small())
def test_the_engine_equals_the_exact_optimum(engine, problem):
    best = exact(problem)
    try:
        schedule = engine(problem)
    except Invalid:
        assert best is None, "the engine refused a problem that has a schedule"
        return
    assert best is not None
    makespan = sum(1 for d in _days(problem) if d <= schedule.makespan) - 1
    assert (schedule.weighted_lateness, makespan) == best
    assert schedule.status == "optimal" and schedule.bound == best[0]


def _days(problem: Problem) -> list[date]:
    return [d for d in (problem.start + timedelta(days=i) for i in range(problem.horizon_days))
            if d.weekday() not in problem.weekend and d not in problem.holidays]


def test_the_issue_example_works_monday_and_wednesday(engine):
    problem = Problem(start=START, horizon_days=30,
                      resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT,
                                          frozenset({date(2027, 1, 5)})),),
                      tasks=(Task("a", "copy", 16 * UNIT, campaign="c1", earliest_start=START,
                                  deadline=date(2027, 1, 6), priority=3),), time_limit=5)
    schedule = engine(problem)
    assert exact(problem) == (0, 2)
    assert schedule.status == "optimal" and schedule.weighted_lateness == 0 == schedule.bound
    assert schedule.assignments[0].days == ((date(2027, 1, 4), 800), (date(2027, 1, 6), 800))


def test_time_off_and_holidays_are_named_as_such(engine):
    # 24 h at 8 h a day from Thursday 24 December: Christmas is a holiday, Monday 28th ana's
    # day off; due Monday 28th it finishes Wednesday 30th, 2 working days late.
    problem = Problem(start=date(2026, 12, 24), horizon_days=20,
                      resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT,
                                          frozenset({date(2026, 12, 28)})),),
                      tasks=(Task("a", "copy", 24 * UNIT, deadline=date(2026, 12, 28)),),
                      holidays=frozenset({date(2026, 12, 25)}), time_limit=5)
    schedule = engine(problem)
    late = schedule.late[0]
    assert [d for d, _ in schedule.assignments[0].days] == [
        date(2026, 12, 24), date(2026, 12, 29), date(2026, 12, 30)]
    assert late.days_late == 2 == schedule.weighted_lateness
    assert "ana was on time off on 2026-12-28" in late.reason
    assert "2026-12-25 is a holiday" in late.reason
    assert "fully booked" not in late.reason and late.saturated_days == ()


@pytest.mark.parametrize("campaigns", [3, 12])
@pytest.mark.parametrize("regime", ["steady", "bursty"])
@pytest.mark.parametrize("weekend", [frozenset({5, 6}), frozenset({4, 5})])
def test_planted_workloads_reach_zero(engine, campaigns, regime, weekend):
    problem = planted(campaigns, regime=regime, weekend=weekend, seed=campaigns)
    assert any(t.start for t in problem.tasks) and any(r.time_off for r in problem.resources)
    schedule = engine(problem)
    assert schedule.weighted_lateness == 0 and schedule.late == ()


@pytest.mark.parametrize("length", [700, 1500])
def test_a_reversed_chain_is_scheduled_or_named_too_long(engine, length):
    # Listed last first: a recursive walk of the predecessors overflowed the stack at 1,500.
    tasks = tuple(Task(f"t{i}", "copy", 1 * UNIT, predecessors=(f"t{i - 1}",) if i else ())
                  for i in reversed(range(length)))
    problem = Problem(start=START, horizon_days=730,
                      resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),), tasks=tasks,
                      weekend=frozenset(), time_limit=5)
    if length > 730:   # one working day each: the chain is longer than the horizon
        with pytest.raises(Invalid, match="horizon_days"):
            engine(problem)
    else:
        assert engine(problem).makespan == START + timedelta(days=length - 1)


def test_a_cycle_is_named_without_recursion():
    from services.planner.engine import Model
    tasks = tuple(Task(f"t{i}", "copy", UNIT, predecessors=(f"t{(i + 1) % 3000}",))
                  for i in range(3000))
    with pytest.raises(Invalid, match="cycle"):
        Model(Problem(start=START, horizon_days=30, tasks=tasks,
                      resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),)))


def test_5000_tasks_are_answered(engine):
    problem = planted(40, seed=5)
    many = tuple(Task(f"x{i}-{t.id}", t.skill, t.effort, earliest_start=t.earliest_start,
                      deadline=t.deadline, priority=t.priority, max_per_day=t.max_per_day,
                      predecessors=tuple(f"x{i}-{p}" for p in t.predecessors))
                 for i in range(11) for t in problem.tasks)[:5000]
    teams = tuple(Resource(r.id, r.skills, 12 * r.hours_per_day, r.time_off)   # 12× the work
                  for r in problem.resources)
    problem = Problem(start=problem.start, horizon_days=730, resources=teams,
                      tasks=many, weekend=problem.weekend, holidays=problem.holidays,
                      time_limit=10)
    schedule = engine(problem)
    assert len(schedule.assignments) == 5000
    assert schedule.bound is not None and schedule.bound <= schedule.weighted_lateness
