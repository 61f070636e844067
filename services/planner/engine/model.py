"""The problem on its working-day axis: what every engine needs, computed once and checked.

The axis holds the horizon's working days (weekends and holidays left out); each resource has
its own availability on it (its time off and its market's holidays). A task may take at most
its daily rate on a day, which depends on the resource that does it. The predecessor graph is
walked without recursion (5,000 tasks may form one chain).
"""
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, timedelta

from services.planner.engine.problem import Invalid, Previous, Problem, Resource, Task, Work


@dataclass(frozen=True)
class Placed:
    """A task's place in the previous plan, on the axis."""
    resource: str
    first: int | None                         # its first day (None: not a working day now)
    # Its exact hours by day: None for the older (resource, first day) form, () when a day
    # of it is no longer a working day (it cannot be kept).
    hours: tuple[tuple[int, int], ...] | None


class Model:
    """A checked problem (`Invalid` if it cannot be scheduled) on its working-day axis."""

    def __init__(self, problem: Problem):
        self.problem = problem
        calendar = (problem.start + timedelta(days=i) for i in range(problem.horizon_days))
        self.days = [day for day in calendar
                     if day.weekday() not in problem.weekend and day not in problem.holidays]
        self.index = {day: i for i, day in enumerate(self.days)}
        self.tasks = {t.id: t for t in problem.tasks}
        self.resources = {r.id: r for r in problem.resources}
        self.order = [t.id for t in problem.tasks]
        self.available = {r.id: [day not in r.time_off and day not in r.holidays
                                 for day in self.days] for r in problem.resources}
        # Available days of a resource from index d to the end of the horizon.
        self._left = {r: _suffix_counts(ok) for r, ok in self.available.items()}
        self._check()
        self.eligible = {t.id: [r.id for r in problem.resources if self._can(t, r)]
                         for t in problem.tasks}
        self._earliest = {t.id: bisect_left(self.days, first) if (first := t.start or
                          t.earliest_start) else 0 for t in problem.tasks}
        self._deadline = {t.id: bisect_right(self.days, t.deadline) - 1 if t.deadline else None
                          for t in problem.tasks}
        self._check_room()
        self.previous = {t: self._placed(spot) for t, spot in problem.previous.items()
                         if t in self.tasks}

    def _placed(self, spot: Previous | tuple[str, date]) -> Placed:
        if not isinstance(spot, Previous):
            resource, first = spot
            return Placed(resource, self.index.get(first), None)
        on_axis = all(day in self.index for day, _ in spot.days)
        return Placed(spot.resource, self.index.get(spot.days[0][0]) if spot.days else None,
                      tuple((self.index[day], h) for day, h in spot.days) if on_axis else ())

    def kept(self, task: str, work: Work) -> bool:
        """Whether the task stays where the previous plan had it (see Problem.previous)."""
        placed = self.previous[task]
        if work.resource != placed.resource:
            return False
        if placed.hours is None:
            return work.first == placed.first
        return work.hours == placed.hours

    def _can(self, task: Task, resource: Resource) -> bool:
        return (task.resource is None or task.resource == resource.id) \
            and task.skill in resource.skills and resource.hours_per_day > 0

    def rate(self, task: str, resource: str) -> int:
        """Most hundredths of an hour the task may take from the resource on one day."""
        limit = self.resources[resource].hours_per_day
        cap = self.tasks[task].max_per_day
        if cap is not None:
            limit = min(limit, cap)
        return min(limit, self.tasks[task].effort)

    def length(self, task: str, resource: str) -> int:
        """Fewest working days the task takes on this resource (at its full rate)."""
        return -(-self.tasks[task].effort // self.rate(task, resource))

    def earliest(self, task: str) -> int:
        """First working-day index allowed by earliest_start (or the pinned start)."""
        return self._earliest[task]

    def deadline(self, task: str) -> int | None:
        """Index of the last working day on or before the deadline (-1 if none is)."""
        return self._deadline[task]

    def available_from(self, resource: str, day: int) -> int:
        """Days the resource works from index `day` to the end of the horizon."""
        return self._left[resource][day] if day < len(self.days) else 0

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
                pinned = f" (pinned to {task.resource})" if task.resource else ""
                errors.append((f"{where}.skill", f"no resource can do task {task.id!r}: none has "
                                                 f"skill {task.skill!r}{pinned}"))
            if task.start is not None and task.start not in self.index:
                errors.append((f"{where}.start", f"{task.start} is not a working day in the horizon"))
        if errors:
            raise Invalid(errors)
        self.topological, cycle = self._topological()
        if cycle:
            raise Invalid([("tasks", "predecessors form a cycle: " + " → ".join(cycle))])

    def _check_room(self) -> None:
        errors: list[tuple[str, str]] = []
        for i, task in enumerate(self.problem.tasks):
            first = self.earliest(task.id)
            if not any(self.available_from(r, first) >= self.length(task.id, r)
                       for r in self.eligible[task.id]):
                shortest = min(self.length(task.id, r) for r in self.eligible[task.id])
                errors.append((f"tasks[{i}]", f"task {task.id!r} needs {shortest} working days "
                                              f"from {task.earliest_start or self.problem.start} "
                                              "but the horizon ends before; raise horizon_days"))
            if task.start is not None and not any(self.available[r][first]
                                                  for r in self.eligible[task.id]):
                errors.append((f"tasks[{i}].start", f"started task {task.id!r} cannot keep its "
                                                    f"start {task.start}: its resource is off then"))
        if errors:
            raise Invalid(errors)

    def _topological(self) -> tuple[list[str], list[str]]:
        """Tasks with every predecessor before them, and a cycle (empty if there is none)."""
        waiting = {t: len(self.tasks[t].predecessors) for t in self.order}
        followers: dict[str, list[str]] = {t: [] for t in self.order}
        for t in self.order:
            for p in self.tasks[t].predecessors:
                followers[p].append(t)
        order = [t for t in self.order if waiting[t] == 0]
        for task in order:            # grows while it is walked
            for follower in followers[task]:
                waiting[follower] -= 1
                if waiting[follower] == 0:
                    order.append(follower)
        if len(order) == len(self.order):
            return order, []
        # Every task left has a predecessor left: walking back from one must meet itself again.
        left = {t for t, n in waiting.items() if n}
        path: list[str] = []
        seen: dict[str, int] = {}
        task = next(t for t in self.order if t in left)
        while task not in seen:
            seen[task] = len(path)
            path.append(task)
            task = next(p for p in self.tasks[task].predecessors if p in left)
        cycle = path[seen[task]:]
        return order, [*reversed(cycle), cycle[-1]]


def _suffix_counts(available: list[bool]) -> list[int]:
    counts = [0] * (len(available) + 1)
    for d in range(len(available) - 1, -1, -1):
        counts[d] = counts[d + 1] + available[d]
    return counts
