"""The exact greedy for concave curves under one budget and per-channel bounds.

With concave curves, a budget and per-channel floors and caps, the optimum fills segments in
order of falling slope: first each channel's best segments up to its floor, then every segment
while its channel is under its cap and money is left. This is what the LP would find, in
milliseconds instead of seconds at a million segments; tests hold the two to the same answer.
"""
import numpy as np
import numpy.typing as npt

from services.budget.optimizer.curves import Floats, Segments
from services.budget.optimizer.scaled import EPS, Cell, ScaledProblem, Solution

Indices = npt.NDArray[np.intp]


def applies(model: ScaledProblem, cells: list[Cell]) -> bool:
    """Whether the greedy is exact for this problem (else the MILP solves it)."""
    problem = model.problem
    return (problem.objective in ("max_return", "max_profit")
            and not problem.groups
            and all(period.cap is None for period in problem.periods)
            and not any(c.min_if_used and c.min is not None for c in problem.channels)
            and all(cell.segments is not None and cell.segments.gated == 0 for cell in cells)
            and all(low <= high + EPS for low, high in zip(model.lower, model.upper))
            and sum(model.lower) <= model.budget + EPS)


def solve(model: ScaledProblem, cells: list[Cell]) -> Solution:
    """Fill segments by falling slope: floors first, then caps and the budget (see `applies`)."""
    curves = [_segments(cell) for cell in cells]
    cell_of = np.repeat(np.arange(len(cells)), [len(s.lengths) for s in curves])
    lengths = np.concatenate([s.lengths for s in curves]) if cells else np.zeros(0)
    slopes = np.concatenate([s.slopes * c.weight for s, c in zip(curves, cells)]) if cells \
        else np.zeros(0)
    channel = np.array([cell.channel for cell in cells], dtype=int)[cell_of]
    order = np.argsort(-slopes, kind="stable")
    lower = np.asarray(model.lower)[channel]
    # A cap equal to the whole budget is the budget itself: leave it to the budget, so that
    # the marginal value reports what one more unit of budget would earn.
    caps = np.asarray(model.upper)
    upper = np.where(caps < model.budget - EPS, caps, np.inf)[channel]

    floor_fill = _fill_within_channel(order, channel, lengths, lower)
    threshold = 1.0 if model.problem.objective == "max_profit" else 0.0
    remaining = np.where(slopes > threshold, lengths - floor_fill, 0.0)
    capped = _fill_within_channel(order, channel, remaining, np.maximum(upper - lower, 0.0))
    money = model.budget - floor_fill.sum()
    before = np.cumsum(capped[order]) - capped[order]
    paid = np.zeros_like(capped)
    paid[order] = np.clip(money - before, 0.0, capped[order])
    fill = floor_fill + paid

    cut = np.nonzero(paid[order] < capped[order] - EPS)[0]
    marginal = float(slopes[order][cut[0]] - threshold) if len(cut) else 0.0
    spend = np.bincount(cell_of, weights=fill, minlength=len(cells)).astype(np.float64)
    return Solution(spend=spend, status="optimal", gap=0.0, solver="greedy",
                    marginal_value=marginal, model_return=float(fill @ slopes))


def _segments(cell: Cell) -> Segments:
    assert cell.segments is not None   # `applies` admits no deal
    return cell.segments


def _fill_within_channel(order: Indices, channel: Indices, lengths: Floats,
                         limit: Floats) -> Floats:
    """Fill each channel's segments in `order` until the channel reaches its `limit`."""
    # A stable sort by channel of the slope order: each channel's segments, best first.
    by_channel = order[np.argsort(channel[order], kind="stable")]
    sorted_lengths = lengths[by_channel]
    cumulative = np.cumsum(sorted_lengths) - sorted_lengths
    starts = np.r_[True, channel[by_channel][1:] != channel[by_channel][:-1]] if len(order) else \
        np.zeros(0, dtype=bool)
    group_base = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    before = cumulative - cumulative[group_base]
    fill = np.empty_like(lengths)
    fill[by_channel] = np.clip(limit[by_channel] - before, 0.0, sorted_lengths)
    return fill
