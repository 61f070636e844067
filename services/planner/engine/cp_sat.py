"""The scheduler: the priority rules' best plan first, then CP-SAT (OR-Tools) on the contract's
problem to optimality or its time limit. Runs only in worker processes: OR-Tools cannot share
a process with `highspy`.

CP-SAT model, time-indexed on the working-day axis (hours in hundredths, so it is exact):
- per task, a choice of resource among those that can do it (`use`), and per (task, resource,
  working day of that resource in the task's window) the hundredths it works (`x`, at most its
  daily rate); they add up to the effort on the chosen resource;
- per (task, day) whether it works (`w`), linked to its first and last day: it works only on
  days in [first, last]; a pinned task works on its pinned day and not before;
- per (resource, day) its hours shared by its tasks; finish-to-start precedence on days;
- lateness against the deadline's working day. Objective, lexicographic by weights: priority
  × working days late, then (re-plans) tasks moved, then the last working day.
The model stays small by windows that lose no optimal schedule: a task starts no sooner than
its predecessors can finish (`bounds.soonest_finish`), and may be at most (the first plan's
weighted lateness ÷ its priority) days late, which also bounds its predecessors.
"""
import time
from collections import defaultdict

from ortools.sat.python import cp_model

from services.planner.engine import bounds, priority_rule
from services.planner.engine.assembly import assemble
from services.planner.engine.model import Model
from services.planner.engine.problem import Plan, Problem, Schedule, Work

# (task, resource, day) hour variables past which building and searching the model would not
# pay within any time limit the API allows: the priority rules answer alone.
MAX_CELLS = 150_000


def solve(problem: Problem) -> Schedule:
    """Schedule every task; see the module text for the model."""
    began = time.perf_counter()
    model = Model(problem)
    first = priority_rule.schedule(model)
    first_seconds = time.perf_counter() - began
    floor = bounds.lower_bound(model)
    windows = _windows(model, priority_rule.measure(model, first)[0])
    cells = sum(hi - lo + 1 for lo, hi in windows.values())
    if cells * max(len(r) for r in model.eligible.values()) > MAX_CELLS:
        return assemble(model, first, status="feasible", engine="priority rule", bound=floor,
                        seconds=time.perf_counter() - began, first_answer_seconds=first_seconds,
                        best_answer_seconds=first_seconds)
    built = _Built(model, windows)
    built.hint(first)
    solver = cp_model.CpSolver()
    # Interleaved search is CP-SAT's deterministic parallel mode, and the deterministic time
    # limit (about half the wall limit here) normally stops it first: same input, same plan.
    solver.parameters.num_workers = 3
    solver.parameters.interleave_search = True
    solver.parameters.random_seed = 0
    solver.parameters.max_time_in_seconds = max(problem.time_limit - (time.perf_counter() - began),
                                                0.1)
    solver.parameters.max_deterministic_time = max(problem.time_limit / 2, 0.05)
    found = _Progress(began)
    status = solver.solve(built.cp, found)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return assemble(model, first, status="feasible", engine="priority rule", bound=floor,
                        seconds=time.perf_counter() - began, first_answer_seconds=first_seconds,
                        best_answer_seconds=first_seconds)
    plan = built.read(solver)
    bound = max(floor, int(solver.best_objective_bound) // built.late_weight)
    if priority_rule.measure(model, first) < priority_rule.measure(model, plan):
        return assemble(model, first, status="feasible", engine="priority rule", bound=bound,
                        seconds=time.perf_counter() - began, first_answer_seconds=first_seconds,
                        best_answer_seconds=first_seconds)
    return assemble(model, plan, status="optimal" if status == cp_model.OPTIMAL else "feasible",
                    engine="CP-SAT", bound=bound, seconds=time.perf_counter() - began,
                    first_answer_seconds=first_seconds,
                    best_answer_seconds=found.last or first_seconds)


def _windows(model: Model, most_late: int) -> dict[str, tuple[int, int]]:
    """(first day, last day) each task may work on in a schedule at most `most_late` late."""
    soonest = bounds.soonest_finish(model)
    followers: dict[str, list[str]] = defaultdict(list)
    for t in model.order:
        for p in model.tasks[t].predecessors:
            followers[p].append(t)
    latest: dict[str, int] = {}
    for t in reversed(model.topological):
        deadline = model.deadline(t)
        hi = len(model.days) - 1
        if deadline is not None:
            hi = min(hi, deadline + most_late // model.tasks[t].priority)
        for f in followers[t]:
            hi = min(hi, latest[f] - min(model.length(f, r) for r in model.eligible[f]))
        latest[t] = hi
    return {t: (max([model.earliest(t)] + [soonest[p] + 1 for p in model.tasks[t].predecessors]),
                latest[t]) for t in model.order}


class _Built:
    """The CP-SAT model of a checked problem, with its variables by name."""

    def __init__(self, model: Model, windows: dict[str, tuple[int, int]]):
        self.model = model
        cp = self.cp = cp_model.CpModel()
        days = len(model.days)
        self.first: dict[str, cp_model.IntVar] = {}
        self.last: dict[str, cp_model.IntVar] = {}
        self.use: dict[tuple[str, str], cp_model.IntVar] = {}
        self.x: dict[tuple[str, str, int], cp_model.IntVar] = {}
        self.cells: dict[str, list[tuple[str, int, cp_model.IntVar]]] = defaultdict(list)
        self.days_of: dict[str, list[tuple[int, cp_model.IntVar]]] = defaultdict(list)
        self.late: dict[str, cp_model.IntVar] = {}
        self.keep: dict[str, cp_model.IntVar] = {}
        on_day: dict[tuple[str, int], list[tuple[cp_model.IntVar, int]]] = defaultdict(list)
        for t in model.topological:   # predecessors' variables exist before their followers
            lo, hi = windows[t]
            eligible = model.eligible[t]
            shortest = min(model.length(t, r) for r in eligible)
            first = self.first[t] = cp.new_int_var(lo, hi, f"first_{t}")
            last = self.last[t] = cp.new_int_var(lo, hi, f"last_{t}")
            cp.add(last >= first + shortest - 1)
            if len(eligible) > 1:
                for r in eligible:
                    self.use[t, r] = cp.new_bool_var(f"use_{t}_{r}")
                cp.add_exactly_one(self.use[t, r] for r in eligible)
            per_resource: dict[str, list[cp_model.IntVar]] = defaultdict(list)
            worked: list[cp_model.IntVar] = []
            for d in range(lo, hi + 1):
                here = [r for r in eligible if model.available[r][d]]
                if not here:
                    continue
                w = cp.new_bool_var(f"w_{t}_{d}")
                self.days_of[t].append((d, w))
                worked.append(w)
                hours = []
                for r in here:
                    rate = model.rate(t, r)
                    x = self.x[t, r, d] = cp.new_int_var(0, rate, f"x_{t}_{r}_{d}")
                    self.cells[t].append((r, d, x))
                    per_resource[r].append(x)
                    on_day[r, d].append((x, rate))
                    hours.append(x)
                # Hours only on a day it works, and it works only inside [first, last].
                cp.add(sum(hours) <= max(model.rate(t, r) for r in here) * w)
                cp.add(last >= d * w)
                cp.add(first + (hi - d) * w <= hi)
            cp.add(sum(worked) >= shortest)
            effort = model.tasks[t].effort
            for r in eligible:
                total = cp_model.LinearExpr.sum(per_resource[r])
                cp.add(total == (effort * self.use[t, r] if (t, r) in self.use else effort))
            if (pinned := model.tasks[t].start) is not None:
                day = model.index[pinned]
                cp.add(first == day)
                cp.add(sum(self.x[t, r, day] for r in eligible if (t, r, day) in self.x) >= 1)
            for p in model.tasks[t].predecessors:
                cp.add(first >= self.last[p] + 1)
            deadline = model.deadline(t)
            if deadline is not None and hi > deadline:
                late = self.late[t] = cp.new_int_var(0, hi - deadline, f"late_{t}")
                cp.add(late >= last - deadline)
        for (r, _), cell in on_day.items():
            cap = model.resources[r].hours_per_day
            if sum(rate for _, rate in cell) > cap:
                cp.add(sum(x for x, _ in cell) <= cap)
        for t, (r, previous) in model.problem.previous.items():
            at = model.index.get(previous)
            if at is not None and (t, r, at) in self.x:
                keep = self.keep[t] = cp.new_bool_var(f"keep_{t}")
                cp.add(self.first[t] == at).only_enforce_if(keep)
                cp.add(self.x[t, r, at] >= 1).only_enforce_if(keep)
        self.makespan = cp.new_int_var(0, days - 1, "makespan")
        for last in self.last.values():
            cp.add(self.makespan >= last)
        move_weight = days + 1
        self.late_weight = move_weight * (len(model.order) + 1)
        cp.minimize(
            self.late_weight * cp_model.LinearExpr.weighted_sum(
                list(self.late.values()), [model.tasks[t].priority for t in self.late])
            + move_weight * cp_model.LinearExpr.sum([1 - k for k in self.keep.values()])
            + self.makespan)

    def hint(self, plan: Plan) -> None:
        """Start the search from a plan (every variable hinted)."""
        cp, model = self.cp, self.model
        for t, work in plan.items():
            hours = dict(work.hours)
            cp.add_hint(self.first[t], work.first)
            cp.add_hint(self.last[t], work.last)
            for r in model.eligible[t]:
                if (t, r) in self.use:
                    cp.add_hint(self.use[t, r], r == work.resource)
            for r, d, x in self.cells[t]:
                cp.add_hint(x, hours.get(d, 0) if r == work.resource else 0)
            for d, w in self.days_of[t]:
                cp.add_hint(w, d in hours)
            if t in self.late:
                deadline = model.deadline(t)
                assert deadline is not None
                cp.add_hint(self.late[t], max(0, work.last - deadline))
            if t in self.keep:
                resource, day = model.problem.previous[t]
                cp.add_hint(self.keep[t], work.resource == resource
                            and model.days[work.first] == day)
        cp.add_hint(self.makespan, max(w.last for w in plan.values()))

    def read(self, solver: cp_model.CpSolver) -> Plan:
        """The plan of CP-SAT's best solution."""
        hours: dict[str, list[tuple[int, int]]] = defaultdict(list)
        resource: dict[str, str] = {}
        for (t, r, d), x in self.x.items():
            if (h := solver.value(x)) > 0:
                hours[t].append((d, h))
                resource[t] = r
        return {t: Work(resource[t], tuple(sorted(hours[t]))) for t in self.model.order}


class _Progress(cp_model.CpSolverSolutionCallback):
    """Notes when CP-SAT found its latest (best) solution."""

    def __init__(self, began: float):
        super().__init__()
        self.began = began
        self.last: float | None = None

    def on_solution_callback(self) -> None:
        self.last = time.perf_counter() - self.began
