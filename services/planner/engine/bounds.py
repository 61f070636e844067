"""Lower bounds on the weighted lateness that every schedule has, computed in milliseconds:
the answer's `bound` when CP-SAT proves nothing better, and the bench's reference.

- Paths: each task finishes no sooner than its earliest start (after its predecessors'
  soonest finish) plus its fewest working days at its full rate on a resource's working days.
- Load: the tasks only one resource can do, due by a day, need its hours before that day; the
  hours that do not fit make the last of them late by at least that many of its full days.
The larger of the two is returned (the first sums over tasks, the second over resources).
"""
from bisect import bisect_left

from services.planner.engine.model import Model


def soonest_finish(model: Model) -> dict[str, int]:
    """The earliest working day each task can finish on, capacity shared with nobody."""
    works = {r: [d for d, ok in enumerate(model.available[r]) if ok] for r in model.resources}
    finish: dict[str, int] = {}
    for task in model.topological:
        ready = max([model.earliest(task)]
                    + [finish[p] + 1 for p in model.tasks[task].predecessors])
        options = [len(model.days) - 1]
        for r in model.eligible[task]:
            n = bisect_left(works[r], ready) + model.length(task, r) - 1
            if n < len(works[r]):
                options.append(works[r][n])
        finish[task] = min(options)
    return finish


def lower_bound(model: Model) -> int:
    """A weighted lateness that no schedule of the problem can beat."""
    return max(_paths(model), _load(model))


def _paths(model: Model) -> int:
    finish = soonest_finish(model)
    total = 0
    for task, last in finish.items():
        deadline = model.deadline(task)
        if deadline is not None and last > deadline:
            total += model.tasks[task].priority * (last - deadline)
    return total


def _load(model: Model) -> int:
    total = 0
    for r, resource in model.resources.items():
        alone = [t for t in model.order
                 if model.eligible[t] == [r] and model.deadline(t) is not None]
        if not alone:
            continue
        start = min(model.earliest(t) for t in alone)
        capacity = [0] * (len(model.days) + 1)   # hours of r on days start .. d-1
        for d in range(start, len(model.days)):
            capacity[d + 1] = capacity[d] + (resource.hours_per_day if model.available[r][d] else 0)
        worst = effort = 0
        lightest = max(model.tasks[t].priority for t in alone)
        for t in sorted(alone, key=lambda t: model.deadline(t) or 0):
            effort += model.tasks[t].effort
            lightest = min(lightest, model.tasks[t].priority)
            deadline = model.deadline(t)
            assert deadline is not None
            excess = effort - capacity[max(deadline + 1, 0)]
            if excess > 0:
                # The excess needs at least this many more days of the resource at full hours.
                days = -(-excess // resource.hours_per_day)
                worst = max(worst, days * lightest)
        total += worst
    return total
