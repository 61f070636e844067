"""Turn an engine's choice of (resource, first day) per task into a schedule: every rule is
checked again, because an engine bug must never reach a user as a plan; late tasks are
explained and each resource's weekly utilisation is counted."""
from collections import defaultdict

from services.planner.engine.explanations import explain_late
from services.planner.engine.model import Model
from services.planner.engine.problem import (
    Assignment,
    Choice,
    Late,
    Schedule,
    Status,
    Utilisation,
)


def assemble(model: Model, choice: Choice, *, status: Status, engine: str, bound: int | None,
             seconds: float, first_answer_seconds: float, best_answer_seconds: float) -> Schedule:
    """Turn (resource, first day index) per task into a schedule, checking every rule.

    Raises RuntimeError if a rule is broken: that is an engine bug, never the user's."""
    days = model.days
    load: dict[str, list[int]] = {r: [0] * len(days) for r in model.resources}   # reserved
    worked: dict[str, list[int]] = {r: [0] * len(days) for r in model.resources}
    users: dict[tuple[str, int], list[str]] = defaultdict(list)
    assignments: list[Assignment] = []
    finish: dict[str, int] = {}
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
    late: list[Late] = []
    weighted = 0
    for task_id in model.order:
        deadline = model.deadline(task_id)
        if deadline is None or finish[task_id] <= deadline:
            continue
        days_late = finish[task_id] - deadline
        weighted += days_late * model.tasks[task_id].priority
        late.append(explain_late(model, choice, finish, users, load, task_id, days_late))
    return Schedule(
        status=status, weighted_lateness=weighted,
        makespan=days[max(finish.values())] if finish else None, bound=bound,
        assignments=tuple(assignments), late=tuple(late), utilisation=_utilisation(model, worked),
        engine=engine, seconds=seconds, first_answer_seconds=first_answer_seconds,
        best_answer_seconds=best_answer_seconds, moved=_moved(model, choice))


def _verify(model: Model, choice: Choice, load: dict[str, list[int]],
            finish: dict[str, int]) -> None:
    """Every rule of the problem holds: an engine bug must never reach a user as a plan."""
    broken: list[str] = []
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


def _utilisation(model: Model, worked: dict[str, list[int]]) -> tuple[Utilisation, ...]:
    rows: list[Utilisation] = []
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


def _moved(model: Model, choice: Choice) -> int | None:
    previous = model.problem.previous
    if not previous:
        return None
    return sum(1 for task_id, (resource, first) in choice.items()
               if task_id in previous and previous[task_id] != (resource, model.days[first]))
