"""A priority-rule schedule (serial schedule generation): the immediate first answer, the
hint that starts CP-SAT, and the fallback when CP-SAT finds nothing in time.

Started (pinned) work is placed first; then, among tasks whose predecessors are placed, the one
with the earliest deadline (then the highest priority) goes to the resource that finishes it
soonest, on the first run of working days with room for its daily rate.
"""
import heapq

from services.planner.engine.model import Model
from services.planner.engine.problem import Choice, Invalid


def _first_fit(free: list[int], start: int, length: int, rate: int) -> int | None:
    day = start
    while day + length <= len(free):
        blocked = next((d for d in range(day, day + length) if free[d] < rate), None)
        if blocked is None:
            return day
        day = blocked + 1
    return None


def schedule(model: Model) -> Choice:
    """Return (resource, first working-day index) per task; Invalid if the horizon is short."""
    free = {r: [model.resources[r].hours_per_day if ok else 0 for ok in model.available[r]]
            for r in model.resources}
    choice: Choice = {}
    finish: dict[str, int] = {}

    def place(task: str, resource: str, first: int) -> None:
        rate = model.rate(task, resource)
        for d in range(first, first + model.length(task, resource)):
            free[resource][d] -= rate
        choice[task] = (resource, first)
        finish[task] = first + model.length(task, resource) - 1

    started = [(t, pinned) for t in model.order if (pinned := model.tasks[t].start) is not None]
    for task, pinned in started:
        first = model.index[pinned]
        fits = [r for r in model.eligible[task] if _first_fit(
            free[r], first, model.length(task, r), model.rate(task, r)) == first]
        if not fits:
            raise Invalid([("tasks", f"started task {task!r} cannot keep its start "
                                     f"{pinned}: its resource is full or off then")])
        place(task, fits[0], first)

    waiting = {t: len(model.tasks[t].predecessors) for t in model.order}
    followers: dict[str, list[str]] = {t: [] for t in model.order}
    for t in model.order:
        for p in model.tasks[t].predecessors:
            followers[p].append(t)

    position = {t: i for i, t in enumerate(model.order)}

    def key(task: str) -> tuple[int, int, int]:
        deadline = model.deadline(task)
        return (deadline if deadline is not None else len(model.days),
                -model.tasks[task].priority, position[task])

    ready = [(key(t), t) for t in model.order if waiting[t] == 0]
    heapq.heapify(ready)
    while ready:
        _, task = heapq.heappop(ready)
        if task not in choice:
            start = max([model.earliest(task)]
                        + [finish[p] + 1 for p in model.tasks[task].predecessors])
            options = []
            for r in model.eligible[task]:
                fit = _first_fit(free[r], start, model.length(task, r), model.rate(task, r))
                if fit is not None:
                    options.append((fit + model.length(task, r), r, fit))
            if not options:
                raise Invalid([("horizon_days", f"task {task!r} does not fit before the horizon "
                                                "ends with the capacity available; raise "
                                                "horizon_days or add capacity")])
            _, resource, first = min(options)
            place(task, resource, first)
        elif any(choice[task][1] <= finish[p] for p in model.tasks[task].predecessors):
            raise Invalid([("tasks", f"started task {task!r} starts before its predecessors "
                                     "finish; unpin it or its predecessors")])
        for follower in followers[task]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                heapq.heappush(ready, (key(follower), follower))
    return choice
