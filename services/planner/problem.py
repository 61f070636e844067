"""The scheduling problem and its answer, as plain data, plus what every engine shares: the
working-day axis, each task's daily rate and length, validation, and turning a choice of
(resource, first day) per task into a checked schedule with explanations.

Pure and free of OR-Tools, so the API process and the tests can use it: OR-Tools bundles its
own HiGHS and cannot be imported where `highspy` is (the budget optimizer), so CP-SAT runs only
in worker processes (see `schedule.py`).

Hours are integers in hundredths of an hour. A task is done by one resource at a fixed daily
rate, min(its max_hours_per_day, the resource's hours per day), on consecutive working days
of that resource (it does not pause over the resource's time off: it goes before or after);
the last day takes the remainder. Reserving the full rate on every day keeps
each resource within capacity on every day.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

UNIT = 100   # hours are stored in hundredths


@dataclass(frozen=True)
class Resource:
    id: str
    skills: frozenset[str]
    hours_per_day: int                        # hundredths of an hour
    time_off: frozenset[date] = frozenset()


@dataclass(frozen=True)
class Task:
    id: str
    skill: str
    effort: int                               # hundredths of an hour
    campaign: str | None = None
    earliest_start: date | None = None
    deadline: date | None = None
    priority: int = 1
    predecessors: tuple[str, ...] = ()
    max_per_day: int | None = None
    resource: str | None = None               # pinned resource
    start: date | None = None                 # pinned first day (work already started)


@dataclass(frozen=True)
class Problem:
    start: date
    horizon_days: int
    resources: tuple[Resource, ...]
    tasks: tuple[Task, ...]
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()
    time_limit: float = 30.0
    # For a re-plan: the previous (resource, first day) of each task; moving fewer is better.
    previous: dict[str, tuple[str, date]] = field(default_factory=dict)


@dataclass(frozen=True)
class Assignment:
    task: str
    resource: str
    start: date
    finish: date
    days: tuple[tuple[date, int], ...]       # (day, hundredths of an hour)


@dataclass(frozen=True)
class Late:
    task: str
    deadline: date
    finish: date
    days_late: int                            # working days
    reason: str
    resource: str
    saturated_days: tuple[date, ...]          # the resource was full on these, before the start
    chain: tuple[str, ...]                    # predecessors that pushed it, nearest first


@dataclass(frozen=True)
class Utilisation:
    resource: str
    week: str                                 # ISO week, "2026-W49"
    hours: int
    capacity: int


@dataclass(frozen=True)
class Schedule:
    status: str                               # optimal | feasible
    weighted_lateness: int                    # Σ priority × working days late
    makespan: date | None
    bound: int | None                         # lower bound on weighted_lateness, where known
    assignments: tuple[Assignment, ...]
    late: tuple[Late, ...]
    utilisation: tuple[Utilisation, ...]
    engine: str
    seconds: float
    first_answer_seconds: float
    best_answer_seconds: float
    moved: int | None = None                  # re-plan: tasks whose resource or start changed


class Invalid(Exception):
    """The problem cannot be scheduled as given: [(field, what is wrong and how to fix it)]."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {d}" for f, d in errors))
        self.errors = errors

    def __reduce__(self):   # crosses the worker-process boundary intact
        return Invalid, (self.errors,)


class Model:
    """The problem on its working-day axis: what every engine needs, computed once."""

    def __init__(self, problem: Problem):
        self.problem = problem
        calendar = (problem.start + timedelta(days=i) for i in range(problem.horizon_days))
        self.days = [day for day in calendar
                     if day.weekday() not in problem.weekend and day not in problem.holidays]
        self.index = {day: i for i, day in enumerate(self.days)}
        self.tasks = {t.id: t for t in problem.tasks}
        self.resources = {r.id: r for r in problem.resources}
        self.order = [t.id for t in problem.tasks]
        self._check()
        self.eligible = {t.id: [r.id for r in problem.resources if self._can(t, r)]
                         for t in problem.tasks}
        self.available = {r.id: [day not in r.time_off for day in self.days]
                          for r in problem.resources}

    def _can(self, task: Task, resource: Resource) -> bool:
        return (task.resource is None or task.resource == resource.id) \
            and task.skill in resource.skills and resource.hours_per_day > 0

    def rate(self, task: str, resource: str) -> int:
        limit = self.resources[resource].hours_per_day
        if self.tasks[task].max_per_day is not None:
            limit = min(limit, self.tasks[task].max_per_day)
        return min(limit, self.tasks[task].effort)

    def length(self, task: str, resource: str) -> int:
        """Working days the task takes on this resource."""
        return -(-self.tasks[task].effort // self.rate(task, resource))

    def earliest(self, task: str) -> int:
        """First working-day index allowed by earliest_start (or the pinned start)."""
        t = self.tasks[task]
        first = t.start or t.earliest_start
        if first is None:
            return 0
        return next((i for i, day in enumerate(self.days) if day >= first), len(self.days))

    def deadline(self, task: str) -> int | None:
        """Index of the last working day on or before the deadline (-1 if none is)."""
        deadline = self.tasks[task].deadline
        if deadline is None:
            return None
        return sum(1 for day in self.days if day <= deadline) - 1

    def _check(self) -> None:
        errors: list[tuple[str, str]] = []
        if not self.days:
            errors.append(("horizon_days", "the horizon has no working day"))
        if len(self.tasks) != len(self.problem.tasks):
            errors.append(("tasks", "task ids must be unique"))
        if len(self.resources) != len(self.problem.resources):
            errors.append(("resources", "resource ids must be unique"))
        for i, task in enumerate(self.problem.tasks):
            where = f"tasks[{i}]"
            for p in task.predecessors:
                if p not in self.tasks:
                    errors.append((f"{where}.predecessors", f"unknown task {p!r}"))
            if task.resource is not None and task.resource not in self.resources:
                errors.append((f"{where}.resource", f"unknown resource {task.resource!r}"))
            elif not any(self._can(task, r) for r in self.problem.resources):
                errors.append((f"{where}.skill", f"no resource can do task {task.id!r}: none has "
                                                 f"skill {task.skill!r}"
                                                 + (f" (pinned to {task.resource})" if task.resource else "")))
            if task.start is not None and task.start not in self.days:
                errors.append((f"{where}.start", f"{task.start} is not a working day in the horizon"))
        if errors:
            raise Invalid(errors)
        if cycle := self._cycle():
            raise Invalid([("tasks", "predecessors form a cycle: " + " → ".join(cycle))])
        for i, task in enumerate(self.problem.tasks):
            shortest = min(self.length(task.id, r.id) for r in self.problem.resources
                           if self._can(task, r))
            if self.earliest(task.id) + shortest > len(self.days):
                errors.append((f"tasks[{i}]", f"task {task.id!r} needs {shortest} working days "
                                              f"from {task.earliest_start or self.problem.start} "
                                              "but the horizon ends before; raise horizon_days"))
        if errors:
            raise Invalid(errors)

    def _cycle(self) -> list[str] | None:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(task: str) -> list[str] | None:
            state[task] = 1
            stack.append(task)
            for p in self.tasks[task].predecessors:
                if state.get(p) == 1:
                    return stack[stack.index(p):] + [p]
                if p not in state and (found := visit(p)):
                    return found
            stack.pop()
            state[task] = 2
            return None

        for task in self.order:
            if task not in state and (found := visit(task)):
                return list(reversed(found))
        return None

    def topological(self) -> list[str]:
        seen: set[str] = set()
        result: list[str] = []

        def visit(task: str) -> None:
            if task in seen:
                return
            seen.add(task)
            for p in self.tasks[task].predecessors:
                visit(p)
            result.append(task)

        for task in self.order:
            visit(task)
        return result


def assemble(model: Model, choice: dict[str, tuple[str, int]], *, status: str, engine: str,
             bound: int | None, seconds: float, first_answer_seconds: float,
             best_answer_seconds: float) -> Schedule:
    """Turn (resource, first day index) per task into a schedule, checking every rule."""
    days = model.days
    load: dict[str, list[int]] = {r: [0] * len(days) for r in model.resources}   # reserved
    worked: dict[str, list[int]] = {r: [0] * len(days) for r in model.resources}
    users: dict[tuple[str, int], list[str]] = defaultdict(list)
    assignments, finish = [], {}
    for task_id in model.order:
        resource, first = choice[task_id]
        rate, length = model.rate(task_id, resource), model.length(task_id, resource)
        effort = model.tasks[task_id].effort
        hours = [rate] * (length - 1) + [effort - rate * (length - 1)]
        for offset in range(length):
            load[resource][first + offset] += rate
            worked[resource][first + offset] += hours[offset]
            users[resource, first + offset].append(task_id)
        finish[task_id] = first + length - 1
        assignments.append(Assignment(task_id, resource, days[first], days[finish[task_id]],
                                      tuple((days[first + i], h) for i, h in enumerate(hours))))
    _verify(model, choice, load, finish)
    late = []
    weighted = 0
    for task_id in model.order:
        deadline = model.deadline(task_id)
        if deadline is None or finish[task_id] <= deadline:
            continue
        days_late = finish[task_id] - deadline
        weighted += days_late * model.tasks[task_id].priority
        late.append(_explain(model, choice, finish, users, load, task_id, days_late))
    return Schedule(
        status=status, weighted_lateness=weighted,
        makespan=days[max(finish.values())] if finish else None, bound=bound,
        assignments=tuple(assignments), late=tuple(late), utilisation=_utilisation(model, worked),
        engine=engine, seconds=seconds, first_answer_seconds=first_answer_seconds,
        best_answer_seconds=best_answer_seconds, moved=_moved(model, choice))


def _verify(model: Model, choice, load, finish) -> None:
    """Every rule of the problem holds: an engine bug must never reach a user as a plan."""
    broken = []
    for resource, per_day in load.items():
        cap = model.resources[resource].hours_per_day
        broken += [f"{resource} over capacity on {model.days[d]}" for d, hours in enumerate(per_day)
                   if hours > (cap if model.available[resource][d] else 0)]
    for task_id, (resource, first) in choice.items():
        task = model.tasks[task_id]
        if resource not in model.eligible[task_id] or first < model.earliest(task_id):
            broken.append(f"{task_id} on {resource} from day {first}")
        broken += [f"{task_id} starts before {p} ends" for p in task.predecessors
                   if first <= finish[p]]
        if task.start is not None and model.days[first] != task.start:
            broken.append(f"{task_id} moved from its pinned start")
    if broken:
        raise RuntimeError("schedule breaks its rules: " + "; ".join(broken[:10]))


def _explain(model: Model, choice, finish, users, load, task_id: str, days_late: int) -> Late:
    resource, first = choice[task_id]
    task = model.tasks[task_id]
    ready = max([model.earliest(task_id)] + [finish[p] + 1 for p in task.predecessors])
    chain: list[str] = []
    current = task_id
    # Follow the predecessors each task started right after: they pushed it.
    while preds := model.tasks[current].predecessors:
        binding = max(preds, key=lambda p: (finish[p], p))
        if choice[current][1] != finish[binding] + 1:
            break
        chain.append(binding)
        current = binding
    rate = model.rate(task_id, resource)
    cap = model.resources[resource].hours_per_day
    saturated = [model.days[d] for d in range(ready, first)
                 if not model.available[resource][d] or load[resource][d] + rate > cap]
    blockers = sorted({u for d in range(ready, first) for u in users[resource, d] if u != task_id})
    parts = [f"{task_id} finishes {model.days[finish[task_id]]}, {days_late} working day(s) "
             f"after its deadline {task.deadline}"]
    if saturated:
        parts.append(f"{resource} was fully booked on {len(saturated)} day(s) from "
                     f"{saturated[0]} to {saturated[-1]}"
                     + (f" (by {', '.join(blockers[:5])}{' …' if len(blockers) > 5 else ''})"
                        if blockers else ""))
    if chain:
        parts.append("it waited for " + " ← ".join(
            f"{c} (done {model.days[finish[c]]})" for c in chain))
    if not saturated and not chain:
        parts.append(f"it needs {model.length(task_id, resource)} working day(s) from "
                     f"{model.days[ready]}, more than the time to its deadline")
    return Late(task_id, task.deadline, model.days[finish[task_id]], days_late,
                "; ".join(parts) + ".", resource, tuple(saturated), tuple(chain))


def _utilisation(model: Model, worked) -> tuple[Utilisation, ...]:
    rows = []
    for resource in model.resources:
        weeks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        cap = model.resources[resource].hours_per_day
        for d, day in enumerate(model.days):
            year, week, _ = day.isocalendar()
            cell = weeks[f"{year}-W{week:02d}"]
            cell[0] += worked[resource][d]
            cell[1] += cap if model.available[resource][d] else 0
        rows += [Utilisation(resource, week, hours, capacity)
                 for week, (hours, capacity) in sorted(weeks.items())]
    return tuple(rows)


def _moved(model: Model, choice) -> int | None:
    previous = model.problem.previous
    if not previous:
        return None
    return sum(1 for task_id, (resource, first) in choice.items()
               if task_id in previous and previous[task_id] != (resource, model.days[first]))
