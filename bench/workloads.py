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


# Realistic campaigns of 12 tasks over copy, design, tech, media and data people and teams:
# (name, skill, hours, predecessors).
CAMPAIGN = (
    ("brief", "copy", 4, ()), ("research", "data", 10, ("brief",)),
    ("concept", "design", 14, ("brief",)), ("copy", "copy", 10, ("concept",)),
    ("key-visual", "design", 20, ("concept",)), ("variants", "design", 12, ("key-visual",)),
    ("landing", "tech", 18, ("copy", "key-visual")), ("tracking", "tech", 6, ("landing",)),
    ("audiences", "media", 8, ("research",)), ("ad-setup", "media", 10, ("variants", "audiences")),
    ("qa", "tech", 6, ("tracking", "ad-setup")), ("launch", "media", 3, ("qa",)),
)
# (id, skills, hours per day, days off): people (8 h) and teams; "studio" covers copy and design.
PEOPLE = (("ana", ("copy",), 8, 3), ("studio", ("copy", "design"), 8, 2),
          ("design-team", ("design",), 16, 0), ("dev", ("tech",), 16, 2),
          ("mia", ("media",), 8, 3), ("dan", ("data", "media"), 8, 2))


def planted(campaigns: int, *, regime: str = "steady", seed: int = 1,
            start: date = date(2027, 3, 1), slack: tuple[int, int] = (0, 1),
            weekend: frozenset[int] = frozenset({5, 6}), time_limit: float = 10.0) -> Problem:
    """Campaigns whose deadlines sit `slack` working days after a schedule planted first, so
    that with slack ≥ 0 a weighted lateness of 0 is provably attainable.

    `regime` "steady" spreads campaign starts evenly; "bursty" starts them in bursts of up to
    five, a few days apart, with quiet weeks between (campaign ids `b<burst>-c<n>`). Work
    started in the first week is pinned (resource and first day); people have days off;
    holidays and the weekend (e.g. Fri/Sat: {4, 5}) are skipped."""
    rng = random.Random(seed)
    horizon_days = 60 + campaigns * 8
    calendar = [start + timedelta(days=i) for i in range(horizon_days)]
    holidays = frozenset(d for d in calendar[10::37] if d.weekday() not in weekend)
    days = [d for d in calendar if d.weekday() not in weekend and d not in holidays]
    off = {name: frozenset(rng.sample(days[: len(days) * 2 // 3], n)) for name, _, _, n in PEOPLE}
    free = {name: [0 if d in off[name] else cap * UNIT for d in days] for name, _, cap, _ in PEOPLE}
    # Dense: a new campaign every ~2 working days keeps the people about 80 % busy.
    span = min(len(days) * 2 // 3, campaigns * 2)
    if regime == "bursty":
        bursts = -(-campaigns // 5)
        opens = [b * span // bursts + rng.randint(0, 3)
                 for b in range(bursts) for _ in range(5)][:campaigns]
        names = [f"b{i // 5}-c{i}" for i in range(campaigns)]
    else:
        opens = [c * span // campaigns for c in range(campaigns)]
        names = [f"c{c}" for c in range(campaigns)]
    tasks: list[Task] = []
    for name, opening in sorted(zip(names, opens, strict=True), key=lambda x: x[1]):
        priority = rng.randint(1, 5)
        last: dict[str, int] = {}
        for step, skill, hours, preds in CAMPAIGN:
            effort = int(hours * rng.uniform(0.75, 1.5) * UNIT)
            cap = rng.choice((None, 4 * UNIT, 6 * UNIT, 8 * UNIT))
            ready = max([opening] + [last[p] + 1 for p in preds])
            # The one with the most free hours in the next two weeks (ties at random).
            who = max((sum(free[p][ready:ready + 10]), rng.random(), p)
                      for p, skills, _, _ in PEOPLE if skill in skills)[2]
            rate = min({p: c for p, _, c, _ in PEOPLE}[who] * UNIT, cap or effort, effort)
            day, left, worked = ready + rng.randint(0, 1), effort, []
            while left:
                if day >= len(days):
                    raise ValueError("planted work runs past the horizon; fewer campaigns")
                # Uneven days, as people split their time: a full day, half of one, or none.
                h = min(rng.choice((rate, rate, rate // 2, 0)), free[who][day], left)
                if h > 0:
                    free[who][day] -= h
                    left -= h
                    worked.append(day)
                day += 1
            last[step] = worked[-1]
            due = min(worked[-1] + rng.randint(*slack), len(days) - 1)
            pinned = worked[0] < 5
            tasks.append(Task(
                id=f"{name}-{step}", campaign=name, skill=skill, effort=effort,
                earliest_start=days[max(opening, worked[0] - rng.randint(0, 5))],
                deadline=days[max(due, 0)], priority=priority,
                predecessors=tuple(f"{name}-{p}" for p in preds), max_per_day=cap,
                resource=who if pinned else None, start=days[worked[0]] if pinned else None))
    resources = tuple(Resource(name, frozenset(skills), cap * UNIT, off[name])
                      for name, skills, cap, _ in PEOPLE)
    return Problem(start=start, horizon_days=horizon_days, resources=resources, tasks=tuple(tasks),
                   weekend=weekend, holidays=holidays, time_limit=time_limit)
