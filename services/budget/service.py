"""Budget use cases."""
from services.budget import optimize
from services.budget.optimization import (OptimizationPublic, OptimizationRequest, check_request,
                                          to_problem, to_public)
from shared.errors import UnprocessableContent
from shared.money import minor_units
from shared.workers import WorkerPool, WorkerTimeout


class InfeasiblePlan(UnprocessableContent):
    slug, title = "infeasible-plan", "No plan meets every constraint"


class SolveTimeLimit(UnprocessableContent):
    slug, title = "solve-time-limit", "No plan found within the time limit"


def optimize_budget(*, request: OptimizationRequest, workers: WorkerPool,
                    grace_seconds: float) -> OptimizationPublic:
    """Find the best allocation of the request's budget; nothing is stored."""
    check_request(request)
    problem = to_problem(request)
    try:
        allocation = workers.run(optimize.solve, problem,
                                 timeout=problem.time_limit + grace_seconds)
    except optimize.Infeasible as infeasible:
        conflicts = infeasible.conflicts
        raise InfeasiblePlan(
            "No allocation meets every constraint. The smallest change that makes one possible: "
            + "; or ".join(c.detail for c in conflicts) + ".",
            conflicts=[{"constraint": c.constraint, "change": format(c.change, "f"),
                        "detail": c.detail} for c in conflicts]) from None
    except (optimize.SolveTimeout, WorkerTimeout):
        raise SolveTimeLimit(
            f"The solver found no plan within {problem.time_limit:g} s. Raise time_limit_seconds "
            "(up to 60), or make the problem smaller: fewer periods, deals or S-shaped curves.") from None
    return to_public(allocation, request.currency, minor_units(request.currency))
