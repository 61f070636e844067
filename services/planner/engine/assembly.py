"""Turn an engine's plan (resource and hours per working day of each task) into a schedule:
every rule is checked again, because an engine bug must never reach a user as a plan; late
tasks are explained and each resource's weekly utilisation is counted."""
from collections import defaultdict

from services.planner.engine.explanations import explain_late
from services.planner.engine.model import Model
from services.planner.engine.priority_rule import moved
from services.planner.engine.problem import (
    Assignment,
    Late,
    Plan,
    Schedule,
    Status,
    Utilisation,
)


def assemble(model: Model, plan: Plan, *, status: Status, engine: str, bound: int | None,
             seconds: float, first_answer_seconds: float, best_answer_seconds: float) -> Schedule:
    """Turn the work of every task into a schedule, checking every rule.

    Raises RuntimeError if a rule is broken: that is an engine bug, never the user's."""
    days = model.days
    _verify(model, plan)
    worked: dict[str, list[int]] = {r: [0] * len(days) for r in model.resources}
    for work in plan.values():
        for d, h in work.hours:
            worked[work.resource][d] += h
    _verify_capacity(model, worked)
    assignments = tuple(Assignment(t, plan[t].resource, days[plan[t].first], days[plan[t].last],
                                   tuple((days[d], h) for d, h in plan[t].hours))
                        for t in model.order)
    late: list[Late] = []
    weighted = 0
    for task_id in model.order:
        deadline, last = model.deadline(task_id), plan[task_id].last
        if deadline is None or last <= deadline:
            continue
        days_late = last - deadline
        weighted += days_late * model.tasks[task_id].priority
        late.append(explain_late(model, plan, worked, task_id, days_late))
    return Schedule(
        status=status, weighted_lateness=weighted,
        makespan=days[max(w.last for w in plan.values())] if plan else None, bound=bound,
        assignments=assignments, late=tuple(late), utilisation=_utilisation(model, worked),
        engine=engine, seconds=seconds, first_answer_seconds=first_answer_seconds,
        best_answer_seconds=best_answer_seconds,
        moved=moved(model, plan) if model.problem.previous else None)


def _verify(model: Model, plan: Plan) -> None:
    """Every rule of a task holds: an engine bug must never reach a user as a plan."""
    broken: list[str] = []
    if set(plan) != set(model.tasks):
        broken.append("tasks missing or unknown: "
                      + ", ".join(sorted(set(plan) ^ set(model.tasks))[:5]))
    for task_id, work in plan.items():
        task = model.tasks.get(task_id)
        if task is None:
            continue
        r = work.resource
        if r not in model.eligible[task_id]:
            broken.append(f"{task_id} on {r}, which cannot do it")
            continue
        rate = model.rate(task_id, r)
        day_list = [d for d, _ in work.hours]
        if not work.hours or day_list != sorted(set(day_list)) \
                or sum(h for _, h in work.hours) != task.effort:
            broken.append(f"{task_id} does not get exactly its effort, day by day")
            continue
        if work.first < model.earliest(task_id) or work.last >= len(model.days):
            broken.append(f"{task_id} works outside its window")
        broken += [f"{task_id} gets {h} on day {d}" for d, h in work.hours
                   if not 0 < h <= rate or not model.available[r][d]]
        broken += [f"{task_id} starts before {p} ends" for p in task.predecessors
                   if p in plan and plan[p].hours and work.first <= plan[p].last]
        if task.start is not None and model.days[work.first] != task.start:
            broken.append(f"{task_id} moved from its pinned start")
    if broken:
        raise RuntimeError("schedule breaks its rules: " + "; ".join(broken[:10]))


def _verify_capacity(model: Model, worked: dict[str, list[int]]) -> None:
    over = [f"{r} over capacity on {model.days[d]}" for r, per_day in worked.items()
            for d, hours in enumerate(per_day) if hours > model.resources[r].hours_per_day]
    if over:
        raise RuntimeError("schedule breaks its rules: " + "; ".join(over[:10]))


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
