"""The scheduler: the priority-rule answer first, then CP-SAT (OR-Tools) to optimality or its
time limit. Runs only in worker processes: OR-Tools cannot share a process with `highspy`.

CP-SAT model, on the working-day axis: per task a start day, one resource among those with
its skill (an optional fixed-length interval per candidate), a cumulative per resource with
its hours per day (days off are blocked by fixed intervals), finish-to-start precedence, and
lateness against the deadline's working day. Objective, lexicographic by weights: priority ×
working days late, then (re-plans) tasks moved, then the last finish day.
"""
import time

from ortools.sat.python import cp_model

from services.planner.engine import priority_rule
from services.planner.engine.assembly import assemble
from services.planner.engine.model import Model
from services.planner.engine.problem import Problem, Schedule


def solve(problem: Problem) -> Schedule:
    """Schedule every task; see the module text for the model."""
    began = time.perf_counter()
    model = Model(problem)
    first = priority_rule.schedule(model)
    first_seconds = time.perf_counter() - began
    days = len(model.days)
    cp = cp_model.CpModel()
    start = {t: cp.new_int_var(model.earliest(t), days - 1, f"start_{t}") for t in model.order}
    finish = {t: cp.new_int_var(0, days - 1, f"finish_{t}") for t in model.order}
    use: dict[tuple[str, str], cp_model.IntVar] = {}
    per_resource: dict[str, tuple[list[cp_model.IntervalVar], list[int]]] = {
        r: ([], []) for r in model.resources}
    for t in model.order:
        for r in model.eligible[t]:
            use[t, r] = cp.new_bool_var(f"use_{t}_{r}")
            interval = cp.new_optional_fixed_size_interval_var(
                start[t], model.length(t, r), use[t, r], f"on_{t}_{r}")
            per_resource[r][0].append(interval)
            per_resource[r][1].append(model.rate(t, r))
        cp.add_exactly_one(use[t, r] for r in model.eligible[t])
        cp.add(finish[t] == start[t] - 1 + sum(use[t, r] * model.length(t, r)
                                                for r in model.eligible[t]))
        if (pinned := model.tasks[t].start) is not None:
            cp.add(start[t] == model.index[pinned])
        for p in model.tasks[t].predecessors:
            cp.add(start[t] >= finish[p] + 1)
    for r, (intervals, demands) in per_resource.items():
        cap = model.resources[r].hours_per_day
        for d, ok in enumerate(model.available[r]):
            if not ok:
                intervals.append(cp.new_fixed_size_interval_var(d, 1, f"off_{r}_{d}"))
                demands.append(cap)
        if intervals:
            cp.add_cumulative(intervals, demands, cap)

    lateness: list[cp_model.LinearExprT] = []
    for t in model.order:
        deadline = model.deadline(t)
        if deadline is not None:
            late = cp.new_int_var(0, days, f"late_{t}")
            cp.add(late >= finish[t] - deadline)
            lateness.append(model.tasks[t].priority * late)
    moved: list[cp_model.LinearExprT] = []
    for t, (resource, day) in problem.previous.items():
        if t in start and day in model.index and (t, resource) in use:
            keep = cp.new_bool_var(f"keep_{t}")
            cp.add(start[t] == model.index[day]).only_enforce_if(keep)
            cp.add_implication(keep, use[t, resource])
            moved.append(1 - keep)
    makespan = cp.new_int_var(0, days - 1, "makespan")
    cp.add_max_equality(makespan, list(finish.values()))
    move_weight = days + 1
    late_weight = move_weight * (len(model.order) + 1)
    cp.minimize(late_weight * cp_model.LinearExpr.sum(lateness)
                + move_weight * cp_model.LinearExpr.sum(moved) + makespan)

    for t, (resource, first_day) in first.items():
        cp.add_hint(start[t], first_day)
        for r in model.eligible[t]:
            cp.add_hint(use[t, r], r == resource)
    solver = cp_model.CpSolver()
    # Interleaved search is CP-SAT's deterministic parallel mode, and the deterministic time
    # limit (about half the wall limit here) normally stops it first: same input, same plan.
    # Three interleaved workers proved generated 336-task workloads fastest on these 2-core
    # machines (2: 1.1 s, 3: 1.0 s, 4: 5.6 s, 8: 17 s; bench/scheduler.py).
    solver.parameters.num_workers = 3
    solver.parameters.interleave_search = True
    solver.parameters.random_seed = 0
    solver.parameters.max_time_in_seconds = max(problem.time_limit - first_seconds, 0.1)
    solver.parameters.max_deterministic_time = max(problem.time_limit / 2, 0.05)
    found = _Progress(began)
    status = solver.solve(cp, found)
    seconds = time.perf_counter() - began
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return assemble(model, first, status="feasible", engine="priority rule", bound=None,
                        seconds=seconds, first_answer_seconds=first_seconds,
                        best_answer_seconds=first_seconds)
    choice = {t: (next(r for r in model.eligible[t] if solver.value(use[t, r])),
                  solver.value(start[t])) for t in model.order}
    optimal = status == cp_model.OPTIMAL
    return assemble(model, choice, status="optimal" if optimal else "feasible", engine="CP-SAT",
                    bound=int(solver.best_objective_bound) // late_weight,
                    seconds=seconds, first_answer_seconds=first_seconds,
                    best_answer_seconds=found.last or first_seconds)


class _Progress(cp_model.CpSolverSolutionCallback):
    """Notes when CP-SAT found its latest (best) solution."""

    def __init__(self, began: float):
        super().__init__()
        self.began = began
        self.last: float | None = None

    def on_solution_callback(self) -> None:
        self.last = time.perf_counter() - self.began
