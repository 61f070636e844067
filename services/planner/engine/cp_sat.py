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
  × working days late, then (re-plans) tasks not kept (`Model.kept`), then the last working day.
The model stays small by windows that lose no optimal schedule: a task starts no sooner than
its predecessors can finish (`bounds.soonest_finish`), and may be at most (the first plan's
weighted lateness ÷ its priority) days late, which also bounds its predecessors.

The search of the whole runs one worker first (PROOF_DETERMINISTIC_SECONDS: it proves small
problems far sooner), then three interleaved workers from its answer.

A re-plan searches first over the change's neighbourhood (`neighbourhood.reach`), every other
task fixed where the mended previous plan (`priority_rule.repair`) keeps it, for
NEIGHBOURHOOD_SHARE of the time: `put_back` (small exact searches that put each moved task
back with the work around its previous days) until it takes nothing more, then core-based
search and LNS over the whole neighbourhood, interleaved so that it stays deterministic; the
whole model then starts from its answer (where the neighbourhood stays later than the rules'
best plan, it starts from that plan instead). Both searches' answers go
through `priority_rule.keep_more` (a stopped search can leave a task moved that fits back). The
neighbourhood's bound holds only with the rest fixed, so it is never reported: `optimal` and
`bound` come from the search of the whole (or the lower bounds) alone.

Time: `problem.time_limit` bounds the whole request, so the engine's own clock ends
AFTER_SECONDS before it, for what follows the engine. CP-SAT gets what is left after the rules
and the model's build, less a reserve for reading and checking its answer (twice the measured
time to check the rules' plan, plus RESERVE_SECONDS); the engine answers within its clock plus
MARGIN_SECONDS. With too little left, the rules' plan is the answer (`feasible`, its engine
says why). Where no rule places every task, CP-SAT looks for any schedule: a 422 says that the
work does not fit only when the bounds or the search prove it.
"""
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from ortools.sat.python import cp_model

from services.planner.engine import bounds, neighbourhood, priority_rule
from services.planner.engine.assembly import assemble
from services.planner.engine.model import Model, Placed
from services.planner.engine.problem import Invalid, Plan, Problem, Progress, Schedule, Work

# (task, resource, day) hour variables past which building and searching the model would not
# pay within any time limit the API allows: the priority rules answer alone.
MAX_CELLS = 150_000
RESERVE_SECONDS = 0.3     # beyond twice the measured check: CP-SAT stops up to ~0.3 s late
# Past the time limit, the answer comes within this: a priority rule started just before the
# limit, or CP-SAT stopping its workers, takes up to ~0.3 s on 5,000 tasks. (The first answer
# itself needs ~0.6 s on 5,000 tasks on an idle core: a smaller limit is answered then.)
MARGIN_SECONDS = 0.5
# The engine's clock ends this long before the time limit (at most AFTER_SHARE of a short
# one): the worker's return, the service's check and write and the gateway follow it. The
# trial of issue 13 (load ~12 on 2 cores) answered 10 s re-plans in 10.03-11.22 s through
# the gateway, 0.13-1.08 s after the engine's own 9.3-10.2 s, and a 60 s solve in 60.79 s
# (engine 60.63 s): the limit + 0.5 s that the README promises needs the engine to end early.
AFTER_SECONDS = 0.5
AFTER_SHARE = 0.1
MIN_SEARCH_SECONDS = 0.05  # less than this left after the build: the search is not started
BUILD_SHARE = 0.8          # of building the model and hinting it, measured on 5,000 tasks
REPORT_SECONDS = 1.0       # progress is reported at least this often
STOP_CHECK_SECONDS = 0.1   # how soon a stop from outside is seen
# A re-plan's neighbourhood search takes at most this share of the time left, and is skipped
# where the neighbourhood holds more than NEIGHBOURHOOD_MOST of the tasks (it would be no
# smaller than the whole). On 336-task re-plans the whole model found nothing in the 1.4-1.9 s
# that 0.7 left it (measured on a loaded machine); a neighbourhood that proves its own optimum
# ends early and leaves the rest to the whole, so small re-plans are still proven.
NEIGHBOURHOOD_SHARE = 0.85
NEIGHBOURHOOD_MOST = 0.6
MOST_RINGS = 2
NEIGHBOURHOOD = "CP-SAT (re-plan neighbourhood)"
# `put_back`: the days either side of a moved task's previous hours whose work it re-places
# with it (measured on bursty re-plans of 336 tasks, one slip: 3 days left 13 untouched tasks
# moved, 5 and 8 days 11), and the deterministic time of each small search (one worker; on
# those re-plans every one was proven optimal, in ~0.05 s of CPU: this only caps a hard one).
PUT_BACK_DAYS = 5
# The one-worker search that comes before the interleaved one (see `_search`), deterministic
# seconds: one worker proved the trial's 8-task solves in 0.05-0.6 s of CPU.
PROOF_DETERMINISTIC_SECONDS = 1.0
PUT_BACK_DETERMINISTIC_SECONDS = 0.3

OnProgress = Callable[[Progress], None]
Stop = Callable[[], bool]


def solve(problem: Problem, *, progress: OnProgress | None = None,
          stop: Stop | None = None) -> Schedule:
    """Schedule every task; see the module text for the model and the time limit.

    `progress` is called (from another thread, never two calls at once) with the search's
    state on each better answer, each better bound and at least once a second. Once `stop()`
    is true the search ends within a tenth of a second or so and the best answer found is
    returned (`feasible`)."""
    watch = _Watch(problem.time_limit, progress, stop)
    try:
        return _solve(problem, watch)
    finally:
        watch.close()


def _solve(problem: Problem, watch: "_Watch") -> Schedule:
    model = Model(problem)
    try:
        plans = priority_rule.rules(model, stop=watch.out_of_time)
        first: Plan | None = priority_rule.best(model, list(plans.values()))
    except Invalid:
        plans, first = {}, None
    first_seconds = watch.elapsed()
    if first is not None and watch.out_of_time():
        # Only the cheap bound: every step now makes the answer later than asked.
        return assemble(model, first, status="feasible",
                        engine=watch.why_not("priority rule", "the search"),
                        bound=bounds.lower_bound(model, energy=False), seconds=watch.elapsed(),
                        first_answer_seconds=first_seconds, best_answer_seconds=first_seconds)
    if first is None:
        return _any_schedule(model, watch)
    floor = bounds.lower_bound(model)
    lateness = priority_rule.measure(model, first)[0]
    watch.found(lateness, floor)
    checked = time.perf_counter()
    fallback = assemble(model, first, status="feasible", engine="priority rule", bound=floor,
                        seconds=0, first_answer_seconds=first_seconds,
                        best_answer_seconds=first_seconds)
    reserve = 2 * (time.perf_counter() - checked) + RESERVE_SECONDS

    def rules_answer(engine: str, bound: int = floor) -> Schedule:
        return replace(fallback, engine=engine, bound=bound, seconds=watch.elapsed())

    if watch.out_of_time():
        return rules_answer(watch.why_not("priority rule", "the search"))
    windows = _windows(model, lateness)
    cells = sum(hi - lo + 1 for lo, hi in windows.values())
    if cells * max(len(r) for r in model.eligible.values()) > MAX_CELLS:
        return rules_answer("priority rule (too large to search)")
    # A re-plan first searches the neighbourhood of what changed, the rest kept as it was: a
    # small model that finds the plan moving few tasks, which the search of the whole then
    # starts from (and alone can prove optimal).
    best, engine = first, "priority rule"
    local: Plan | None = None
    if (repaired := plans.get(priority_rule.REPAIRED)) is not None:
        local = _neighbourhood(model, windows, first, repaired, watch, reserve)
    elif model.previous:
        # No mended plan: the change leaves the previous plan no room (the only person with
        # a skill a week off in a busy stretch). `put_back` from the rules' best still pays:
        # on the bench's such re-plan (336 tasks) it took 56 late, 44 moved to 51 and 36,
        # where the search of the whole found nothing better than the rules in 8 s.
        ends = time.perf_counter() + NEIGHBOURHOOD_SHARE * (watch.left() - reserve)
        local = put_back(model, priority_rule.keep_more(model, first), windows, ends=ends,
                         watch=watch)
    if local is not None and \
            priority_rule.measure(model, local) < priority_rule.measure(model, first):
        best, engine = local, NEIGHBOURHOOD
        # Windows that keep every schedule at least as good (see `_windows`): smaller.
        if (most_late := priority_rule.measure(model, local)[0]) < lateness:
            windows = _windows(model, most_late)

    def best_answer(engine: str, bound: int = floor) -> Schedule:
        if best is first:
            return rules_answer(engine, bound)
        return assemble(model, best, status="feasible", engine=engine, bound=bound,
                        seconds=watch.elapsed(), first_answer_seconds=first_seconds,
                        best_answer_seconds=watch.best_seconds or first_seconds)

    step = "the search" if best is first else "the search of all tasks"
    try:
        give_up = watch.builder(reserve + MIN_SEARCH_SECONDS)
        built = _Built(model, windows, give_up)
        built.hint(best, give_up)
    except _OutOfTime:
        return best_answer(watch.why_not(engine, step))
    if watch.left() - reserve < MIN_SEARCH_SECONDS or watch.stopped():
        return best_answer(watch.why_not(engine, step))
    solver, status = _search(built, watch, watch.left() - reserve)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return best_answer(engine)
    plan = priority_rule.keep_more(model, built.read(solver))
    bound = max(floor, int(solver.best_objective_bound) // built.late_weight)
    if priority_rule.measure(model, best) < priority_rule.measure(model, plan):
        return best_answer(engine, bound)
    return assemble(model, plan, status="optimal" if status == cp_model.OPTIMAL else "feasible",
                    engine="CP-SAT (stopped)" if watch.stopped() else "CP-SAT", bound=bound,
                    seconds=watch.elapsed(), first_answer_seconds=first_seconds,
                    best_answer_seconds=watch.best_seconds or first_seconds)


def _any_schedule(model: Model, watch: "_Watch") -> Schedule:
    """No rule placed every task: a schedule from CP-SAT, or a 422 that says why there is none
    (proven) or that none was found in time."""
    # The proofs first: the lower bound has nothing to say of a problem without a schedule.
    if errors := bounds.unschedulable(model):
        raise Invalid(errors)
    floor = bounds.lower_bound(model)
    not_found = Invalid([("time_limit_seconds", (
        f"no schedule found within {model.problem.time_limit:g} s: the priority rules could not "
        "place every task, and the search neither found a schedule nor proved that there is "
        "none; raise time_limit_seconds (up to 60), horizon_days or the capacity"))])
    windows = _windows(model, None)
    cells = sum(hi - lo + 1 for lo, hi in windows.values())
    if cells * max(len(r) for r in model.eligible.values()) > MAX_CELLS:
        # Nothing was searched, so the time limit is not what to change.
        raise Invalid([("horizon_days", (
            f"the priority rules could not place every task within {model.problem.horizon_days} "
            "days, and the problem is too large to search for a schedule they missed; raise "
            "horizon_days or the capacity (resources, hours per day)"))])
    try:
        built = _Built(model, windows, watch.builder(RESERVE_SECONDS + MIN_SEARCH_SECONDS))
    except _OutOfTime:
        raise not_found from None
    if watch.left() < MIN_SEARCH_SECONDS or watch.stopped():
        raise not_found
    solver, status = _search(built, watch, watch.left() - RESERVE_SECONDS)
    if status == cp_model.INFEASIBLE:
        raise Invalid([("horizon_days", (
            "the tasks do not fit before the horizon ends (or before the started work that "
            "follows them) with the capacity available: the search proved that there is no "
            "schedule; raise horizon_days, add capacity or unpin started work"))])
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise not_found
    return assemble(model, built.read(solver),
                    status="optimal" if status == cp_model.OPTIMAL else "feasible",
                    engine="CP-SAT (no priority rule placed every task)",
                    bound=max(floor, int(solver.best_objective_bound) // built.late_weight),
                    seconds=watch.elapsed(), first_answer_seconds=watch.best_seconds or 0,
                    best_answer_seconds=watch.best_seconds or 0)


def _neighbourhood(model: Model, windows: dict[str, tuple[int, int]], first: Plan,
                   repaired: Plan, watch: "_Watch", reserve: float) -> Plan | None:
    # `windows` are those of schedules no later than the rules' best plan, `first`.
    """The best plan found in NEIGHBOURHOOD_SHARE of the time left from the neighbourhood's
    seed: `put_back` first, then a search that keeps every task outside the re-plan's
    neighbourhood (`neighbourhood.reach`) as the mended previous plan has it (and as
    `put_back` left it); None if the neighbourhood is most of the tasks."""
    share = NEIGHBOURHOOD_SHARE * (watch.left() - reserve)
    ends = time.perf_counter() + share
    lateness = priority_rule.measure(model, first)[0]
    for rings in range(1, MOST_RINGS + 1):
        free = neighbourhood.reach(model, repaired, windows, rings)
        if len(free) > NEIGHBOURHOOD_MOST * len(model.order):
            return None
        fixed = {t: work for t, work in repaired.items() if t not in free}
        # The mended plan places the changed tasks after all kept work (often late): the
        # neighbourhood placed afresh around the rest is the better start, where it fits.
        seed = priority_rule.best(model, [p for p in (repaired, priority_rule.around(
            model, fixed)) if p is not None])
        # A start later than the rules' plan says the neighbourhood is too tight (measured
        # on bursty workloads: the search rarely gets that lateness back): one ring more.
        if priority_rule.measure(model, seed)[0] <= lateness:
            break
    else:
        # Still later than the rules' best (a capacity change that lateness must absorb):
        # lateness comes first, so the search starts from that plan, with what fits back
        # put back (the trial's week off: the neighbourhood ended 80 late, a fresh rule 36).
        seed = priority_rule.keep_more(model, first)
    # The windows of schedules no later than the seed: the search starts from a complete
    # plan inside them (the neighbourhood's best is no later than its seed).
    if (most_late := priority_rule.measure(model, seed)[0]) != lateness:
        windows = _windows(model, most_late)
    # Put back first: its small searches are worth far more per CPU second than the search
    # of the whole neighbourhood (bursty re-plans of 336 tasks, one slip: 11 untouched tasks
    # moved after 1.4 s of CPU; the search from the same seed needed 12 s with two workers
    # for 11 and left 15 with four, and after `put_back` it found nothing more in 13 s).
    seed = put_back(model, seed, windows, ends=ends, watch=watch)
    try:
        give_up = watch.builder(watch.left() - share)
        built = _Built(model, windows, give_up, fixed={t: work for t, work in fixed.items()
                                                       if seed[t] == work})
        built.hint(seed, give_up)
    except _OutOfTime:
        return seed
    seconds = ends - time.perf_counter()
    if seconds < MIN_SEARCH_SECONDS or watch.stopped():
        return seed
    # Its bound holds only with the rest kept: it is not reported as the problem's.
    solver, status = _search(built, watch, seconds, proves=False)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return seed
    return priority_rule.best(model, [seed, priority_rule.keep_more(model, built.read(solver))])


def put_back(model: Model, plan: Plan, windows: dict[str, tuple[int, int]], *, ends: float,
             watch: "_Watch | None" = None) -> Plan:
    """The plan with moved tasks put back where the previous plan had them, by small exact
    searches (a large neighbourhood search of our own): for each task that is moved but whose
    previous hours are still a place for it, CP-SAT re-places that task together with the
    tasks around its previous days — on its previous resource, or moved already — within
    PUT_BACK_DAYS working days, everything else as it is; an answer better by the objective
    is taken. Passes repeat until one takes nothing or `ends` (a `time.perf_counter()`
    instant) passes. `windows` hold every plan at least as good as `plan`.

    Where `keep_more` puts back one task at a time, this also swaps and shifts the tasks in
    the way: e.g. two tasks that swapped days both go back (2 moved → 0)."""
    score = priority_rule.measure(model, plan)
    previous = priority_rule.keepable_alone(model)
    better = True
    while better:
        better = False
        moved = sorted((t for t, work in previous.items() if t in plan
                        and not model.kept(t, plan[t])), key=lambda t: (previous[t].first, t))
        for task in moved:
            if time.perf_counter() >= ends or (watch is not None and watch.stopped()):
                return plan
            if model.kept(task, plan[task]):
                continue    # an earlier search of this pass put it back
            place = previous[task]
            lo, hi = place.first - PUT_BACK_DAYS, place.last + PUT_BACK_DAYS
            free = {task} | {t for t, work in plan.items() if model.tasks[t].start is None
                             and work.first <= hi and work.last >= lo
                             and (work.resource == place.resource or t not in model.previous
                                  or not model.kept(t, work))}
            built = _Built(model, windows, lambda done: False,
                           fixed={t: work for t, work in plan.items() if t not in free})
            built.hint(plan, lambda done: False)
            solver = cp_model.CpSolver()
            solver.parameters.num_workers = 1
            solver.parameters.random_seed = 0
            solver.parameters.max_deterministic_time = PUT_BACK_DETERMINISTIC_SECONDS
            solver.parameters.max_time_in_seconds = max(ends - time.perf_counter(), 0.01)
            if watch is not None:
                watch.searching(solver)
            try:
                status = solver.solve(built.cp)
            finally:
                if watch is not None:
                    watch.searching(None)
            if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                continue
            found = built.read(solver)
            if (scored := priority_rule.measure(model, found)) < score:
                plan, score, better = found, scored, True
                if watch is not None:
                    watch.best_seconds = watch.elapsed()
                    watch.found(scored[0], None)
    return plan


def _search(built: "_Built", watch: "_Watch", seconds: float, *,
            proves: bool = True) -> tuple[cp_model.CpSolver, cp_model.CpSolverStatus]:
    if not proves:
        return _solve_with(built, watch, seconds, proves=False)
    # One worker first, for a deterministic PROOF_DETERMINISTIC_SECONDS: it proves small
    # problems far sooner than the interleaved workers (the trial's 8-task solves: 0.1-1.1 s
    # where three interleaved workers took 3.5-11 s, on a loaded machine); the interleaved
    # search goes on from its answer where it proves nothing.
    began = time.perf_counter()
    quick, status = _solve_with(built, watch, seconds, workers=1,
                                deterministic=PROOF_DETERMINISTIC_SECONDS)
    seconds -= time.perf_counter() - began
    if status in (cp_model.OPTIMAL, cp_model.INFEASIBLE) or watch.stopped() \
            or seconds < MIN_SEARCH_SECONDS:
        return quick, status
    if status == cp_model.FEASIBLE:
        built.cp.clear_hints()  # type: ignore[no-untyped-call]  # untyped in OR-Tools 9.15
        built.hint(built.read(quick), lambda done: False)
    solver, found = _solve_with(built, watch, seconds)
    if found not in (cp_model.OPTIMAL, cp_model.FEASIBLE) and status == cp_model.FEASIBLE:
        return quick, status
    return solver, found


def _solve_with(built: "_Built", watch: "_Watch", seconds: float, *, proves: bool = True,
                workers: int = 3, deterministic: float | None = None
                ) -> tuple[cp_model.CpSolver, cp_model.CpSolverStatus]:
    solver = cp_model.CpSolver()
    # Interleaved search is CP-SAT's deterministic parallel mode, and the deterministic time
    # limit (about half the wall limit here) normally stops it first: same input, same plan.
    solver.parameters.interleave_search = workers > 1
    solver.parameters.num_workers = workers
    if not proves:
        # The neighbourhood search improves a good start, and its objective is mostly a sum
        # of booleans (tasks not kept): core-based search and LNS between them get furthest
        # per CPU second (measured on 336 tasks, two slips: 33 moved with one worker, 16
        # with the default eight, 7 with these).
        solver.parameters.num_workers = 4
        solver.parameters.subsolvers.extend(["core", "no_lp"])
    solver.parameters.random_seed = 0
    solver.parameters.max_time_in_seconds = max(seconds, 0.01)
    share = 1 if proves else NEIGHBOURHOOD_SHARE
    solver.parameters.max_deterministic_time = max(
        share * built.model.problem.time_limit / 2, 0.05) if deterministic is None \
        else deterministic
    if proves:
        solver.best_bound_callback = lambda bound: watch.found(
            None, int(bound) // built.late_weight)
    watch.searching(solver)
    try:
        status = solver.solve(built.cp, _Solutions(watch, built.late_weight, proves))
    finally:
        watch.searching(None)
    return solver, status


def _windows(model: Model, most_late: int | None) -> dict[str, tuple[int, int]]:
    """(first day, last day) each task may work on in a schedule at most `most_late` late
    (None: in any schedule)."""
    soonest = bounds.soonest_finish(model)
    followers: dict[str, list[str]] = defaultdict(list)
    for t in model.order:
        for p in model.tasks[t].predecessors:
            followers[p].append(t)
    latest: dict[str, int] = {}
    for t in reversed(model.topological):
        deadline = model.deadline(t)
        hi = len(model.days) - 1
        if deadline is not None and most_late is not None:
            hi = min(hi, deadline + most_late // model.tasks[t].priority)
        for f in followers[t]:
            hi = min(hi, latest[f] - min(model.length(f, r) for r in model.eligible[f]))
        latest[t] = hi
    return {t: (max([model.earliest(t)] + [soonest[p] + 1 for p in model.tasks[t].predecessors]),
                latest[t]) for t in model.order}


class _Built:
    """The CP-SAT model of a checked problem, with its variables by name; _OutOfTime once
    `give_up(share of the build done)` is true. The `fixed` tasks have no variables: their
    work is taken as it is (the neighbourhood search of a re-plan)."""

    def __init__(self, model: Model, windows: dict[str, tuple[int, int]],
                 give_up: Callable[[float], bool], fixed: Plan | None = None):
        self.model = model
        self.fixed = fixed = fixed or {}
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
        used: dict[tuple[str, int], int] = defaultdict(int)
        fixed_followers: dict[str, list[int]] = defaultdict(list)
        for t, work in fixed.items():
            for d, h in work.hours:
                used[work.resource, d] += h
            for p in model.tasks[t].predecessors:
                fixed_followers[p].append(work.first)
        for i, t in enumerate(model.topological):   # predecessors' variables come first
            if i % 64 == 0 and give_up(BUILD_SHARE * i / len(model.order)):
                raise _OutOfTime
            if t in fixed:
                continue
            lo, hi = windows[t]
            # Fixed neighbours narrow the window (where they leave one: else the precedence
            # constraints below say that there is none).
            after = max([lo] + [fixed[p].last + 1 for p in model.tasks[t].predecessors
                                if p in fixed])
            before = min([hi] + [f - 1 for f in fixed_followers[t]])
            if after <= before:
                lo, hi = after, before
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
                cp.add(first >= (fixed[p].last if p in fixed else self.last[p]) + 1)
            if fixed_followers[t]:
                cp.add(last <= min(fixed_followers[t]) - 1)
            deadline = model.deadline(t)
            if deadline is not None and hi > deadline:
                late = self.late[t] = cp.new_int_var(0, hi - deadline, f"late_{t}")
                cp.add(late >= last - deadline)
        for i, ((r, d), cell) in enumerate(on_day.items()):
            if i % 256 == 0 and give_up(BUILD_SHARE):
                raise _OutOfTime
            cap = model.resources[r].hours_per_day - used[r, d]
            if sum(rate for _, rate in cell) > cap:
                cp.add(sum(x for x, _ in cell) <= cap)
        for t, placed in model.previous.items():
            if t not in fixed:
                self._keep(t, placed)
        self.makespan = cp.new_int_var(max((w.last for w in fixed.values()), default=0),
                                       days - 1, "makespan")
        for last in self.last.values():
            cp.add(self.makespan >= last)
        move_weight = days + 1
        self.late_weight = move_weight * (len(model.order) + 1)
        # The fixed tasks' lateness and moves as constants, so that the objective is the
        # whole plan's (progress reports read the weighted lateness from it).
        fixed_late, fixed_moved, _ = priority_rule.measure(model, fixed)
        cp.minimize(
            self.late_weight * cp_model.LinearExpr.weighted_sum(
                list(self.late.values()), [model.tasks[t].priority for t in self.late])
            + move_weight * cp_model.LinearExpr.sum([1 - k for k in self.keep.values()])
            + self.makespan + self.late_weight * fixed_late + move_weight * fixed_moved)

    def _keep(self, t: str, placed: Placed) -> None:
        """keep_t: the task stays where the previous plan had it, as `Model.kept` defines it
        (no variable where it cannot: it then counts as moved in every schedule)."""
        cp, r = self.cp, placed.resource
        if placed.first is None or (t, r, placed.first) not in self.x:
            return
        if placed.hours is None:
            keep = self.keep[t] = cp.new_bool_var(f"keep_{t}")
            cp.add(self.first[t] == placed.first).only_enforce_if(keep)
            cp.add(self.x[t, r, placed.first] >= 1).only_enforce_if(keep)
            return
        hours = dict(placed.hours)
        if any((t, r, d) not in self.x or h > self.model.rate(t, r) for d, h in hours.items()):
            return
        keep = self.keep[t] = cp.new_bool_var(f"keep_{t}")
        for resource, d, x in self.cells[t]:
            cp.add(x == (hours.get(d, 0) if resource == r else 0)).only_enforce_if(keep)
        # Implied by the hours, stated so that a kept task fixes its days and span at once.
        for d, w in self.days_of[t]:
            cp.add(w == (d in hours)).only_enforce_if(keep)
        cp.add(self.first[t] == placed.hours[0][0]).only_enforce_if(keep)
        cp.add(self.last[t] == placed.hours[-1][0]).only_enforce_if(keep)

    def hint(self, plan: Plan, give_up: Callable[[float], bool]) -> None:
        """Start the search from a plan (every variable hinted); `give_up` as for the build."""
        cp, model = self.cp, self.model
        for i, (t, work) in enumerate(plan.items()):
            if i % 64 == 0 and give_up(BUILD_SHARE + (1 - BUILD_SHARE) * i / len(plan)):
                raise _OutOfTime
            if t in self.fixed:
                continue
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
                cp.add_hint(self.keep[t], model.kept(t, work))
        cp.add_hint(self.makespan, max(w.last for w in plan.values()))

    def read(self, solver: cp_model.CpSolver) -> Plan:
        """The plan of CP-SAT's best solution."""
        hours: dict[str, list[tuple[int, int]]] = defaultdict(list)
        resource: dict[str, str] = {}
        for (t, r, d), x in self.x.items():
            if (h := solver.value(x)) > 0:
                hours[t].append((d, h))
                resource[t] = r
        return {t: self.fixed[t] if t in self.fixed else Work(resource[t], tuple(sorted(hours[t])))
                for t in self.model.order}


class _OutOfTime(Exception):
    """The time limit passed, or a stop came, while the model was being built."""


class _Watch:
    """The call's clock, its progress reports and its stop: a thread reports at least once a
    second and passes a stop from outside on to CP-SAT."""

    def __init__(self, time_limit: float, progress: OnProgress | None, stop: Stop | None):
        self.began = time.perf_counter()
        self.deadline = self.began + time_limit - min(AFTER_SECONDS, AFTER_SHARE * time_limit)
        self.best_seconds: float | None = None     # when the best CP-SAT answer was found
        self._progress, self._stop = progress, stop
        self._lock = threading.Lock()
        self._incumbent: int | None = None
        self._bound = 0
        self._stopped = threading.Event()
        self._closed = threading.Event()
        self._solver: cp_model.CpSolver | None = None
        self._thread = threading.Thread(target=self._run, name="schedule-watch", daemon=True)
        if progress is not None or stop is not None:
            self._thread.start()

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def stopped(self) -> bool:
        if not self._stopped.is_set() and self._stop is not None and self._stop():
            self._stopped.set()
        return self._stopped.is_set()

    def out_of_time(self) -> bool:
        return self.stopped() or self.left() <= 0

    def builder(self, keep: float) -> Callable[[float], bool]:
        """A check for a model build starting now, called with the share of it done: give up
        once stopped, or once the build, at its pace so far, would not end `keep` seconds
        before the deadline (a build that cannot end in time is not worth finishing)."""
        began = time.perf_counter()

        def give_up(done: float) -> bool:
            now = time.perf_counter()
            ends = now + (now - began) * (1 - done) / done if done > 0 else now
            return self.stopped() or ends > self.deadline - keep
        return give_up

    def why_not(self, engine: str, step: str) -> str:
        """The engine's label when `step` did not run: stopped, or out of time."""
        return f"{engine} ({'stopped' if self.stopped() else 'time limit reached'} before {step})"

    def found(self, incumbent: int | None, bound: int | None) -> None:
        """Note a better answer's weighted lateness or a better bound, and report it."""
        with self._lock:
            changed = False
            if incumbent is not None and (self._incumbent is None or incumbent < self._incumbent):
                self._incumbent, changed = incumbent, True
            if bound is not None and bound > self._bound:
                self._bound, changed = bound, True
            if changed:
                self._report()

    def searching(self, solver: cp_model.CpSolver | None) -> None:
        with self._lock:
            self._solver = solver
        if solver is not None and self.stopped():
            solver.stop_search()

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join()

    def _report(self) -> None:
        # Called with the lock held: one report at a time, in order.
        if self._progress is None:
            return
        incumbent, bound = self._incumbent, self._bound
        bound = bound if incumbent is None else min(bound, incumbent)
        gap = None if incumbent is None else (incumbent - bound) / max(incumbent, 1)
        self._progress(Progress(round(self.elapsed(), 3), incumbent, bound, gap))

    def _run(self) -> None:
        reported = time.perf_counter()
        while not self._closed.wait(STOP_CHECK_SECONDS):
            if self.stopped():
                with self._lock:
                    if self._solver is not None:
                        self._solver.stop_search()
            if time.perf_counter() - reported >= REPORT_SECONDS - STOP_CHECK_SECONDS / 2:
                with self._lock:
                    self._report()
                reported = time.perf_counter()


class _Solutions(cp_model.CpSolverSolutionCallback):
    """Each better CP-SAT answer: when it came, its weighted lateness and the bound."""

    def __init__(self, watch: _Watch, late_weight: int, proves: bool):
        super().__init__()
        self.watch, self.late_weight, self.proves = watch, late_weight, proves

    def on_solution_callback(self) -> None:
        self.watch.best_seconds = self.watch.elapsed()
        bound = int(self.best_objective_bound) // self.late_weight if self.proves else None
        self.watch.found(int(self.objective_value) // self.late_weight, bound)
