"""The budget optimizer: how much to put in each channel, holding back an emergency reserve.

Pure: frozen dataclasses in, an `Allocation` out; no database, no HTTP.

The model. Money available M = total − reserve (the reserve is held back exactly). Each channel
earns on its own response curve R, which covers the whole horizon; split into periods, period p
earns weight_p · share_p · R(x / share_p) (seasonality weight, share of the horizon: equal
unless given), so an even proportional split returns R(total). The plan maximises expected
return (or reaches a target return at least cost, maximises profit, or keeps return/spend above
a target ROI) subject to
- spend ≤ M;
- per-channel min/max (a hard floor, or "at least min if used at all");
- channel-group share bounds (brand ≥ 20 %);
- per-period spend caps;
- incremental mode: each channel within ±x % of a previous allocation.
Curves become piecewise-linear segments (`curves`); concave runs are exact LP pieces and
non-concave runs and all-or-nothing deals get binaries, so the answer is the global optimum of
the approximation: a MILP built as arrays (`formulation`) and solved with tangent gating
(`milp`: binaries only where a plan sits inside an S-curve's non-concave stretch, starting from
the concave-envelope LP's plan and bound, each curve narrowed to where a plan as good can
spend by the LP's row prices: `windows`) by HiGHS through its matrix interface, or by CBC
through PuLP (`backends`), within the time limit or until the caller's `stop()`. A concave
problem whose only constraints are the budget and per-channel bounds is solved exactly by a
greedy that selects the budget's level among the segments' slopes without sorting them
(`greedy`), which agrees with the MILP and takes a fraction of a second at 1,000 channels ×
52 periods; with period caps too, the same greedy with a price per capped period picks the few
segments around each cell's threshold and a small LP over them is proven optimal by its
Lagrangian bound over every segment (`period_prices`). `rounding` makes the cents add up,
`assembly` describes the plan, and `infeasibility` names the smallest change that makes an
impossible request possible.

    >>> from decimal import Decimal
    >>> problem = Problem(total=Decimal("1000"), decimals=2, reserve=Reserve(percent=Decimal(10)),
    ...                   channels=(Channel("search", Linear(Decimal("2"))),))
    >>> solve(problem).spend
    Decimal('900.00')
"""
from services.budget.optimizer.answer import (
                                              Allocation,
                                              ChannelAllocation,
                                              Conflict,
                                              Infeasible,
                                              PeriodAllocation,
                                              Progress,
                                              SolveTimeout,
                                              TooSteep,
)
from services.budget.optimizer.checks import Issue, check_channel, check_problem
from services.budget.optimizer.problem import (
                                              Channel,
                                              Deal,
                                              Group,
                                              Hill,
                                              Incremental,
                                              Linear,
                                              Objective,
                                              Period,
                                              Points,
                                              Problem,
                                              Reserve,
                                              Response,
                                              SolverName,
)
from services.budget.optimizer.solver import solve

__all__ = [
    "Allocation", "Channel", "ChannelAllocation", "Conflict", "Deal", "Group", "Hill",
    "Incremental", "Infeasible", "Issue", "Linear", "Objective", "Period", "PeriodAllocation",
    "Points", "Problem", "Progress", "Reserve", "Response", "SolveTimeout", "SolverName", "TooSteep",
    "check_channel",
    "check_problem", "solve",
]
