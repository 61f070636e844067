"""The problem on its working-day axis: what every engine needs, computed once and checked.

The axis holds the horizon's working days (weekends and holidays left out); each resource has
its own availability on it (its time off). A task's daily rate and length depend on the resource
that does it.
"""
from datetime import timedelta

from services.planner.engine.problem import Invalid, Problem, Resource, Task


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
        self._check()
        self.eligible = {t.id: [r.id for r in problem.resources if self._can(t, r)]
                         for t in problem.tasks}
        self.available = {r.id: [day not in r.time_off for day in self.days]
                          for r in problem.resources}

    def _can(self, task: Task, resource: Resource) -> bool:
        return (task.resource is None or task.resource == resource.id) \
            and task.skill in resource.skills and resource.hours_per_day > 0

    def rate(self, task: str, resource: str) -> int:
        """Hundredths of an hour the task takes from the resource on each of its days."""
        limit = self.resources[resource].hours_per_day
        cap = self.tasks[task].max_per_day
        if cap is not None:
            limit = min(limit, cap)
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
                pinned = f" (pinned to {task.resource})" if task.resource else ""
                errors.append((f"{where}.skill", f"no resource can do task {task.id!r}: none has "
                                                 f"skill {task.skill!r}{pinned}"))
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
