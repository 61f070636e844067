"""Why a task is late, in words and data: the predecessors that held it back, the days its
resource was full with other work, its own days off (time off), its market's holidays and the
holidays of everyone in between."""
from datetime import date

from services.planner.engine.model import Model
from services.planner.engine.problem import UNIT, Late, Plan


def explain_late(model: Model, plan: Plan, load: dict[str, list[int]], task_id: str,
                 days_late: int) -> Late:
    """Explain a task that finishes `days_late` working days after its deadline.

    `load` is the hours worked per resource and working-day index."""
    work, task = plan[task_id], model.tasks[task_id]
    # Only a task with a deadline can be late.
    assert task.deadline is not None, task_id
    resource = work.resource
    chain = _chain(model, plan, task_id)
    ready = _ready(model, plan, task_id)
    rate, cap = model.rate(task_id, resource), model.resources[resource].hours_per_day
    own = dict(work.hours)
    days = range(ready, work.last + 1)
    # A day the resource is off is its market's holiday or its own time off (holiday first:
    # it would be off that day whatever it had asked for).
    off = [model.days[d] for d in days if not model.available[resource][d]]
    own_holidays = [day for day in off if day in model.resources[resource].holidays]
    time_off = [day for day in off if day not in model.resources[resource].holidays]
    # Full: the resource had less than the task's rate left for it, because of other work.
    full = [d for d in days if model.available[resource][d] and own.get(d, 0) < rate
            and load[resource][d] - own.get(d, 0) > cap - rate]
    booked = set(full)
    blockers = sorted({u for u, other in plan.items() if u != task_id and other.resource == resource
                       and any(d in booked for d, _ in other.hours)})
    finish = model.days[work.last]
    holidays = sorted(h for h in model.problem.holidays if model.days[ready] <= h <= finish)
    parts = [f"{task_id} finishes {finish}, {days_late} working day(s) after its deadline "
             f"{task.deadline}"]
    if chain:
        parts.append("it waited for " + " ← ".join(
            f"{c} (done {model.days[plan[c].last]})" for c in chain))
    if full:
        parts.append(f"{resource} was fully booked on {len(full)} day(s) from "
                     f"{model.days[full[0]]} to {model.days[full[-1]]}"
                     + (f" (by {', '.join(blockers[:5])}{' …' if len(blockers) > 5 else ''})"
                        if blockers else ""))
    if time_off:
        parts.append(f"{resource} was on time off on {_dates(time_off)}")
    if own_holidays:
        parts.append(f"{_dates(own_holidays)} {'is a holiday' if len(own_holidays) == 1 else 'are holidays'} "
                     f"for {resource}")
    if holidays:
        parts.append(f"{_dates(holidays)} {'is a holiday' if len(holidays) == 1 else 'are holidays'}")
    parts.append(f"it needs {model.length(task_id, resource)} working day(s) at up to "
                 f"{rate / UNIT:g} h a day from {model.days[ready]}")
    return Late(task_id, task.deadline, finish, days_late, "; ".join(parts) + ".", resource,
                tuple(model.days[d] for d in full), tuple(chain))


def _ready(model: Model, plan: Plan, task_id: str) -> int:
    """The first day the task could work: its earliest start, after its predecessors."""
    return max([model.earliest(task_id)]
               + [plan[p].last + 1 for p in model.tasks[task_id].predecessors])


def _chain(model: Model, plan: Plan, task_id: str) -> list[str]:
    """The predecessors that held the task back, nearest first: each one's finish set the day
    the next could start, later than that task's own earliest start."""
    chain: list[str] = []
    current = task_id
    while preds := model.tasks[current].predecessors:
        binding = max(preds, key=lambda p: (plan[p].last, p))
        if plan[binding].last + 1 <= model.earliest(current):
            break
        chain.append(binding)
        current = binding
    return chain


def _dates(days: list[date]) -> str:
    shown = ", ".join(str(d) for d in days[:5])
    return shown + (f" and {len(days) - 5} more" if len(days) > 5 else "")
