"""The reference for `test_greedy`: the greedy as it was before it kept each curve once
(commit b315f01), laying every cell's segments out in one array. Kept as an independent
implementation to hold the new one to the same plan; not used by the service.

The exact greedy for concave curves under one budget and per-channel bounds.

With concave curves, a budget and per-channel floors and caps, the optimum fills segments in
order of falling slope: each channel at least to its floor with its best segments, then every
segment steeper than a threshold λ while its channel is under its cap, λ being the lowest
slope at which the money runs out (the budget's shadow price). So no sort is needed: λ is found
by selection (on many segments, first one pass against a sorted sample of pivots, keeping only
those between the two pivots around λ; then quickselect, each round a pivot and one pass that
counts what each channel would take above it, keeping the part of the candidates λ lies in),
and then each capped or floored channel's own level the same way, all channels at once. This
is what the LP would find, in a fraction of a second at millions of segments; tests hold the
two to the same answer.
"""
import numpy as np
import numpy.typing as npt

from services.budget.optimizer.curves import Floats, Segments
from services.budget.optimizer.scaled import EPS, Cell, Cells, ScaledProblem, Solution

Indices = npt.NDArray[np.intp]
# Above this many segments the budget's level is first bracketed between this many pivots.
_BUCKETED, _PIVOTS = 50_000, 256


def applies(model: ScaledProblem, cells: Cells) -> bool:
    """Whether the greedy is exact for this problem (else the MILP solves it)."""
    problem = model.problem
    return (problem.objective in ("max_return", "max_profit")
            and not problem.groups
            and all(period.cap is None for period in problem.periods)
            and not any(c.min_if_used and c.min is not None for c in problem.channels)
            and all(cell.segments is not None and cell.segments.gated == 0 for cell in cells)
            and all(low <= high + EPS for low, high in zip(model.lower, model.upper))
            and sum(model.lower) <= model.budget + EPS)


def solve(model: ScaledProblem, cells: Cells) -> Solution:
    """Fill segments by falling slope: floors first, then caps and the budget (see `applies`)."""
    slopes, lengths, cell_of, channel = _flatten(model, cells)
    channels = len(model.lower)
    lower = np.asarray(model.lower, dtype=float)
    # A cap equal to the whole budget is the budget itself: leave it to the budget, so that
    # the marginal value reports what one more unit of budget would earn.
    caps = np.asarray(model.upper, dtype=float)
    upper = np.where(caps < model.budget - EPS, caps, np.inf)
    threshold = 1.0 if model.problem.objective == "max_profit" else 0.0

    steep = slopes > threshold
    taken = _sum_by(channel[steep], lengths[steep], channels)
    if np.clip(taken, lower, upper).sum() <= model.budget:
        # Money is left when every segment worth more than it costs is bought.
        level, above, ties, marginal = threshold, taken, np.zeros(channels), 0.0
        target = np.clip(taken, lower, upper)
    else:
        level, above, ties = _budget_level(slopes[steep], lengths[steep], channel[steep],
                                           lower, upper, model.budget)
        least = np.clip(above, lower, upper)
        room = np.clip(above + ties, lower, upper) - least
        # Money left at the level goes to its ties in channel order, as a stable sort would.
        left = model.budget - least.sum()
        target = least + np.clip(left - (np.cumsum(room) - room), 0.0, room)
        marginal = level - threshold
    # A channel whose target lies between what it has above the level and that plus its ties
    # fills to the level too; only the others (at a floor or a cap) need a level of their own.
    slack = EPS * np.maximum(target, 1.0)
    known = (above - slack <= target) & (target <= above + ties + slack)
    fill = _fill_to(slopes, lengths, channel, target, np.where(known, level, np.nan))
    spend = _sum_by(cell_of, fill, len(cells))
    return Solution(spend=spend, status="optimal", gap=0.0, solver="greedy",
                    marginal_value=marginal, model_return=float(fill @ slopes))


def _flatten(model: ScaledProblem, cells: Cells) -> tuple[Floats, Floats, Indices, Indices]:
    """Every cell's segments in one array (slopes weighted, lengths, their cell and channel),
    cell by cell. A channel's periods share one `Segments` (the curve cache), so each is read
    once and repeated, not concatenated cell by cell."""
    ids = np.fromiter((id(cell.segments) for cell in cells), dtype=np.int64, count=len(cells))
    _, first_cell, base_of = np.unique(ids, return_index=True, return_inverse=True)
    bases = [_segments(cells[i]) for i in first_cell]
    weight, cell_channel = cells.weight, cells.channel
    if not bases:
        empty = np.zeros(0)
        return empty, empty, np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    sizes = np.array([len(s.lengths) for s in bases], dtype=np.intp)
    starts = np.cumsum(sizes) - sizes
    counts = sizes[base_of]
    cell_of = np.repeat(np.arange(len(cells), dtype=np.intp), counts)
    first = np.cumsum(counts) - counts
    index = np.arange(len(cell_of), dtype=np.intp) - first[cell_of] + starts[base_of][cell_of]
    slopes = np.concatenate([s.slopes for s in bases])[index] * weight[cell_of]
    lengths = np.concatenate([s.lengths for s in bases])[index]
    return slopes, lengths, cell_of, cell_channel[cell_of]


def _segments(cell: Cell) -> Segments:
    assert cell.segments is not None   # `applies` admits no deal
    return cell.segments


def _budget_level(slopes: Floats, lengths: Floats, channel: Indices, lower: Floats,
                  upper: Floats, budget: float) -> tuple[float, Floats, Floats]:
    """The lowest slope λ at which the channels, each held within its bounds, take no more than
    the budget from the segments steeper than λ; with what each channel has above λ and at it.

    Quickselect: λ is always one of the candidates' slopes, and each round's pivot either
    settles every candidate above it (λ is at or below it) or drops every one at or below it.
    """
    rng = np.random.default_rng(0)
    channels = len(lower)
    base = np.zeros(channels)
    if len(slopes) > _BUCKETED:
        # One pass against many pivots at once (a sorted sample) leaves only the segments
        # between the two pivots around λ, about one in _PIVOTS, for the rounds below.
        pivots = np.unique(rng.choice(slopes, _PIVOTS))
        bucket = np.searchsorted(pivots, slopes)        # pivots[b − 1] < slope ≤ pivots[b]
        per = _sum_by(channel * (len(pivots) + 1) + bucket, lengths,
                      channels * (len(pivots) + 1)).reshape(channels, len(pivots) + 1)
        # above[:, b]: what each channel has strictly above pivots[b].
        above = np.cumsum(per[:, ::-1], axis=1)[:, ::-1][:, 1:]
        fits = np.clip(above, lower[:, None], upper[:, None]).sum(axis=0) <= budget
        if fits.any():
            # λ lies in (pivots[low − 1], pivots[low]], low the lowest pivot within the
            # budget: every segment above pivots[low] is taken.
            low = int(np.argmax(fits))
            base = above[:, low].copy()
            keep = bucket == low
        else:
            keep = bucket == len(pivots)                # λ is above every pivot
        slopes, lengths, channel = slopes[keep], lengths[keep], channel[keep]
    while True:
        top, bottom = slopes.max(), slopes.min()
        if top == bottom:
            ties = _sum_by(channel, lengths, channels)
            return float(top), base, ties
        pivot = slopes[rng.integers(len(slopes))]
        if pivot == top:
            pivot = slopes[slopes < top].max()   # a pivot at the top would settle nothing
        above_pivot = slopes > pivot
        taken = base + _sum_by(channel[above_pivot], lengths[above_pivot], channels)
        if np.clip(taken, lower, upper).sum() <= budget:
            base, keep = taken, ~above_pivot
        else:
            keep = above_pivot
        slopes, lengths, channel = slopes[keep], lengths[keep], channel[keep]


def _fill_to(slopes: Floats, lengths: Floats, channel: Indices, target: Floats,
             level: Floats) -> Floats:
    """Per segment, how much of it each channel fills to spend `target`, steepest first.

    Each channel's level μ (the lowest slope whose steeper segments stay within its target;
    given in `level` where known, NaN where not) is found by a quickselect run for all those
    channels at once, each with its own random pivot; the segments at μ share what is left of
    the target in order.
    """
    rng = np.random.default_rng(0)
    channels = len(target)
    searching = np.isnan(level)
    total = _sum_by(channel, lengths, channels)
    # A channel that takes all of its segments, or none, has no level to find.
    whole = searching & (target >= total - EPS * np.maximum(total, 1.0))
    level = np.where(whole, -np.inf, np.where(searching & (target <= 0), np.inf, level))
    searching &= ~whole & (target > 0)
    base = np.zeros(channels)
    candidates = np.flatnonzero(searching[channel])
    while len(candidates):
        mine = channel[candidates]
        values = slopes[candidates]
        counts = np.bincount(mine, minlength=channels)
        present = np.flatnonzero(counts)
        firsts = np.cumsum(counts) - counts
        top = np.full(channels, -np.inf)
        bottom = np.full(channels, np.inf)
        top[present] = np.maximum.reduceat(values, firsts[present])
        bottom[present] = np.minimum.reduceat(values, firsts[present])
        done = present[top[present] == bottom[present]]
        level[done] = top[done]
        pivot = np.full(channels, np.inf)
        draw = firsts + (rng.random(channels) * counts).astype(np.intp)
        pivot[present] = values[np.minimum(draw[present], len(values) - 1)]
        pivot[done] = np.inf
        # A pivot at a channel's top would settle nothing: take the next slope below it.
        at_top = (pivot == top) & np.isfinite(pivot)
        if at_top.any():
            below = np.where(values < top[mine], values, -np.inf)
            second = np.full(channels, -np.inf)
            np.maximum.at(second, mine, below)
            pivot[at_top] = second[at_top]
        above = values > pivot[mine]
        taken = base + _sum_by(mine[above], lengths[candidates][above], channels)
        settles = taken <= target
        base = np.where(settles & np.isfinite(pivot), taken, base)
        keep = np.where(settles[mine], ~above, above) & np.isfinite(pivot[mine])
        candidates = candidates[keep]
    fill = np.where(slopes > level[channel], lengths, 0.0)
    at = np.flatnonzero(slopes == level[channel])
    if len(at):
        # Ties at a channel's level share what is left of its target, in segment order.
        owner = channel[at]
        left = target - _sum_by(channel, fill, channels)
        cumulative = np.cumsum(lengths[at])
        before = cumulative - lengths[at]
        starts = np.r_[True, owner[1:] != owner[:-1]]
        group_base = before[np.maximum.accumulate(np.where(starts, np.arange(len(at)), 0))]
        fill[at] = np.clip(left[owner] - (before - group_base), 0.0, lengths[at])
    return fill


def _sum_by(index: Indices, values: Floats, size: int) -> Floats:
    """Sums of `values` by `index` (0 … size − 1)."""
    return np.asarray(np.bincount(index, weights=values, minlength=size), dtype=np.float64)
