"""Hand a built model to HiGHS or CBC and read back an honest status: a time-limited incumbent
is `feasible` with its gap, never `optimal`."""
import math
import time
from typing import Any, Literal

import pulp
from pulp.apis.coin_api import pulp_cbc_path

from services.budget.optimizer.answer import SolveTimeout
from services.budget.optimizer.problem import Problem

# A MILP stops once proven within this of its optimum; with the curve error it stays < 0.1 %.
MIP_GAP = 2e-4
Status = Literal["optimal", "feasible", "infeasible"]


def solver_for(problem: Problem, started: float) -> Any:
    """The solver the problem asks for, with what is left of its time limit."""
    remaining = max(problem.time_limit - (time.perf_counter() - started), 1.0)
    if problem.solver == "cbc":
        # PuLP 3.3 deprecates the PULP_CBC_CMD class for COIN_CMD; the CBC binary it bundles
        # stays the one we run, since PuLP 4 (which ships CBC as `pulp[cbc]`) needs Python 3.12.
        return pulp.COIN_CMD(path=pulp_cbc_path, msg=False, timeLimit=remaining, gapRel=MIP_GAP)
    return pulp.HiGHS(msg=False, timeLimit=remaining, gapRel=MIP_GAP, threads=1)


def solver_label(problem: Problem) -> str:
    return "CBC" if problem.solver == "cbc" else "HiGHS"


def run(prob: pulp.LpProblem, problem: Problem, started: float) -> tuple[Status, float | None]:
    """Solve `prob`; return its status and the solver's optimality gap (0 when proven)."""
    solver = solver_for(problem, started)
    prob.solve(solver)
    if prob.status == pulp.LpStatusInfeasible:
        return "infeasible", None
    if prob.sol_status == pulp.LpSolutionNoSolutionFound or prob.status == pulp.LpStatusNotSolved:
        raise SolveTimeout(f"no plan found within {problem.time_limit:g} s")
    if isinstance(solver, pulp.HiGHS):
        highs = prob.solverModel
        proven = highs.getModelStatus() == highs.getModelStatus().__class__.kOptimal
        if not prob.isMIP():
            return ("optimal" if proven else "feasible"), 0.0
        gap = float(highs.getInfo().mip_gap)
        return ("optimal" if proven else "feasible"), (gap if math.isfinite(gap) else None)
    proven = prob.sol_status == pulp.LpSolutionOptimal
    return ("optimal" if proven else "feasible"), (0.0 if proven else None)
