"""Priority rules (serial schedule generation): the immediate first answer, the hint that
starts CP-SAT, the fallback when CP-SAT finds nothing in time, and the bench's baselines.

Started (pinned) work is placed first, from its pinned day. A forward rule then takes, among
tasks whose predecessors are placed, the one its key ranks first and gives it, on the resource
that finishes it soonest, as many hours as are free (up to its rate) on each working day from
the day it is ready. The backward rule places work as late as each deadline allows (it plants
zero-lateness schedules when one is easy to see); a forward pass in its order then packs it
left. `schedule` keeps the best by the objective.

A re-plan runs each rule twice, keeping previous places where they are no later (`keep`) and
afresh as a fresh solve does (lateness comes first), and adds `repair`: the previous plan
mended (every task whose exact previous hours still fit keeps them, the rest placed around
them); `around` places a re-plan's neighbourhood around the work kept fixed, the start of
CP-SAT's search of it (`cp_sat`, `neighbourhood`); `keep_more` puts back on their previous
hours the tasks a stopped search left moved.
"""
import contextlib
import heapq
import random
from bisect import bisect_right
from collections.abc import Callable, Collection

from services.planner.engine.model import Model
from services.planner.engine.problem import Invalid, Plan, Work

Key = Callable[[str], tuple[int, ...]]
RANDOM_PASSES = 3
REPAIRED = "previous, repaired"   # the rule of a re-plan that keeps what it can (`repair`)
AFRESH = "afresh"                 # a re-plan's rule run as in a fresh solve, keeping nothing
# Each pass of `repair` costs one forward pass (0.14 s of CPU on 5,000 tasks): a change that needs
# more releases than this is not local, and the other rules answer it.
REPAIR_PASSES = 8


def schedule(model: Model, *, stop: Callable[[], bool] | None = None) -> Plan:
    """Return the best plan of every rule; Invalid if none fits in the horizon. Once `stop()`
    is true (out of time) no further rule starts if one has a plan."""
    return best(model, list(rules(model, stop=stop).values()))


def rules(model: Model, *, stop: Callable[[], bool] | None = None) -> dict[str, Plan]:
    """Each rule's plan by name (a rule that cannot place its work is left out); once `stop()`
    is true no further rule starts if one has a plan."""
    latest = latest_finish(model)
    position = {t: i for i, t in enumerate(model.order)}

    def late() -> bool:
        return stop is not None and bool(plans) and stop()

    keys = _orders(model, latest, position)
    plans: dict[str, Plan] = {}
    rng = random.Random(0)   # fixed: the same input gives the same answer
    for i in range(RANDOM_PASSES):
        keys[f"randomised {i + 1}"] = _noisy(model, latest, position, rng)
    if model.previous:
        keys["previous starts"] = _previous_key(model, latest, position)
        if (repaired := repair(model, keys["earliest deadline"])) is not None:
            plans[REPAIRED] = repaired
    failure: Invalid | None = None
    # A re-plan also runs each rule as a fresh solve does: keeping previous places can cost
    # lateness, which comes first (the trial's week off: 80 kept, 36 afresh).
    runs = [(name, key, keep) for name, key in keys.items()
            for keep in ((True, False) if model.previous else (False,))]
    for name, key, keep in runs:
        if late():
            return plans
        try:
            plans[name if keep or not model.previous else f"{name}, {AFRESH}"] = \
                forward(model, key, keep=keep)
        except Invalid as invalid:
            failure = invalid
    if not late() and (backward_plan := backward(model, latest)) is not None:
        plans["backward"] = backward_plan
        first = {t: work.first for t, work in backward_plan.items()}
        # Packing is an improvement; where it fails, the backward plan itself stands.
        with contextlib.suppress(Invalid):
            plans["backward, packed"] = forward(model, lambda t: (first[t], position[t]))
    if not plans:
        assert failure is not None
        raise failure
    return plans


def best(model: Model, plans: list[Plan]) -> Plan:
    """The plan that is best by the objective (lateness, tasks moved, last day)."""
    return min(plans, key=lambda plan: measure(model, plan))


def measure(model: Model, plan: Plan) -> tuple[int, int, int]:
    """(weighted working days late, tasks moved from the previous plan, last working day)."""
    weighted = 0
    for task_id, work in plan.items():
        deadline = model.deadline(task_id)
        if deadline is not None and work.last > deadline:
            weighted += model.tasks[task_id].priority * (work.last - deadline)
    return weighted, moved(model, plan), max((w.last for w in plan.values()), default=0)


def moved(model: Model, plan: Plan) -> int:
    """Tasks of the previous plan that are not kept where it had them (`Model.kept`)."""
    return sum(1 for task_id in model.previous
               if task_id in plan and not model.kept(task_id, plan[task_id]))


def latest_finish(model: Model) -> dict[str, int]:
    """Latest last day of each task that keeps it and every follower on time (working days at
    the full rate; the horizon's last day where nothing is due)."""
    followers = _followers(model)
    latest: dict[str, int] = {}
    for task in reversed(model.topological):
        own = model.deadline(task)
        limit = len(model.days) - 1 if own is None else own
        for f in followers[task]:
            limit = min(limit, latest[f] - min(model.length(f, r) for r in model.eligible[f]))
        latest[task] = limit
    return latest


def _keep_until(model: Model) -> dict[str, int]:
    """`latest_finish` with each follower's days counted over the working days of the resource
    that can start it latest: the last day to which a kept task may hold its place. (Counted
    over every day, the week off of the only person who can do a follower went unseen, and a
    chain kept before it made its last task late: the trial's week off, 60 kept, 10 afresh.
    The rules' keys keep `latest_finish`: as an order, it did better on the trial's plans.)"""
    followers = _followers(model)
    works = {r: [d for d, ok in enumerate(model.available[r]) if ok] for r in model.resources}
    latest: dict[str, int] = {}
    for task in reversed(model.topological):
        own = model.deadline(task)
        limit = len(model.days) - 1 if own is None else own
        for f in followers[task]:
            limit = min(limit, _latest_start(model, works, f, latest[f]) - 1)
        latest[task] = limit
    return latest


def _latest_start(model: Model, works: dict[str, list[int]], task: str, end: int) -> int:
    """The latest first day from which the task can end by day `end` on some eligible
    resource's working days (at its full rate: a day before the horizon where none can)."""
    starts = [works[r][i] for r in model.eligible[task]
              if (i := bisect_right(works[r], end) - model.length(task, r)) >= 0]
    return max(starts, default=end - min(model.length(task, r) for r in model.eligible[task]) + 1)


def forward(model: Model, key: Key, *, keep: bool = False, fixed: Plan | None = None,
            around_previous: bool = False) -> Plan:
    """Place tasks as early as possible in the order `key` gives to those ready. With `keep`,
    a task stays at its previous place where that makes neither it nor its followers later
    than due (`_keep_until`); with
    `around_previous`, it goes around the previous hours of the tasks not placed yet where
    that is no later either (so that it does not push them out). The started work is placed
    first, or `fixed` is taken as it is instead (it must fit)."""
    free = _free(model)
    plan = dict(fixed or {})
    for work in plan.values():
        for d, h in work.hours:
            free[work.resource][d] -= h
    plan |= _place_started(model, free, skip=plan.keys())
    limit = _limits(model, plan)
    latest = _keep_until(model) if keep else {}
    held = {t: w for t, w in keepable_alone(model).items()
            if t not in plan} if around_previous else {}
    reserved = {r: [0] * len(model.days) for r in model.resources}
    for work in held.values():
        for d, h in work.hours:
            reserved[work.resource][d] += h
    waiting = {t: len(model.tasks[t].predecessors) for t in model.order}
    followers = _followers(model)
    ready = [(key(t), t) for t in model.order if waiting[t] == 0]
    heapq.heapify(ready)
    while ready:
        _, task = heapq.heappop(ready)
        if task not in plan:
            if (own := held.get(task)) is not None:
                for d, h in own.hours:
                    reserved[own.resource][d] -= h
            start = max([model.earliest(task)]
                        + [plan[p].last + 1 for p in model.tasks[task].predecessors])
            options, around = [], []
            for r in model.eligible[task]:
                rate, effort = model.rate(task, r), model.tasks[task].effort
                hours = _fill(free[r], start, rate, effort, limit[task] + 1)
                if hours is not None:
                    options.append((hours[-1][0], model.eligible[task].index(r), r, hours))
                if held and (hours := _fill(free[r], start, rate, effort, limit[task] + 1,
                                            reserved[r])) is not None:
                    around.append((hours[-1][0], model.eligible[task].index(r), r, hours))
            if not options:
                raise _NoRoom(task)
            _, _, resource, hours = min(options)
            if around and min(around)[0] <= max(hours[-1][0], _due(model, task)):
                _, _, resource, hours = min(around)
            if keep and (kept := _kept(model, free, task, start, limit[task], hours,
                                       latest[task])):
                resource, hours = kept
            plan[task] = Work(resource, tuple(hours))
            for d, h in hours:
                free[resource][d] -= h
        for follower in followers[task]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                heapq.heappush(ready, (key(follower), follower))
    return plan


def repair(model: Model, key: Key, kept: Plan | None = None, *,
           around_previous: bool = False) -> Plan | None:
    """The previous plan mended: every task whose previous hours still fit (its resource, its
    window, its pin, the capacity, its predecessors) keeps them exactly (or the `kept` work
    is kept), and the others are placed around them as `forward` places work, in `key` order.
    A task that then finds no room releases the kept tasks that follow it and the pass starts
    again (at most REPAIR_PASSES passes); None if it still finds none. This is the plan that
    moves fewest tasks when the change is local, and the hint that lets CP-SAT start from it."""
    kept = _keepable(model) if kept is None else kept
    # The others stay at their previous place where that is no later (`forward`'s keep).
    for _ in range(REPAIR_PASSES):
        try:
            plan = forward(model, key, keep=True, fixed=kept, around_previous=around_previous)
        except _NoRoom as no_room:
            blocking = _successors(model, no_room.task) & kept.keys()
            if not blocking:
                return None
            kept = {t: work for t, work in kept.items() if t not in blocking}
        except Invalid:
            return None
        else:
            # Started work placed afresh is not held back by the kept work after it.
            return plan if all(plan[p].last < work.first for t, work in plan.items()
                               for p in model.tasks[t].predecessors) else None
    return None


def around(model: Model, fixed: Plan) -> Plan | None:
    """The best plan of the forward rules that keeps the `fixed` work as it is and places
    every other task around it, at its previous place where that is no later, and around
    the previous hours of others or not (`repair` from it); None if none fits."""
    keys = _orders(model, latest_finish(model), {t: i for i, t in enumerate(model.order)})
    plans = [plan for key in keys.values() for around_previous in (False, True)
             if (plan := repair(model, key, fixed, around_previous=around_previous)) is not None]
    return best(model, plans) if plans else None


def keep_more(model: Model, plan: Plan) -> Plan:
    """The plan with every moved task put back on its previous hours where they still fit (its
    resource, pin, window, the capacity left by the others and its neighbours in the chain)
    and that makes the plan better by the objective; repeated until none is. A search stopped
    by its time limit leaves such tasks (measured on bursty re-plans of 336 tasks: 69 → 68)."""
    plan = dict(plan)
    used: dict[tuple[str, int], int] = {}
    for work in plan.values():
        for d, h in work.hours:
            used[work.resource, d] = used.get((work.resource, d), 0) + h
    followers = _followers(model)
    score = measure(model, plan)
    better = True
    while better:
        better = False
        for t, placed in model.previous.items():
            if t not in plan or not placed.hours or model.kept(t, plan[t]) or \
                    not _fits_back(model, plan, used, followers, t):
                continue
            trial = {**plan, t: Work(placed.resource, placed.hours)}
            if (scored := measure(model, trial)) < score:
                for d, h in plan[t].hours:
                    used[plan[t].resource, d] -= h
                for d, h in placed.hours:
                    used[placed.resource, d] = used.get((placed.resource, d), 0) + h
                plan, score, better = trial, scored, True
    return plan


def _fits_back(model: Model, plan: Plan, used: dict[tuple[str, int], int],
               followers: dict[str, list[str]], task: str) -> bool:
    """Whether `task`'s previous hours fit the plan with its own current work taken out."""
    placed, spec, now = model.previous[task], model.tasks[task], plan[task]
    r, hours = placed.resource, placed.hours
    assert hours
    first, last = hours[0][0], hours[-1][0]
    if r not in model.eligible[task] or first < model.earliest(task) or \
            sum(h for _, h in hours) != spec.effort or (spec.resource is not None and spec.resource != r) or \
            (spec.start is not None and model.index.get(spec.start) != first):
        return False
    if any(plan[p].last >= first for p in spec.predecessors) or \
            any(plan[f].first <= last for f in followers[task]):
        return False
    mine = dict(now.hours) if now.resource == r else {}
    return all(model.available[r][d] and h <= model.rate(task, r) and
               used.get((r, d), 0) - mine.get(d, 0) + h <= model.resources[r].hours_per_day
               for d, h in hours)


def _orders(model: Model, latest: dict[str, int], position: dict[str, int]) -> dict[str, Key]:
    """The two plain rules' keys: earliest deadline, and latest finish through successors."""
    return {
        "earliest deadline": lambda t: (_due(model, t), -model.tasks[t].priority, position[t]),
        "latest finish": lambda t: (latest[t], -model.tasks[t].priority, position[t]),
    }


def keepable_alone(model: Model) -> Plan:
    """The previous hours of every task for which they are still a valid place on their own
    (resource, window, pin, the resource's days), whatever the other tasks do."""
    found: Plan = {}
    for task in model.order:
        placed = model.previous.get(task)
        if placed is None or not placed.hours:
            continue
        work, spec = Work(placed.resource, placed.hours), model.tasks[task]
        r = work.resource
        if r in model.eligible[task] and sum(h for _, h in work.hours) == spec.effort \
                and work.first >= model.earliest(task) \
                and (spec.start is None or model.days[work.first] == spec.start) \
                and all(0 < h <= model.rate(task, r) and model.available[r][d]
                        for d, h in work.hours):
            found[task] = work
    return found


def _due(model: Model, task: str) -> int:
    found = model.deadline(task)
    return len(model.days) if found is None else found


def _keepable(model: Model) -> Plan:
    """The tasks whose previous hours are still a valid place on their own, taken in
    topological order while they fit in the capacity and after their kept predecessors."""
    free = _free(model)
    alone = keepable_alone(model)
    kept: Plan = {}
    for task in model.topological:
        if (work := alone.get(task)) is None \
                or any(h > free[work.resource][d] for d, h in work.hours) \
                or any(p in kept and kept[p].last >= work.first
                       for p in model.tasks[task].predecessors):
            continue
        kept[task] = work
        for d, h in work.hours:
            free[work.resource][d] -= h
    return kept


def _successors(model: Model, task: str) -> set[str]:
    """Every task that waits for `task`, however indirectly."""
    followers = _followers(model)
    found: set[str] = set()
    queue = [task]
    while queue:
        for f in followers[queue.pop()]:
            if f not in found:
                found.add(f)
                queue.append(f)
    return found


def backward(model: Model, latest: dict[str, int]) -> Plan | None:
    """Place tasks as late as their latest finish allows, followers first; None if a task
    does not fit after its earliest start."""
    free = _free(model)
    try:
        plan = _place_started(model, free)
    except Invalid:
        return None
    followers = _followers(model)
    floor = {t: max([model.earliest(t)] + [plan[p].last + 1 for p in model.tasks[t].predecessors
                                           if p in plan]) for t in model.order}
    waiting = {t: len(followers[t]) for t in model.order}
    ready = [(-latest[t], t) for t in model.order if waiting[t] == 0]
    heapq.heapify(ready)
    while ready:
        _, task = heapq.heappop(ready)
        if task not in plan:
            ceiling = min([latest[task]] + [plan[f].first - 1 for f in followers[task]])
            options = []
            for r in model.eligible[task]:
                hours = _fill_back(free[r], ceiling, model.rate(task, r),
                                   model.tasks[task].effort, floor[task])
                if hours is not None:
                    options.append((-hours[0][0], model.eligible[task].index(r), r, hours))
            if not options:
                return None
            _, _, resource, hours = min(options)
            plan[task] = Work(resource, tuple(hours))
            for d, h in hours:
                free[resource][d] -= h
        for p in model.tasks[task].predecessors:
            waiting[p] -= 1
            if waiting[p] == 0:
                heapq.heappush(ready, (-latest[p], p))
    return plan


class _NoRoom(Invalid):
    """A task does not fit before the horizon ends or before the fixed work after it."""

    def __init__(self, task: str):
        super().__init__([("horizon_days", f"task {task!r} does not fit before the horizon "
                                           "ends (or before started work that follows it) "
                                           "with the capacity available; raise horizon_days "
                                           "or add capacity")])
        self.task = task


def _noisy(model: Model, latest: dict[str, int], position: dict[str, int],
           rng: random.Random) -> Key:
    """Latest finish, give or take a few days at random: a different order each draw."""
    noise = {t: rng.randint(0, 3) for t in model.order}
    return lambda t: (latest[t] + noise[t], -model.tasks[t].priority, position[t])


def _previous_key(model: Model, latest: dict[str, int], position: dict[str, int]) -> Key:
    previous = {t: latest[t] if placed.first is None else placed.first
                for t, placed in model.previous.items()}
    return lambda t: (previous.get(t, latest[t]), -model.tasks[t].priority, position[t])


def _kept(model: Model, free: dict[str, list[int]], task: str, start: int, limit: int,
          soonest: list[tuple[int, int]], latest: int) -> tuple[str, list[tuple[int, int]]] | None:
    """The task's work where the previous plan had it (its exact hours, or for the older form
    its hours from its previous first day), if that is possible now and finishes no later than
    the soonest placement or its `latest` finish through its followers (`_keep_until`)."""
    if (placed := model.previous.get(task)) is None or placed.first is None:
        return None
    resource, first = placed.resource, placed.first
    if first < start or resource not in model.eligible[task] or free[resource][first] <= 0:
        return None
    rate = model.rate(task, resource)
    hours: list[tuple[int, int]] | None
    if placed.hours is None:
        hours = _fill(free[resource], first, rate, model.tasks[task].effort, limit + 1)
    else:
        hours = list(placed.hours)
        if sum(h for _, h in hours) != model.tasks[task].effort or any(
                d > limit or not 0 < h <= min(rate, free[resource][d]) for d, h in hours):
            return None
    # Nothing due at or after it (latest is then the horizon's end): no later than soonest.
    due = -1 if model.deadline(task) is None and latest == len(model.days) - 1 else latest
    if not hours or hours[-1][0] > max(soonest[-1][0], due):
        return None
    return resource, hours


def _free(model: Model) -> dict[str, list[int]]:
    return {r: [model.resources[r].hours_per_day if ok else 0 for ok in model.available[r]]
            for r in model.resources}


def _followers(model: Model) -> dict[str, list[str]]:
    followers: dict[str, list[str]] = {t: [] for t in model.order}
    for t in model.order:
        for p in model.tasks[t].predecessors:
            followers[p].append(t)
    return followers


def _place_started(model: Model, free: dict[str, list[int]],
                   skip: Collection[str] = ()) -> Plan:
    """Started work (but `skip`) from its pinned day, on the eligible resource that finishes
    it soonest.

    Every started task first holds one hundredth of its pinned day, so that filling one never
    takes the day another must start on."""
    plan: Plan = {}
    held: dict[str, tuple[str, int]] = {}
    for task in model.order:
        if (pinned := model.tasks[task].start) is None or task in skip:
            continue
        first = model.index[pinned]
        options = [r for r in model.eligible[task] if free[r][first] > 0]
        if not options:
            raise Invalid([("tasks", f"started task {task!r} cannot keep its start {pinned}: "
                                     "its resource is full or off then")])
        resource = max(options, key=lambda r: free[r][first])
        held[task] = resource, first
        free[resource][first] -= 1
    # Each ends before the started work after it: the tightest are filled first.
    stop = {task: min([len(model.days)] + [held[f][1] for f in _followers(model)[task] if f in held])
            for task in held}
    for task, (resource, first) in sorted(held.items(), key=lambda item: stop[item[0]]):
        free[resource][first] += 1
        hours = _fill(free[resource], first, model.rate(task, resource),
                      model.tasks[task].effort, stop[task])
        if hours is None:
            raise Invalid([("tasks", f"started task {task!r} does not fit before the horizon "
                                     "ends; raise horizon_days")])
        plan[task] = Work(resource, tuple(hours))
        for d, h in hours:
            free[resource][d] -= h
    for task, work in plan.items():
        if any(p in plan and plan[p].last >= work.first for p in model.tasks[task].predecessors):
            raise Invalid([("tasks", f"started task {task!r} starts before its predecessors "
                                     "finish; unpin it or its predecessors")])
    return plan


def _limits(model: Model, started: Plan) -> dict[str, int]:
    """Last day each task may end so that started work after it keeps its start."""
    followers = _followers(model)
    limit: dict[str, int] = {}
    for task in reversed(model.topological):
        last = started[task].last if task in started else len(model.days) - 1
        for f in followers[task]:
            last = min(last, started[f].first - 1 if f in started else limit[f] - 1)
        limit[task] = last
    return limit


def _fill(free: list[int], start: int, rate: int, effort: int, stop: int,
          reserved: list[int] | None = None) -> list[tuple[int, int]] | None:
    """Hours from day `start` on, as many as are free (and not `reserved`) up to `rate`,
    before day `stop`."""
    hours: list[tuple[int, int]] = []
    left, day = effort, start
    while left > 0:
        if day >= min(stop, len(free)):
            return None
        if (h := min(rate, free[day] - (reserved[day] if reserved else 0), left)) > 0:
            hours.append((day, h))
            left -= h
        day += 1
    return hours


def _fill_back(free: list[int], ceiling: int, rate: int, effort: int,
               floor: int) -> list[tuple[int, int]] | None:
    """Hours from day `ceiling` back, as many as are free up to `rate`, not before `floor`."""
    hours: list[tuple[int, int]] = []
    left, day = effort, ceiling
    while left > 0:
        if day < max(floor, 0):
            return None
        if (h := min(rate, free[day], left)) > 0:
            hours.append((day, h))
            left -= h
        day -= 1
    return hours[::-1]
