"""What a re-plan promises to keep: the tasks a change left alone, and which of them moved.

A re-plan moves at most 5 % of the *untouched* tasks (issue 13). Going from problem `before`
(whose schedule is the previous plan) to problem `after`, a task is untouched when
- it is in both with the same skill, effort, earliest start, deadline, priority, daily cap and
  pin; a pin to where the previous plan already had it (work that started by the re-plan's
  day is pinned there) is no change;
- the resource the previous plan gave it still exists with the same skills and daily hours,
  and still works on every day the previous plan gave it (no new time off, holiday or
  weekend on those days; the other days may change);
- every task it waits for, however indirectly, is untouched by these rules too, and it waits
  for the same tasks: a predecessor that must move, because its fields changed or its
  resource lost a day it worked, moves the chain that follows it as a slip does.
A task is *moved* unless it has its previous resource and exactly its previous hours on every
day (`Model.kept`, hour for hour). Example: campaign c1 slips, c2 does not; c2's brief on ana
Mon 4 h + Tue 4 h, and ana takes Wednesday off: the brief is untouched; the re-plan that gives
it Mon 8 h has moved it (1 of 1 untouched, 100 %), whatever c1's tasks do.

    share = moved_share(before, after, previous, schedule)   # Share(moved=3, untouched=324)
"""
from collections.abc import Mapping
from dataclasses import dataclass, replace

from services.planner.engine.problem import Previous, Problem, Resource, Schedule, Task


@dataclass(frozen=True)
class Share:
    moved: int          # untouched tasks the re-plan moved
    untouched: int

    @property
    def percent(self) -> float:
        return 100 * self.moved / self.untouched if self.untouched else 0.0


def untouched(before: Problem, after: Problem, previous: Mapping[str, Previous]) -> set[str]:
    """The tasks of `after` that the change from `before` left alone (see the module text)."""
    old = {t.id: t for t in before.tasks}
    resources = ({r.id: r for r in before.resources}, {r.id: r for r in after.resources})
    same = {t.id for t in after.tasks
            if t.id in old and t.id in previous and _same(old[t.id], t, previous[t.id])
            and _still_available(after, resources, previous[t.id])}
    tasks = {t.id: t for t in after.tasks}
    # Walk each task's predecessors without recursion (a chain may be 5,000 long).
    chain_ok: dict[str, bool] = {}
    for task in tasks:
        stack = [task]
        while stack:
            t = stack[-1]
            if t in chain_ok:
                stack.pop()
                continue
            waiting = [p for p in tasks[t].predecessors if p in tasks and p not in chain_ok]
            if waiting:
                stack += waiting
                continue
            stack.pop()
            chain_ok[t] = t in same and all(p in tasks and chain_ok[p]
                                            for p in tasks[t].predecessors)
    return {t for t, ok in chain_ok.items() if ok}


def moved_share(before: Problem, after: Problem, previous: Mapping[str, Previous],
                schedule: Schedule) -> Share:
    """How many untouched tasks the re-plan `schedule` of `after` moved, of how many."""
    kept = untouched(before, after, previous)
    moved = sum(1 for a in schedule.assignments if a.task in kept
                and (a.resource, a.days) != (previous[a.task].resource, previous[a.task].days))
    return Share(moved, len(kept))


def _same(old: Task, new: Task, placed: Previous) -> bool:
    if new.start is not None and old.start is None and placed.days \
            and (new.resource, new.start) == (placed.resource, placed.days[0][0]):
        new = replace(new, resource=old.resource, start=None)   # started where it was
    return (old.skill, old.effort, old.earliest_start, old.deadline, old.priority,
            old.max_per_day, old.resource, old.start, old.predecessors) == \
        (new.skill, new.effort, new.earliest_start, new.deadline, new.priority,
         new.max_per_day, new.resource, new.start, new.predecessors)


def _still_available(after: Problem, resources: tuple[dict[str, Resource], dict[str, Resource]],
                     placed: Previous) -> bool:
    was, now = resources[0].get(placed.resource), resources[1].get(placed.resource)
    if was is None or now is None or (was.skills, was.hours_per_day) != \
            (now.skills, now.hours_per_day):
        return False
    return all(day.weekday() not in after.weekend and day not in after.holidays
               and day not in now.time_off and day not in now.holidays
               for day, _ in placed.days)
