"""The optimizer's entry point: refine the curves until the plan is provably near the optimum."""
import time

from services.budget.optimizer.answer import Allocation
from services.budget.optimizer.assembly import allocation, approximation_error
from services.budget.optimizer.greedy import applies as greedy_applies
from services.budget.optimizer.greedy import solve as solve_greedy
from services.budget.optimizer.milp import solve_milp
from services.budget.optimizer.problem import Problem
from services.budget.optimizer.scaled import ScaledProblem

# The approximation is refined until the true optimum can be at most this far above the plan.
TARGET_ERROR = 1e-3
FIRST_TOLERANCE = 4e-4   # of each curve's value at its cap; usually meets TARGET_ERROR at once
REFINEMENTS = 3


def solve(problem: Problem) -> Allocation:
    """Return the best allocation of `problem`, or raise `Infeasible` naming the conflict
    (`SolveTimeout` when the time limit passes before any plan is found).

    Each round cuts the curves into segments within a tolerance, solves (the greedy when it is
    exact, else the MILP) and bounds the true optimum's lead over the plan; past TARGET_ERROR
    the tolerance shrinks and the problem is solved again.
    """
    started = time.perf_counter()
    model = ScaledProblem(problem)
    tolerance = FIRST_TOLERANCE
    for _ in range(REFINEMENTS):
        cells = model.cells(tolerance)
        if greedy_applies(model, cells):
            solution = solve_greedy(model, cells)
        else:
            solution = solve_milp(model, cells, started)
        error = approximation_error(model, cells, solution)
        if error <= TARGET_ERROR or not any(c.segments and c.segments.error for c in cells):
            break
        tolerance *= max(0.5 * TARGET_ERROR / error, 1e-3)
    return allocation(model, cells, solution, error, time.perf_counter() - started)
