"""The optimizer's entry point: refine the curves until the plan is provably near the optimum,
within the time limit."""
import time
from collections.abc import Callable
from dataclasses import replace

from services.budget.optimizer import greedy, period_prices
from services.budget.optimizer.answer import Allocation, Infeasible, Progress, SolveTimeout
from services.budget.optimizer.assembly import allocation, approximation_error
from services.budget.optimizer.backends import Stop
from services.budget.optimizer.infeasibility import unmet_shares
from services.budget.optimizer.milp import Gating, solve_milp
from services.budget.optimizer.problem import Problem
from services.budget.optimizer.scaled import Cells, ScaledProblem, Solution

# The approximation is refined until the true optimum can be at most this far above the plan.
TARGET_ERROR = 1e-3
FIRST_TOLERANCE = 4e-4   # of each curve's value at its cap; usually meets TARGET_ERROR at once
REFINEMENTS = 3
# Float noise allowed over TARGET_ERROR before a proven plan is called merely feasible.
PROVEN_SLACK = 1e-9
# The solver stops this share of the time limit (plus a fixed part, at most the cap) before
# it, so that rounding and describing the plan end within the limit.
ASSEMBLY_SHARE, ASSEMBLY_FIXED, ASSEMBLY_CAP = 0.1, 0.1, 1.5


def solve(problem: Problem, progress: Callable[[Progress], None] | None = None, *,
          stop: Stop | None = None, gating: Gating = "tangent",
          warm_start: bool = True) -> Allocation:
    """Return the best allocation of `problem` within its time limit, or raise `Infeasible`
    naming the conflict (`SolveTimeout` when the limit passes before any plan is found).

    Each round cuts the curves into segments within a tolerance, solves (concave curves under
    the budget, channel bounds, period caps and groups by the greedy, with period prices and an
    LP where a period has a cap or a group a share; else the MILP) and bounds the true
    optimum's lead over the plan; past TARGET_ERROR the tolerance shrinks and the problem is
    solved again while time is left. `progress`, when given, hears the incumbent, bound and gap
    as they improve. Once `stop()` turns true (asked at HiGHS's interrupt points and between
    rounds) the best plan so far is answered, as `feasible` with its gap unless already proven
    (`SolveTimeout` if there is none).
    `gating` and `warm_start` choose the MILP's method ("full" gating and a cold start are the
    references the tests and the benchmark compare with).
    """
    started = time.perf_counter()
    limit = problem.time_limit
    deadline = started + limit - min(ASSEMBLY_SHARE * limit + ASSEMBLY_FIXED, ASSEMBLY_CAP)
    model = ScaledProblem(problem)
    if problem.objective != "min_spend":
        # Spending nothing holds any share: it is never the answer to shares that only it holds
        # (min_spend's plan of nothing is its answer wherever it meets the target).
        unmet = unmet_shares(model)
        if unmet:
            raise Infeasible(unmet)

    def report(incumbent: float, bound: float | None) -> None:
        if progress is not None:
            gap = None if bound is None else abs(bound - incumbent) / max(abs(incumbent), 1e-12)
            progress(Progress(incumbent * model.unit, None if bound is None else bound * model.unit,
                              gap, round(time.perf_counter() - started, 4)))

    tolerance = FIRST_TOLERANCE
    best: tuple[Cells, Solution, float] | None = None
    # Where the priced greedy's next round starts (period caps or groups only).
    start: period_prices.Start | None = None
    for _ in range(REFINEMENTS):
        try:
            cells = model.cells(tolerance, deadline, stop)
            if stop is not None and stop():
                # Heard before any model is made of the cut curves: the return floors' route
                # makes its whole envelope model next (seconds at 200 x 26) without asking.
                raise SolveTimeout("stopped before any plan was found")
            solution, start = _concave(model, cells, deadline, start, stop)
            if solution is not None:
                report(solution.model_return, solution.model_return * (1 + (solution.gap or 0.0)))
            else:
                solution = solve_milp(model, cells, deadline, gating=gating,
                                      warm_start=warm_start, report=report, stop=stop,
                                      target_error=TARGET_ERROR)
        except SolveTimeout:
            if best is None:
                raise
            break
        error = approximation_error(model, cells, solution)
        if error > TARGET_ERROR:
            # The curves' largest rises count wherever they are; the prices' bound counts
            # them only where the plan's prices put the optimum (`priced_error`).
            priced = model.priced_error(cells, solution)
            error = error if priced is None else min(error, priced)
        if best is None or error < best[2]:
            best = cells, solution, error
        if error <= TARGET_ERROR or not any(c.segments and c.segments.error for c in cells) \
                or time.perf_counter() >= deadline or (stop is not None and stop()):
            break
        tolerance *= max(0.5 * TARGET_ERROR / error, 1e-3)
    assert best is not None
    cells, solution, error = best
    # A status is a promise: the plan within TARGET_ERROR of the true optimum, which `error`
    # bounds where the plan has a bound (its gap is in `error`). A solver's "optimal" for the
    # segments is less than that; a plan stopped at the limit with its bound within it, proven.
    proven = solution.gap is not None and error <= TARGET_ERROR + PROVEN_SLACK
    if (solution.status == "optimal") != proven:
        solution = replace(solution, status="optimal" if proven else "feasible")
    return allocation(model, cells, solution, error, time.perf_counter() - started,
                      stopped=stop is not None and stop())


def _concave(model: ScaledProblem, cells: Cells, deadline: float,
             start: period_prices.Start | None,
             stop: Stop | None) -> tuple[Solution | None, period_prices.Start | None]:
    """The route of a concave problem with no deals or conditional floors: the greedy, with
    prices on the periods' caps and the groups' rows in an LP when there are any (starting from
    the last round's prices, `start`); no solution for the MILP's route (any other
    problem, or one whose rows the priced greedy's LP could not meet)."""
    if not greedy.concave(model, cells):
        return None, None
    if period_prices.applies(model):
        return period_prices.solve(model, cells, deadline, start, stop)
    return greedy.solve(model, cells), None
