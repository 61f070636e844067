"""Why a task is late, in words and data: the saturated resource and its days, and the chain
of predecessors that pushed it."""
from services.planner.engine.model import Model
from services.planner.engine.problem import Choice, Late


def explain_late(model: Model, choice: Choice, finish: dict[str, int],
                 users: dict[tuple[str, int], list[str]], load: dict[str, list[int]],
                 task_id: str, days_late: int) -> Late:
    """Explain a task that finishes `days_late` working days after its deadline.

    `finish` is each task's last working-day index; `users` the tasks on a (resource, day);
    `load` the hours reserved per resource and day."""
    resource, first = choice[task_id]
    task = model.tasks[task_id]
    # Only a task with a deadline can be late.
    assert task.deadline is not None, task_id
    ready = max([model.earliest(task_id)] + [finish[p] + 1 for p in task.predecessors])
    chain: list[str] = []
    current = task_id
    # Follow the predecessors each task started right after: they pushed it.
    while preds := model.tasks[current].predecessors:
        binding = max(preds, key=lambda p: (finish[p], p))
        if choice[current][1] != finish[binding] + 1:
            break
        chain.append(binding)
        current = binding
    rate = model.rate(task_id, resource)
    cap = model.resources[resource].hours_per_day
    saturated = [model.days[d] for d in range(ready, first)
                 if not model.available[resource][d] or load[resource][d] + rate > cap]
    blockers = sorted({u for d in range(ready, first) for u in users[resource, d] if u != task_id})
    parts = [f"{task_id} finishes {model.days[finish[task_id]]}, {days_late} working day(s) "
             f"after its deadline {task.deadline}"]
    if saturated:
        parts.append(f"{resource} was fully booked on {len(saturated)} day(s) from "
                     f"{saturated[0]} to {saturated[-1]}"
                     + (f" (by {', '.join(blockers[:5])}{' …' if len(blockers) > 5 else ''})"
                        if blockers else ""))
    if chain:
        parts.append("it waited for " + " ← ".join(
            f"{c} (done {model.days[finish[c]]})" for c in chain))
    if not saturated and not chain:
        parts.append(f"it needs {model.length(task_id, resource)} working day(s) from "
                     f"{model.days[ready]}, more than the time to its deadline")
    return Late(task_id, task.deadline, model.days[finish[task_id]], days_late,
                "; ".join(parts) + ".", resource, tuple(saturated), tuple(chain))
