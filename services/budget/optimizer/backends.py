"""Hand a formulation to HiGHS (its matrix interface) or CBC (through PuLP) and read back an
honest status: a time-limited incumbent is `feasible` with its gap, never `optimal`."""
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import highspy
import numpy as np
import pulp
from pulp.apis.coin_api import pulp_cbc_path

from services.budget.optimizer.answer import TooSteep
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.formulation import Formulation, to_pulp

# A MILP stops once proven within this of its optimum (at least: `milp` widens it to what
# the curves' own error leaves of the 0.1 % the answer promises).
MIP_GAP = 2e-4
FEASIBILITY = 1e-9
# HiGHS runs in a thread watched this often; past its time limit by LATE, or once stopped, it
# is given HEARD to end before its caller answers without it (`run_watched`).
POLL, LATE, HEARD = 0.05, 0.1, 0.1
# A plan HiGHS reports is checked against the rows within this (its MIP tolerance, HiGHS's default).
REPORTED = 1e-6
# A MILP started from a plan that only needs its bound: HiGHS's heuristics off. Its sub-MIP
# heuristics took 16.8 of 20.3 s at the root of 50 x 13 other shapes (the deals' stage's plan
# as the start), and the bound stopped 0.05 % above the plan, the root never done; without
# them (RINS, RENS, root reduced cost and feasibility jump: any one left on costs seconds)
# the root's cuts and strong branching prove 0.028 % in 4-5 s of CPU, and other seeds of
# those shapes are proven in 5-6 s where they were not in 30. No restart: on seed 6 the root
# fixed 49 deal columns, restarted and ran its cuts again, 15.5 s where without it 4.3 s. No
# cuts below the root: seed 8's tree (15 nodes) 13.9 s with them, 5.8 s without (seed 6's 7
# nodes 4.1 s and 3.2 s). Seeds 3-5, 7 and 9, proven at their root, are the same either way.
PROVING: dict[str, bool | float] = {
    "mip_heuristic_effort": 0.0, "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False, "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_run_feasibility_jump": False, "mip_allow_restart": False,
    "mip_allow_cut_separation_at_nodes": False}
Status = Literal["optimal", "feasible", "infeasible", "none"]
# Called as the solver improves its plan: (column values, bound of the objective).
OnImprove = Callable[[Floats, float], None]
# Asked at every interrupt point: true once the caller wants the best plan so far.
Stop = Callable[[], bool]


@dataclass(frozen=True)
class Run:
    status: Status                  # "none": no plan within the time given
    x: Floats | None                # column values
    objective: float | None
    bound: float | None             # no plan's objective is better (None: unknown)
    row_dual: Floats | None
    # An LP's reduced costs: per column, the objective's rate of change in its value.
    col_dual: Floats | None = None


def run_highs(form: Formulation, seconds: float, *, start: Floats | None = None,
              relax: bool = False, on_improve: OnImprove | None = None,
              good_enough: float | None = None, stop: Stop | None = None,
              gap: float = MIP_GAP, interior: bool = False, proving: bool = False) -> Run:
    """Solve `form` with HiGHS within `seconds`, from the column values `start` if given.
    `relax`: its LP relaxation (`interior`: by interior point without presolve, see
    `relax_then_fix`; with a `start`, without presolve, whose reductions lose it). `gap`: the
    MILP's relative gap. `good_enough`: a bound from elsewhere; the MILP stops once its
    incumbent is within `gap` of it. `stop`: interrupts the solve once
    true. `proving`: the start is the plan to prove, so the MILP spends its time on its bound
    (`PROVING`), not on heuristics that look for a better plan."""
    end = time.perf_counter() + seconds   # building HiGHS's model takes part of it
    highs = _highs(form, seconds, relax, stop)
    highs.setOptionValue("mip_rel_gap", gap)
    if relax and (interior or start is not None):
        highs.setOptionValue("presolve", "off")
    if relax and interior:
        highs.setOptionValue("solver", "ipm")
    if not relax:
        # HiGHS's MIP presolve on these many thin columns takes seconds (8 of 27 on the other
        # shapes at 50 × 13) and hears no interrupt, so neither the deadline nor a stop; its
        # reductions are few (30 of 31,733 columns). Without it the root's cuts close more of
        # the gap in the same time (0.02 % against 0.32 %).
        highs.setOptionValue("presolve", "off")
    if proving:
        for option, value in PROVING.items():
            highs.setOptionValue(option, value)
    if start is not None:
        _started(highs, start)
    # The last improving plan that meets the rows and HiGHS's last bound, kept should HiGHS
    # be left behind or end on a plan that misses a row: at the limit on a loaded machine the
    # run that is left behind is the one that made both (other shapes at 50 x 13: gap 0.19 %
    # with its bound, 0.63 % without).
    improved: list[Floats] = []
    bound = [math.inf]
    abandoned = threading.Event()

    def improving(event: Any) -> None:
        if abandoned.is_set():
            return   # a run left behind reports nothing after its caller answered
        bounded(event)
        # A copy: highspy's array is a view of HiGHS's own memory, which its next plan
        # overwrites and the run's end frees (a plan kept from a run left behind was read
        # after HiGHS ended: changed under its caller, or garbage such as NaN).
        x = np.array(event.data_out.mip_solution, dtype=float)
        # Only a plan the answer can keep is kept and heard: one HiGHS holds within its own
        # tolerance may miss a row by more than REPORTED, and shown in a job's progress and
        # then dropped at a cancel, the job ended with no plan (result null).
        if not form.feasible(x, REPORTED):
            return
        improved[:] = [x]
        if on_improve is not None:
            on_improve(x, float(event.data_out.mip_dual_bound))

    def bounded(event: Any) -> None:
        if not abandoned.is_set():
            bound[0] = float(event.data_out.mip_dual_bound)
    if not relax:
        highs.cbMipImprovingSolution.subscribe(improving)
        highs.cbMipInterrupt.subscribe(bounded)
    if good_enough is not None:
        def close_enough(event: Any) -> None:
            incumbent = float(event.data_out.mip_primal_bound)
            if math.isfinite(incumbent) and \
                    abs(good_enough - incumbent) <= gap * max(abs(incumbent), 1e-12):
                event.interrupt()
        highs.cbMipInterrupt.subscribe(close_enough)
    if not run_watched(highs, end, stop):
        abandoned.set()
        if not improved:
            return Run("none", None, None, None, None)
        known = bound[0] if math.isfinite(bound[0]) else None
        return Run("feasible", improved[0], float(form.cost @ improved[0]), known, None)
    run = _read(highs, form, relax)
    if run.x is not None and not form.feasible(run.x, REPORTED):
        # Interrupted before it checked them, HiGHS can hand back the start it was given as
        # a plan, or end on one that misses a row: the last improving plan that meets them
        # is the answer, else there is none.
        if not improved:
            return Run("none", None, None, run.bound, None)
        return Run("feasible", improved[0], float(form.cost @ improved[0]), run.bound, None)
    return run


def relax_then_fix(form: Formulation, seconds: float,
                   rounding: Callable[[Floats], Floats],
                   stop: Stop | None = None) -> tuple[Run, Run | None]:
    """The LP relaxation of `form`, then, from its basis, the LP with the integer columns fixed
    at `rounding` of the relaxation's values: a bound and, when that LP is feasible, a plan."""
    started = time.perf_counter()
    highs = _highs(form, seconds, relax=True, stop=stop)
    # Interior point without presolve: HiGHS's presolve and simplex start on a model of many
    # thin columns and few rows take seconds without an interrupt point; its iterations stop
    # on time, and its crossover leaves the basis the fixed LP restarts from.
    highs.setOptionValue("presolve", "off")
    highs.setOptionValue("solver", "ipm")

    def again() -> bool:
        """`highs` run once more (from its basis) in the time left of `seconds`."""
        highs.setOptionValue("time_limit", highs.getRunTime() +
                             max(seconds - (time.perf_counter() - started), 0.01))
        return run_watched(highs, started + seconds, stop)

    if not run_watched(highs, started + seconds, stop):
        return Run("none", None, None, None, None), None
    highs.setOptionValue("solver", "simplex")
    relaxed = _read(highs, form, relax=True)
    if relaxed.status == "none" and time.perf_counter() - started < seconds and \
            not (stop is not None and stop()):
        # Ended in time without a point `_read` takes (one missing a row by more than
        # REPORTED, or an interior point left imprecise): without it the MILP has no start,
        # bound or prices (`_read`). The simplex ends it from where it stopped (200 x 52 on a
        # 1,000-point cut, 4.9e-8 off a row: one iteration, 0.06 s, to a point missing none).
        if not again():
            return relaxed, None
        relaxed = _read(highs, form, relax=True)
    if relaxed.x is None or not form.integer.any() or (stop is not None and stop()):
        return relaxed, None
    columns = np.flatnonzero(form.integer)
    fixed = rounding(relaxed.x)[columns]
    highs.changeColsBounds(len(columns), columns.astype(np.int32), fixed, fixed)
    if not again():
        return relaxed, None
    return relaxed, _read(highs, form, relax=True)


def run_watched(highs: highspy.Highs, end: float, stop: Stop | None = None) -> bool:
    """Run `highs` in a thread of its own while this one watches the clock and `stop()`: true
    once it has ended, false when it was left behind. HiGHS 1.16 hears neither its interrupt
    callbacks nor `cancelSolve` in stretches of a MILP's root (6 s without one at 150 x 52,
    where a stop then came 6 s late and a deadline 0.8 s late). Past `end` (+ LATE) or
    once `stop()`, it is asked to stop and given HEARD to; after that the caller answers
    without it (its plans until then kept by the caller), and the run ends on its own time
    limit, reporting nothing: that limit is lowered to 0, so the run ends at its next check of
    it (each LP a MIP starts, each node, the simplex as it iterates) rather than at the limit
    it was given (left behind after a stop, 3.7-13.6 s of a core, now 1.1-4.1 s)."""
    done = threading.Event()

    def solve() -> None:
        try:
            highs.run()
        finally:
            done.set()
    # Not a daemon: a process ending while HiGHS still runs aborts in HiGHS's own threads
    # ("terminate called without an active exception"); it waits for the run's time limit.
    threading.Thread(target=solve, name="highs").start()
    while not done.wait(POLL):
        if time.perf_counter() > end + LATE or (stop is not None and stop()):
            # highspy's `cancelSolve` only sets a flag that its own interrupt callbacks read,
            # as `past` does already. The time limit is what HiGHS reads where it calls no
            # callback. Written while HiGHS runs: its reads of that one double see the old
            # value or the new, and a run left behind answers nothing either way.
            highs.setOptionValue("time_limit", 0.0)
            return done.wait(HEARD)
    return True


def _started(highs: highspy.Highs, start: Floats) -> None:
    """`highs` given the column values `start` to start from."""
    solution = highspy.HighsSolution()
    solution.col_value = list(start)
    solution.value_valid = True
    highs.setSolution(solution)


def new_highs() -> highspy.Highs:
    """A quiet HiGHS on one thread, as every HiGHS of the process must be: its thread pool is
    made once, by the first run, and a later run asking another size fails (a MILP then had no
    plan)."""
    highs = highspy.Highs()   # type: ignore[no-untyped-call]
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", 1)
    return highs


def pass_model(highs: highspy.Highs, lp: highspy.HighsLp) -> None:
    """Give HiGHS `lp`, or raise: HiGHS refuses a model with a matrix value of 1e15 or more
    (or another it cannot take) and then holds an empty one, which read as solved would be a
    plan with no columns."""
    if highs.passModel(lp) == highspy.HighsStatus.kError:
        raise TooSteep("a curve's return per unit is past the solver's limit of 1e15")


Row = tuple[list[int], list[float], float, float]   # columns, coefficients, lower, upper


def solve_rows(lp: highspy.HighsLp, rows: list[Row], seconds: float = math.inf) -> Floats | None:
    """Solve `lp` (its columns set) with `rows` as its matrix within `seconds`: the columns'
    values where it is solved to optimality, else None. For the small LPs built outside
    `Formulation`."""
    starts, index, value = [0], [], []
    for columns, coefficients, _, _ in rows:
        index += columns
        value += coefficients
        starts.append(len(index))
    lp.num_row_ = len(rows)
    lp.row_lower_ = np.array([row[2] for row in rows])
    lp.row_upper_ = np.array([row[3] for row in rows])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    highs = new_highs()
    if math.isfinite(seconds):
        highs.setOptionValue("time_limit", max(seconds, 0.01))
    pass_model(highs, lp)
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(highs.getSolution().col_value, dtype=float)


def _highs(form: Formulation, seconds: float, relax: bool,
           stop: Stop | None = None) -> highspy.Highs:
    highs = new_highs()
    highs.setOptionValue("time_limit", max(seconds, 0.01))
    highs.setOptionValue("mip_rel_gap", MIP_GAP)
    # The first segments of a steep curve are a billionth of the budget long: at the default
    # tolerance (1e-7) HiGHS's MIP presolve treats them as free and reports a plan about 1 %
    # short as optimal, with a bound below plans that exist. The MIP's own tolerance stays
    # HiGHS's default: at 1e-9 HiGHS 1.16 answered a narrowed S-curve, deal and group model
    # `optimal` at 2.791 where a plan worth 2.957 meets every row (a new user's 4 x 2 request,
    # 5.8 % short; 3 of 127 such requests), with the default 0 of 127.
    highs.setOptionValue("primal_feasibility_tolerance", FEASIBILITY)
    pass_model(highs, highs_model(form, relax))
    hear_deadline(highs, time.perf_counter() + seconds, stop)
    return highs


def hear_deadline(highs: highspy.Highs, deadline: float, stop: Stop | None = None) -> None:
    """Stop `highs` at `deadline` (a `time.perf_counter()` instant) or once `stop()` turns true.
    HiGHS checks its own time limit only now and then (not inside presolve, seldom in a big
    root LP); the wall clock checked at every interrupt point keeps the caller's deadline,
    and the caller's stop is heard at the same points. HiGHS's own limit is set too: the
    interior point method's crossover calls no interrupt (an LP of 2,000 x 55 with period caps
    went 70 s past a deadline there)."""
    highs.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.01))

    def past(event: Any) -> None:
        if time.perf_counter() > deadline or (stop is not None and stop()):
            event.interrupt()
    for callback in (highs.cbSimplexInterrupt, highs.cbIpmInterrupt, highs.cbMipInterrupt):
        callback.subscribe(past)


def _read(highs: highspy.Highs, form: Formulation, relax: bool) -> Run:
    model_status = highs.getModelStatus()
    # With no columns (no money to place) every row's activity is 0, which HiGHS does not
    # check against the rows' bounds: minimums above nothing are still infeasible.
    if model_status == highspy.HighsModelStatus.kModelEmpty:
        if ((form.row_lower > FEASIBILITY) | (form.row_upper < -FEASIBILITY)).any():
            return Run("infeasible", None, None, None, None)
        return Run("optimal", np.zeros(0), 0.0, 0.0, np.zeros(len(form.row_lower)))
    if model_status in (highspy.HighsModelStatus.kInfeasible,
                        highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return Run("infeasible", None, None, None, None)
    info = highs.getInfo()
    proven = model_status == highspy.HighsModelStatus.kOptimal
    # An LP solved to optimality whose point misses a row by more than FEASIBILITY but within
    # REPORTED is still the LP's point: HiGHS 1.16's interior point and crossover end there
    # (4.9e-8 on the coarse envelope LP of a 200 x 52 request cut on another grid), and
    # taken for none it cost the MILP its start, bound and prices (an answer 97 % short).
    # Its users hold it to the rows (`milp._held`, the LP with the binaries fixed).
    near = relax and proven and info.max_primal_infeasibility <= REPORTED
    if info.primal_solution_status != 2 and not near:   # 2: kSolutionStatusFeasible
        return Run("none", None, None, None, None)
    solution = highs.getSolution()
    objective = float(info.objective_function_value)
    bound: float | None = objective if proven else None
    if form.integer.any() and not relax:
        dual_bound = float(info.mip_dual_bound)
        bound = dual_bound if math.isfinite(dual_bound) else None
    duals = np.asarray(solution.row_dual, dtype=float) if solution.dual_valid else None
    reduced = np.asarray(solution.col_dual, dtype=float) if solution.dual_valid else None
    return Run("optimal" if proven else "feasible", np.asarray(solution.col_value, dtype=float),
               objective, bound, duals, reduced)


def highs_model(form: Formulation, relax: bool = False) -> highspy.HighsLp:
    """`form` as HiGHS's model (`relax`: without integrality)."""
    lp = highspy.HighsLp()
    lp.num_col_ = len(form.cost)
    lp.num_row_ = len(form.row_names)
    lp.col_cost_ = form.cost
    lp.col_lower_ = form.col_lower
    lp.col_upper_ = form.col_upper
    lp.row_lower_ = form.row_lower
    lp.row_upper_ = form.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = form.start
    lp.a_matrix_.index_ = form.index
    lp.a_matrix_.value_ = form.value
    lp.sense_ = highspy.ObjSense.kMaximize if form.maximise else highspy.ObjSense.kMinimize
    if form.integer.any() and not relax:
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                           for i in form.integer]
    return lp


def run_cbc(form: Formulation, seconds: float) -> Run:
    """Solve `form` with CBC through PuLP within `seconds` (no bound: CBC's is not read back)."""
    prob, variables = to_pulp(form)
    # PuLP 3.3 deprecates the PULP_CBC_CMD class for COIN_CMD; the CBC binary it bundles stays
    # the one we run, since PuLP 4 (which ships CBC as `pulp[cbc]`) needs Python 3.12.
    prob.solve(pulp.COIN_CMD(path=pulp_cbc_path, msg=False, timeLimit=max(seconds, 1.0),
                             gapRel=MIP_GAP))
    if prob.status == pulp.LpStatusInfeasible:
        return Run("infeasible", None, None, None, None)
    if prob.sol_status == pulp.LpSolutionNoSolutionFound or prob.status == pulp.LpStatusNotSolved:
        return Run("none", None, None, None, None)
    x = np.array([v.varValue or 0.0 for v in variables], dtype=float)
    proven = prob.sol_status == pulp.LpSolutionOptimal
    objective = float(form.cost @ x)
    return Run("optimal" if proven else "feasible", x, objective, objective if proven else None,
               None)


class Bounded(Protocol):
    """The LP with the column bounds given, ended at `until` (a `time.perf_counter()` instant)
    if given: "none" once there, and the HiGHS left to serve the next call."""

    def __call__(self, lower: Floats, upper: Floats, until: float | None = None) -> Run: ...


def bounding(form: Formulation, seconds: float, stop: Stop | None = None,
             start: Floats | None = None) -> Bounded:
    """The LP of `form` with the column bounds given (lower, upper), one call after another on
    one HiGHS, each starting from the last one's basis (a local search's LPs: 2.7-14 ms each
    where a model of its own took ten times that), the first from the column values `start`
    if given, all within `seconds`; once stopped or late every call answers "none". A call's
    own `until` ends it by HiGHS's time limit, which leaves the HiGHS usable (a run abandoned
    at the end of `seconds` does not)."""
    end = time.perf_counter() + seconds
    highs = _highs(form, seconds, relax=True, stop=stop)
    # HiGHS makes its first basis from the plan's values, given after the first call's bounds
    # (a change of bounds drops them): the search's first LP at 50 x 13 other shapes took
    # 0.46 s of CPU from none (most of it choosing among the many columns a cold dual simplex
    # flips at once), 0.02 s from the plan.
    first = [start]
    # The LPs differ in a few bounds: presolve would redo its work for each, simplex restarts.
    highs.setOptionValue("presolve", "off")
    # The bounds HiGHS holds: only those a call changes are passed (all 25,000 columns' took
    # 5 ms of the search's 12 ms LPs at 50 x 13 other shapes).
    held = [form.col_lower.copy(), form.col_upper.copy()]
    over = [False]

    def bounded(lower: Floats, upper: Floats, until: float | None = None) -> Run:
        now = time.perf_counter()
        if over[0] or now >= end or (stop is not None and stop()):
            over[0] = True
            return Run("none", None, None, None, None)
        finish = end if until is None else min(until, end)
        if now >= finish:
            return Run("none", None, None, None, None)
        changed = np.flatnonzero((lower != held[0]) | (upper != held[1])).astype(np.int32)
        if len(changed):
            highs.changeColsBounds(len(changed), changed, lower[changed], upper[changed])
            held[:] = [lower.copy(), upper.copy()]
        if first[0] is not None:
            _started(highs, first[0])
            first[0] = None
        # HiGHS holds its time limit against all its runs' time, not this run's: given the
        # time left alone, the search's LPs ended at once (`kTimeLimit`, no iteration) once
        # the runs before had taken as long (at 50 x 13 after 3-6 s, cutting it short).
        highs.setOptionValue("time_limit", highs.getRunTime() + max(finish - now, 0.01))
        if not run_watched(highs, end, stop):
            over[0] = True   # a run left behind: this HiGHS is no longer ours to run
            return Run("none", None, None, None, None)
        return _read(highs, form, relax=True)
    return bounded
