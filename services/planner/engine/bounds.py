"""What every schedule of the problem must have, computed in milliseconds: lower bounds on its
weighted lateness (the answer's `bound` when CP-SAT proves nothing better, and the bench's
reference) and proofs that no schedule exists (the only grounds, with a search that proves it,
for saying that the work does not fit).

- Paths: each task finishes no sooner than its release (its earliest start, after its
  predecessors' soonest finish) plus its fewest working days at its full rate on a resource's
  working days. A task that cannot finish by the horizon's end, or before a started follower's
  pinned start, proves that there is no schedule.
- Energy, per pool of resources (each task's set of eligible resources, and all of them): the
  tasks only the pool can do, released on day a or later and due by day D, need their hours in
  [a, D]; the hours that do not fit are done after D (the preemptive relaxation of Jackson's
  rule, with the pool's hours of each day as one machine). At least as many of them as it takes
  to hold those hours are late, and the last by as many of the pool's days as those hours need:
  Σ of that many smallest priorities + the smallest priority × (those days − 1). Or, counting
  the last of them with its followers (none of which is in the set, as they finish after it):
  Σ of one fewer smallest priorities + the least, over the set, of a task's lateness and its
  followers' (each at least its distance along the chain later) if it ends on that last day.
  Pools that share no resource share no task, so a greedy packing of their first bounds sums
  (the second counts tasks of other pools, so it stands alone). Without deadlines (D = the
  horizon's end) more hours than the pool has from day a prove that there is no schedule.
The bound is the larger of the paths' (a sum over tasks) and the energy's.
"""
from bisect import bisect_left
from dataclasses import dataclass

from services.planner.engine.model import Model
from services.planner.engine.problem import UNIT

# (threshold, task) pairs the energy bound looks at per pool, at most: its time stays under
# 0.2 s on 5,000 tasks; fewer release days are tried past it (any subset gives a true bound).
ENERGY_WORK = 40_000
# Followers counted with a late task, in all, and sets whose last task is looked for among
# them, at most (fewer followers or none give a weaker but true bound).
TAIL_WORK = 200_000
TAIL_SET = 64


def soonest_finish(model: Model) -> dict[str, int]:
    """The earliest working day each task can finish on, capacity shared with nobody (the
    horizon's last day for a task that cannot finish inside it)."""
    last = len(model.days) - 1
    return {t: min(day, last) for t, day in _soonest(model).items()}


def releases(model: Model) -> dict[str, int]:
    """The first working day each task can work on: its earliest start, after every
    predecessor's soonest finish (the day after the horizon, len(model.days), for a task whose
    predecessors cannot finish inside it: the bounds index the pools' hours by it)."""
    soonest = _soonest(model)
    return {t: min(len(model.days),
                   max([model.earliest(t)] + [soonest[p] + 1 for p in model.tasks[t].predecessors]))
            for t in model.order}


def lower_bound(model: Model, *, energy: bool = True) -> int:
    """A weighted lateness that no schedule of the problem can beat (without `energy`, only
    the paths', in a tenth of the time)."""
    return max(_paths(model), _energy(model) if energy else 0)


def unschedulable(model: Model) -> list[tuple[str, str]]:
    """Proofs that the problem has no schedule, as [(field, what is wrong and how to fix it)];
    empty when none of these cheap arguments proves it (a schedule may still not exist)."""
    soonest = _soonest(model)
    days = model.days
    errors: list[tuple[str, str]] = []
    for i, task in enumerate(model.problem.tasks):
        if soonest[task.id] >= len(days):
            errors.append((f"tasks[{i}]", f"task {task.id!r} cannot finish before the horizon "
                                          f"ends ({days[-1]}), even with every resource free for "
                                          "it and its predecessors; raise horizon_days"))
        if task.start is not None:
            errors += [(f"tasks[{i}].start", f"started task {task.id!r} starts {task.start}, "
                                             f"but its predecessor {p!r} cannot finish before "
                                             f"{days[min(soonest[p], len(days) - 1)]}; unpin it "
                                             "or its predecessors")
                       for p in task.predecessors if soonest[p] >= model.earliest(task.id)]
    if errors:
        return errors
    released = releases(model)
    for pool in _pools(model):
        need: dict[int, int] = {}
        for t in pool.tasks:
            need[released[t]] = need.get(released[t], 0) + model.tasks[t].effort
        hours = 0
        for a in sorted(need, reverse=True):   # all the work released on day a or later
            hours += need[a]
            if hours > pool.capacity[len(days)] - pool.capacity[a]:
                errors.append(("horizon_days", (
                    f"the tasks only {', '.join(pool.resources)} can do need "
                    f"{hours / UNIT:g} h from {days[a]} on, and {', '.join(pool.resources)} "
                    f"have {(pool.capacity[len(days)] - pool.capacity[a]) / UNIT:g} h before "
                    "the horizon ends: the work does not fit; raise horizon_days or add "
                    "capacity")))
                return errors
    return errors


def _soonest(model: Model) -> dict[str, int]:
    """soonest_finish without the horizon's end: len(model.days) or more where it is past it."""
    works = {r: [d for d, ok in enumerate(model.available[r]) if ok] for r in model.resources}
    finish: dict[str, int] = {}
    for task in model.topological:
        ready = max([model.earliest(task)]
                    + [finish[p] + 1 for p in model.tasks[task].predecessors])
        options = [len(model.days)]
        for r in model.eligible[task]:
            n = bisect_left(works[r], ready) + model.length(task, r) - 1
            if n < len(works[r]):
                options.append(works[r][n])
        finish[task] = min(options)
    return finish


def _paths(model: Model) -> int:
    finish = soonest_finish(model)
    total = 0
    for task, last in finish.items():
        deadline = model.deadline(task)
        if deadline is not None and last > deadline:
            total += model.tasks[task].priority * (last - deadline)
    return total


@dataclass(frozen=True)
class _Pool:
    resources: tuple[str, ...]
    tasks: tuple[str, ...]                    # the tasks only these resources can do
    capacity: list[int]                       # [d]: the pool's hours on days 0 .. d-1


def _pools(model: Model) -> list[_Pool]:
    sets = {frozenset(model.eligible[t]) for t in model.order}
    sets |= {frozenset({r}) for r in model.resources} | {frozenset(model.resources)}
    pools = []
    for members in sorted(sets, key=lambda s: (len(s), sorted(s))):
        tasks = tuple(t for t in model.order if members.issuperset(model.eligible[t]))
        if not tasks:
            continue
        capacity = [0] * (len(model.days) + 1)
        for d in range(len(model.days)):
            capacity[d + 1] = capacity[d] + sum(model.resources[r].hours_per_day
                                                for r in members if model.available[r][d])
        pools.append(_Pool(tuple(sorted(members)), tasks, capacity))
    return pools


def _followers(model: Model) -> dict[str, dict[str, int]]:
    """Each task's followers, direct or not, with the fewest working days each ends after it
    (their fewest days at full rate along the longest chain); none for all once there are
    more than TAIL_WORK pairs."""
    direct: dict[str, list[str]] = {t: [] for t in model.order}
    for t in model.order:
        for p in model.tasks[t].predecessors:
            direct[p].append(t)
    after: dict[str, dict[str, int]] = {}
    pairs = 0
    for t in reversed(model.topological):
        distance: dict[str, int] = {}
        for f in direct[t]:
            length = min(model.length(f, r) for r in model.eligible[f])
            for u, k in [(f, 0), *after[f].items()]:
                distance[u] = max(distance.get(u, 0), k + length)
        pairs += len(distance)
        if pairs > TAIL_WORK:
            return {t: {} for t in model.order}
        after[t] = distance
    return after


def _energy(model: Model) -> int:
    released = releases(model)
    followers = _followers(model)
    alone: list[tuple[int, tuple[str, ...]]] = []   # counting only the pool's own tasks
    tails = 0                                       # counting followers elsewhere too
    for pool in _pools(model):
        due = sorted((d, t) for t in pool.tasks if (d := model.deadline(t)) is not None)
        if not due:
            continue
        starts = sorted({released[t] for _, t in due})
        # Every release day where the work allows; else an even sample of them (still sound).
        step = max(1, -(-len(starts) * len(due) // ENERGY_WORK))
        found = [_late_from(model, pool, due, released, followers, a) for a in starts[::step]]
        alone.append((max(own for own, _ in found), pool.resources))
        tails = max([tails] + [tail for _, tail in found])
    # Pools without a common resource have no common task: their own bounds add up.
    greedy, used = 0, set[str]()
    for worst, members in sorted(alone, key=lambda item: (-item[0], item[1])):
        if worst and used.isdisjoint(members):
            greedy += worst
            used.update(members)
    return max(greedy, tails, sum(worst for worst, members in alone if len(members) == 1))


def _late_from(model: Model, pool: _Pool, due: list[tuple[int, str]], released: dict[str, int],
               followers: dict[str, dict[str, int]], a: int) -> tuple[int, int]:
    """The most weighted lateness forced on the pool's tasks released on day `a` or later,
    over the deadlines D (`due` is sorted by deadline): counting only them, and counting the
    last one's followers too."""
    capacity, days = pool.capacity, len(model.days)
    busiest = max(capacity[d + 1] - capacity[d] for d in range(days))
    own = tails = hours = 0
    efforts: list[int] = []
    priorities: list[int] = []
    members: list[str] = []
    for deadline, t in due:
        if released[t] < a:
            continue
        members.append(t)
        hours += model.tasks[t].effort
        efforts.append(model.tasks[t].effort)
        priorities.append(model.tasks[t].priority)
        after = max(deadline + 1, a)           # the first day past D the set can work on
        excess = hours - (capacity[after] - capacity[a])
        if excess <= 0:
            continue
        # The last day by which the pool can have done the excess (full days past the horizon).
        end = bisect_left(capacity, capacity[after] + excess) - 1
        if end >= days:
            end = days - 1 + -(-(excess - capacity[days] + capacity[after]) // max(busiest, 1))
        held = fewest = 0
        for effort in sorted(efforts, reverse=True):
            held, fewest = held + effort, fewest + 1
            if held >= excess:
                break
        lightest = sorted(priorities)
        own = max(own, sum(lightest[:fewest]) + lightest[0] * (end - deadline - 1))
        if len(members) <= TAIL_SET:
            last = min(_tail(model, followers, u, end) for u in members)
            tails = max(tails, sum(lightest[:fewest - 1]) + last)
    return own, tails


def _tail(model: Model, followers: dict[str, dict[str, int]], task: str, end: int) -> int:
    """The weighted lateness of the task and its followers if it ends on day `end`."""
    total = 0
    for u, k in [(task, 0), *followers[task].items()]:
        deadline = model.deadline(u)
        if deadline is not None and end + k > deadline:
            total += model.tasks[u].priority * (end + k - deadline)
    return total
