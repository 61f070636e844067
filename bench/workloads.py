"""Generated marketing workloads for the scheduler: campaigns of 14 tasks over four teams."""
import random
from datetime import date, timedelta

from services.planner.engine import UNIT, Problem, Resource, Task

TEAMS = ("design", "tech", "media", "analytics")
UTILISATION = 0.5    # teams are sized so that the work fills about this share of their hours
# (name, skill, hours, predecessors, working days before launch it is due)
STEPS = (
    ("brief", "analytics", 4, (), 18), ("research", "analytics", 12, ("brief",), 15),
    ("concept", "design", 16, ("brief",), 14), ("copy", "design", 8, ("concept",), 11),
    ("key-visual", "design", 24, ("concept",), 10), ("variants", "design", 16, ("key-visual",), 7),
    ("landing", "tech", 24, ("copy", "key-visual"), 6), ("tracking", "tech", 8, ("landing",), 4),
    ("audiences", "media", 8, ("research",), 6), ("media-plan", "media", 12, ("audiences",), 5),
    ("ad-setup", "media", 12, ("variants", "media-plan"), 3), ("qa", "tech", 8, ("tracking", "ad-setup"), 1),
    ("dashboards", "analytics", 8, ("tracking",), 1), ("launch", "media", 4, ("qa",), 0),
)


def workload(campaigns: int, *, seed: int = 1, start: date = date(2026, 12, 1),
             horizon_days: int = 182, spread_days: int = 120, time_limit: float = 30.0) -> Problem:
    """`campaigns` campaigns launching over `spread_days`, 14 tasks each, four teams."""
    rng = random.Random(seed)
    tasks = []
    for c in range(campaigns):
        launch = start + timedelta(days=rng.randint(35, spread_days))
        priority = rng.randint(1, 5)
        for name, skill, hours, preds, before in STEPS:
            due = launch - timedelta(days=before * 7 // 5)
            # Work is due before its milestone and starts at most two weeks ahead of it.
            tasks.append(Task(id=f"c{c}-{name}", campaign=f"c{c}", skill=skill,
                              effort=int(hours * rng.uniform(0.75, 1.5)) * UNIT,
                              earliest_start=max(start, due - timedelta(days=14)),
                              deadline=due, priority=priority,
                              predecessors=tuple(f"c{c}-{p}" for p in preds),
                              max_per_day=8 * UNIT))
    # Each team has whole people (8 h a day) enough for its share of the work at UTILISATION.
    working_days = spread_days * 5 // 7
    resources = tuple(Resource(id=team, skills=frozenset({team}), hours_per_day=8 * UNIT * max(
        1, round(sum(t.effort for t in tasks if t.skill == team) / UNIT
                 / working_days / UTILISATION / 8)))
        for team in TEAMS)
    return Problem(start=start, horizon_days=horizon_days, resources=resources,
                   tasks=tuple(tasks), holidays=frozenset({date(2026, 12, 25), date(2027, 1, 1)}),
                   time_limit=time_limit)
