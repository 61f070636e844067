"""A re-plan's neighbourhood: the tasks a change can reach, so that a first search may keep
every other task exactly where the previous plan had it and stay small.

The changed tasks are those a mended previous plan (`priority_rule.repair`) does not keep. The
neighbourhood holds them and every task that is not started and worked, in that plan, on a
resource one of them may use on a day it may work (its window, as the model's windows give
it); `rings` such steps outwards. Keeping the rest where it was loses schedules, so a search over
the neighbourhood proves nothing about the whole problem: its plan is a hint and an incumbent
for the search of the whole, never called `optimal` on its own.

    reach(model, repaired, windows)   # {"c10-brief", …, "c11-landing"}: the rest stays
"""
from services.planner.engine.model import Model
from services.planner.engine.problem import Plan


def reach(model: Model, plan: Plan, windows: dict[str, tuple[int, int]],
          rings: int = 1) -> set[str]:
    """The tasks free to move in the first search of a re-plan (see the module text)."""
    frontier = {t for t in model.order if t not in model.previous
                or not model.kept(t, plan[t])}
    free = set(frontier)
    for _ in range(rings):
        # Per resource, the days some frontier task may work on it (a difference array).
        marks = {r: [0] * (len(model.days) + 1) for r in model.resources}
        for t in frontier:
            lo, hi = windows[t]
            for r in model.eligible[t]:
                marks[r][lo] += 1
                marks[r][hi + 1] -= 1
        covered: dict[str, list[bool]] = {}
        for r, steps in marks.items():
            running, days = 0, []
            for step in steps[:-1]:
                running += step
                days.append(running > 0)
            covered[r] = days
        frontier = {t for t in model.order if t not in free and model.tasks[t].start is None
                    and any(covered[plan[t].resource][d] for d, _ in plan[t].hours)}
        free |= frontier
    return free
