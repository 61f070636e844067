"""The answer: a rounded plan scored on the true curves, with its bindings and error bound."""
import math
import time
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from services.budget.optimizer.answer import (
    RATIO_PLACES,
    Allocation,
    Conflict,
    Figures,
    Infeasible,
)
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.infeasibility import share_conflict
from services.budget.optimizer.marginal import next_unit_value
from services.budget.optimizer.problem import Channel
from services.budget.optimizer.rounding import Rounded, round_allocation, sum_by
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem, Solution
from shared.money import quantum

# Pricing the budget (`marginal`) takes about PRICE_PER_CELL a cell on top of PRICE_FIXED:
# 0.2-0.4 s for 5,460 cells (200 x 26) on a loaded machine, a third of that on an idle one. It
# is done only when that fits in what is left of the time limit, and never longer than
# PRICE_MOST (after a cancel too, which the assembly does not hear): a price is worth less
# than keeping the limit.
PRICE_FIXED, PRICE_PER_CELL, PRICE_MOST = 0.05, 6e-5, 0.5


def approximation_error(model: ScaledProblem, cells: Cells, solution: Solution) -> float:
    """Bound how far the true optimum can lie above the plan, relative to the plan's return.

    No plan's true return exceeds the model's by more than the sum of each curve's largest rise
    above its pieces, and the model's optimum is at most this plan's model return plus the gap,
    so true optimum − this plan's true return ≤ model optimum − true return + Σ rises.
    A `min_spend` plan that spends nothing is exact: no plan spends less (the curves' rises,
    which would make the bound infinite over a return of 0, do not matter to it).
    """
    if model.problem.objective == "min_spend" and float(np.sum(solution.spend)) <= EPS:
        return 0.0
    true = float(model.true_returns(cells, solution.spend).sum())
    distinct, curve = cells.curve_of
    errors = np.array([0.0 if segments is None else segments.error for segments in distinct])[curve]
    rises = float(cells.weight @ errors)
    model_optimum = solution.model_return * (1 + (solution.gap or 0.0))
    bound = max(model_optimum - true + rises, 0.0)
    return bound / true if true > EPS else (0.0 if bound <= EPS else math.inf)


def allocation(model: ScaledProblem, cells: Cells, solution: Solution, error: float,
               seconds: float, *, stopped: bool = False) -> Allocation:
    """Round the solution to the minor unit and describe it: per channel and period amounts and
    true returns, marginal ROIs, the binding constraints, the budget's marginal value (of the
    plan's own model where the solver gave none and the solve was not `stopped`: `marginal`);
    `seconds` is the time the solve took."""
    entered = time.perf_counter()
    problem = model.problem
    unit = quantum(problem.decimals)
    scale = 10 ** problem.decimals
    rounded = round_allocation(model, cells, solution.spend)
    broken = _broken_shares(model, rounded.channels)
    if broken:
        raise Infeasible(broken)
    amounts = rounded.units / (model.unit * scale)
    channels, channel, period = len(problem.channels), cells.channel, cells.period
    # Returns in whole minor units, half to even, so that a channel's is its periods' sum.
    exact = model.true_returns(cells, amounts)
    earned = np.rint(exact * model.unit * scale).astype(np.int64)
    error = _with_rounding(model, cells, solution, float(exact.sum()), error)
    returns = sum_by(channel, earned, channels)
    slopes = model.true_slopes(cells, amounts)
    best = np.full(channels, -np.inf)
    known = ~np.isnan(slopes)
    np.maximum.at(best, channel[known], slopes[known])
    # The grid of channels × periods; a cell that is not there (a zero cap) spent nothing.
    width = len(problem.periods)
    cell_amounts = np.zeros((channels, width), dtype=np.int64)
    cell_returns = np.zeros((channels, width), dtype=np.int64)
    if width:
        cell_amounts[channel, period] = rounded.units
        cell_returns[channel, period] = earned
    figures = Figures(decimals=problem.decimals, periods=tuple(p.id for p in problem.periods),
                      amounts=rounded.channels, returns=returns, cell_amounts=cell_amounts,
                      cell_returns=cell_returns)
    channel_amounts = figures.money(rounded.channels)
    binding = tuple(tuple(_channel_binding(model, channel_in, amount))
                    for channel_in, amount in zip(problem.channels, channel_amounts))
    spend = int(rounded.channels.sum()) * unit
    unspent = model.available - spend
    expected = int(returns.sum()) * unit
    global_binding = _global_binding(model, rounded, channel_amounts, spend, unspent, expected,
                                     unit)
    # The next unit on the true curves; the solver's price on the pieces (a cancel's answer
    # comes within its second) only where that is not found. min_spend's least spend does not
    # fall with more money (a plan within this budget is within a larger one, and one past it
    # spends more), so there one more unit is worth 0, the plan's choices kept or not; a plan
    # cut from the plan of most return has no own model meeting the target to price it.
    marginal = 0.0 if problem.objective == "min_spend" else None if stopped else _priced(
        model, cells, solution, problem.time_limit - seconds - (time.perf_counter() - entered))
    if marginal is None and solution.marginal_value is not None:
        marginal = _past_the_cut(model, cells, amounts, slopes, solution.marginal_value)
    return Allocation(
        status="optimal" if solution.status == "optimal" else "feasible", total=problem.total,
        reserve=model.reserve, spend=spend, unspent=unspent, expected_return=expected,
        marginal_value_of_budget=None if marginal is None else ratio(marginal),
        channels=tuple(c.id for c in problem.channels),
        marginal_roi=tuple(ratio(value) if value > -np.inf else None
                           for value in best.tolist()),
        binding=binding, figures=figures,
        binding_constraints=tuple(global_binding) + tuple(
            f"{name}:{channel_in.id}" for channel_in, names in zip(problem.channels, binding)
            for name in names),
        approximation_error=round(float(error), 8), gap=solution.gap, solver=solution.solver,
        seconds=round(seconds, 4))


def _broken_shares(model: ScaledProblem, units: npt.NDArray[np.int64]) -> list[Conflict]:
    """Each group whose share the rounded plan (whole minor units per channel) does not hold,
    with its share changed as far as the plan needs (`share_conflict`). The solver holds a
    share to its tolerance, about 1e-7 of the money, which whole cents can pass where no split
    holds it: a's min of 40,000.01 and b's share of at least half, under caps of 80,000, were
    answered `optimal` as 40,000.01 and 39,999.99 (trial 18f, c4)."""
    total = int(units.sum())
    broken = []
    for group in model.problem.groups if total else ():
        share = Decimal(int(units[model.members(group)].sum())) / total
        if group.min_share is not None and share < group.min_share:
            broken.append(share_conflict(group, "group_min", float(group.min_share - share)))
        if group.max_share is not None and share > group.max_share:
            broken.append(share_conflict(group, "group_max", float(share - group.max_share)))
    return broken


def _with_rounding(model: ScaledProblem, cells: Cells, solution: Solution, kept: float,
                   error: float) -> float:
    """`error`, which bounds the optimum's lead over the solver's plan, made to bound it over
    the rounded plan that returns `kept` (scaled): rounding to the minor unit can lose return
    (3.6e-6 of it on 26,000 cells of a few dollars a week), and the answer is the rounded plan.
    A `min_spend` plan is judged by its spend, which rounding does not raise past the target's."""
    planned = float(model.true_returns(cells, solution.spend).sum())
    if model.problem.objective == "min_spend" or kept >= planned or not math.isfinite(error):
        return error
    return (error * planned + planned - kept) / kept if kept > EPS else math.inf


def _priced(model: ScaledProblem, cells: Cells, solution: Solution, left: float) -> float | None:
    """The next unit's value with the plan's choices kept (`marginal`), when it fits in the
    `left` seconds of the time limit (and PRICE_MOST)."""
    allowed = min(left, PRICE_MOST)
    if PRICE_FIXED + PRICE_PER_CELL * len(cells) > allowed:
        return None
    return next_unit_value(model, cells, solution.spend, seconds=allowed)


def _past_the_cut(model: ScaledProblem, cells: Cells, amounts: Floats, slopes: Floats,
                  marginal: float) -> float:
    """The budget's price where one cell holds all the money: each curve is cut where the money
    runs out, so the models price the budget at what the other cells pay, though the next unit
    earns that cell's slope (one S-curve taking a budget of 100,000: 0 where it is 1.76)."""
    problem = model.problem
    if problem.objective not in ("max_return", "max_profit") or model.budget <= EPS:
        return marginal
    full = np.flatnonzero((amounts >= model.budget * (1 - 1e-9)) & ~np.isnan(slopes))
    for i in full.tolist():
        channel, period = problem.channels[cells.channel[i]], cells.period[i]
        cap = problem.periods[period].cap if problem.periods else None
        if all(bound is None or bound > model.available for bound in (channel.max, cap)):
            slope = float(slopes[i]) - (problem.objective == "max_profit")
            marginal = max(marginal, slope)
    return marginal


def ratio(value: float) -> Decimal:
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


def _global_binding(model: ScaledProblem, rounded: Rounded, channels: list[Decimal],
                    spend: Decimal, unspent: Decimal, expected: Decimal,
                    unit: Decimal) -> list[str]:
    problem = model.problem
    binding = ["budget"] if unspent == 0 else []
    slack = unit * max(len(problem.channels), 1)
    for group in problem.groups:
        amount = sum((channels[i] for i in model.members(group)), Decimal(0))
        if group.min_share is not None and abs(amount - group.min_share * spend) <= slack:
            binding.append(f"group_min:{group.id}")
        if group.max_share is not None and abs(amount - group.max_share * spend) <= slack:
            binding.append(f"group_max:{group.id}")
    for p, period in enumerate(problem.periods):
        if period.cap is not None and int(rounded.periods[p]) * unit == period.cap:
            binding.append(f"period_cap:{period.id}")
    if problem.objective == "min_spend" and problem.target_return is not None \
            and expected - problem.target_return <= slack:
        binding.append("target_return")
    if problem.objective == "target_roi" and problem.target_roi is not None and spend > 0 and \
            expected - problem.target_roi * spend <= slack * problem.target_roi:
        binding.append("target_roi")
    return binding
