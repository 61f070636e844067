"""Hand a formulation to HiGHS (its matrix interface) or CBC (through PuLP) and read back an
honest status: a time-limited incumbent is `feasible` with its gap, never `optimal`."""
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np
import pulp
from pulp.apis.coin_api import pulp_cbc_path

from services.budget.optimizer.curves import Floats
from services.budget.optimizer.formulation import Formulation, to_pulp

# A MILP stops once proven within this of its optimum; with the curve error it stays < 0.1 %.
MIP_GAP = 2e-4
Status = Literal["optimal", "feasible", "infeasible", "none"]
# Called as the solver improves its plan: (column values, bound of the objective).
OnImprove = Callable[[Floats, float], None]


@dataclass(frozen=True)
class Run:
    status: Status                  # "none": no plan within the time given
    x: Floats | None                # column values
    objective: float | None
    bound: float | None             # no plan's objective is better (None: unknown)
    row_dual: Floats | None


def run_highs(form: Formulation, seconds: float, *, start: Floats | None = None,
              on_improve: OnImprove | None = None) -> Run:
    """Solve `form` with HiGHS within `seconds`, from the column values `start` if given."""
    highs = highspy.Highs()   # type: ignore[no-untyped-call]
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", 1)
    highs.setOptionValue("time_limit", max(seconds, 0.01))
    highs.setOptionValue("mip_rel_gap", MIP_GAP)
    highs.passModel(_lp(form))
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = list(start)
        solution.value_valid = True
        highs.setSolution(solution)
    if on_improve is not None:
        highs.cbMipImprovingSolution.subscribe(
            lambda event: on_improve(np.asarray(event.data_out.mip_solution, dtype=float),
                                     float(event.data_out.mip_dual_bound)))
    highs.run()
    model_status = highs.getModelStatus()
    if model_status in (highspy.HighsModelStatus.kInfeasible,
                        highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return Run("infeasible", None, None, None, None)
    info = highs.getInfo()
    if info.primal_solution_status != 2:   # kSolutionStatusFeasible
        return Run("none", None, None, None, None)
    solution = highs.getSolution()
    proven = model_status == highspy.HighsModelStatus.kOptimal
    objective = float(info.objective_function_value)
    bound: float | None = objective if proven else None
    if form.integer.any():
        dual_bound = float(info.mip_dual_bound)
        bound = dual_bound if math.isfinite(dual_bound) else None
    duals = np.asarray(solution.row_dual, dtype=float) if solution.dual_valid else None
    return Run("optimal" if proven else "feasible", np.asarray(solution.col_value, dtype=float),
               objective, bound, duals)


def _lp(form: Formulation) -> highspy.HighsLp:
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
    if form.integer.any():
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
