"""The answer: a rounded plan scored on the true curves, with its bindings and error bound."""
import math
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from services.budget.optimizer.answer import Allocation, ChannelAllocation, PeriodAllocation
from services.budget.optimizer.problem import Channel
from services.budget.optimizer.rounding import Rounded, round_allocation
from services.budget.optimizer.scaled import EPS, Cell, ScaledProblem, Solution
from shared.money import quantum

RATIO_PLACES = Decimal("0.000001")


def approximation_error(model: ScaledProblem, cells: list[Cell], solution: Solution) -> float:
    """Bound how far the true optimum can lie above the plan, relative to the plan's return.

    No plan's true return exceeds the model's by more than the sum of each curve's largest rise
    above its pieces, and the model's optimum is at most this plan's model return plus the gap,
    so true optimum − this plan's true return ≤ model optimum − true return + Σ rises.
    """
    true = float(model.true_returns(cells, solution.spend).sum())
    rises = sum(cell.weight * cell.segments.error for cell in cells if cell.segments is not None)
    model_optimum = solution.model_return * (1 + (solution.gap or 0.0))
    bound = max(model_optimum - true + rises, 0.0)
    return bound / true if true > EPS else (0.0 if bound <= EPS else math.inf)


def allocation(model: ScaledProblem, cells: list[Cell], solution: Solution, error: float,
               seconds: float) -> Allocation:
    """Round the solution to the minor unit and describe it: per channel and period amounts and
    true returns, marginal ROIs, the binding constraints."""
    problem = model.problem
    unit = quantum(problem.decimals)
    rounded = round_allocation(model, cells, solution.spend)
    amounts = np.array([float(a) for a in rounded.cells]) / model.unit
    earned = [_money(value, unit) for value in
              (model.true_returns(cells, amounts) * model.unit).tolist()]
    slopes = model.true_slopes(cells, amounts)
    where = {(cell.channel, cell.period): i for i, cell in enumerate(cells)}
    nothing = 0 * unit
    allocations: list[ChannelAllocation] = []
    binding_all: list[str] = []
    for c, channel in enumerate(problem.channels):
        periods = []
        channel_return = Decimal(0)
        mine = []
        for p, period in enumerate(model.periods):
            i = where.get((c, p))
            if i is None:   # nothing may be spent here (a zero cap)
                periods.append(PeriodAllocation(period.id, nothing, nothing))
                continue
            mine.append(i)
            channel_return += earned[i]
            periods.append(PeriodAllocation(period.id, rounded.cells[i], earned[i]))
        best = slopes[mine] if mine else np.zeros(0)
        best = best[~np.isnan(best)]
        binding = _channel_binding(model, channel, rounded.channels[c])
        binding_all.extend(f"{name}:{channel.id}" for name in binding)
        allocations.append(ChannelAllocation(
            channel=channel.id, amount=rounded.channels[c], expected_return=channel_return,
            marginal_roi=_ratio(float(best.max())) if len(best) else None,
            binding=tuple(binding), periods=tuple(periods) if problem.periods else ()))
    spend = sum((a.amount for a in allocations), Decimal(0))
    unspent = model.available - spend
    expected = sum((a.expected_return for a in allocations), Decimal(0))
    global_binding = _global_binding(model, rounded, spend, unspent, expected, unit)
    marginal = solution.marginal_value
    return Allocation(
        status="optimal" if solution.status == "optimal" else "feasible", total=problem.total,
        reserve=model.reserve, spend=spend, unspent=unspent, expected_return=expected,
        marginal_value_of_budget=None if marginal is None else _ratio(marginal),
        allocations=tuple(allocations), binding_constraints=tuple(global_binding + binding_all),
        approximation_error=round(float(error), 8), gap=solution.gap, solver=solution.solver,
        seconds=round(seconds, 4))


def _money(value: float, unit: Decimal) -> Decimal:
    return Decimal(repr(value)).quantize(unit, rounding=ROUND_HALF_EVEN)


def _ratio(value: float) -> Decimal:
    """Six decimals; a concave Hill curve's slope at zero spend is infinite, shown as 1e12."""
    if not math.isfinite(value):
        value = 1e12
    return Decimal(repr(round(value, 6))).quantize(RATIO_PLACES)


def _channel_binding(model: ScaledProblem, channel: Channel, amount: Decimal) -> list[str]:
    binding = []
    if channel.max is not None and amount == channel.max:
        binding.append("max")
    if channel.min is not None and amount == channel.min:
        binding.append("min")
    incremental = model.problem.incremental
    if incremental and channel.id in incremental.previous:
        previous = incremental.previous[channel.id]
        unit = quantum(model.problem.decimals)
        if abs(amount - previous * (1 + incremental.tolerance)) < unit:
            binding.append("incremental_max")
        if abs(amount - previous * (1 - incremental.tolerance)) < unit:
            binding.append("incremental_min")
    return binding


def _global_binding(model: ScaledProblem, rounded: Rounded, spend: Decimal, unspent: Decimal,
                    expected: Decimal, unit: Decimal) -> list[str]:
    problem = model.problem
    binding = ["budget"] if unspent == 0 else []
    slack = unit * max(len(problem.channels), 1)
    for group in problem.groups:
        amount = sum((rounded.channels[model.index[c]] for c in group.channels), Decimal(0))
        if group.min_share is not None and abs(amount - group.min_share * spend) <= slack:
            binding.append(f"group_min:{group.id}")
        if group.max_share is not None and abs(amount - group.max_share * spend) <= slack:
            binding.append(f"group_max:{group.id}")
    for p, period in enumerate(problem.periods):
        if period.cap is not None and rounded.periods[p] == period.cap:
            binding.append(f"period_cap:{period.id}")
    if problem.objective == "min_spend" and problem.target_return is not None \
            and expected - problem.target_return <= slack:
        binding.append("target_return")
    if problem.objective == "target_roi" and problem.target_roi is not None and spend > 0 and \
            expected - problem.target_roi * spend <= slack * problem.target_roi:
        binding.append("target_roi")
    return binding
