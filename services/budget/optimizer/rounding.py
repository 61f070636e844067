"""Round a solver's float plan to the currency's minor unit so that the money adds up exactly.

Largest-remainder rounding, in two levels: channel totals first (their sum is the solver's spend
rounded to the unit, never above the money available, each within its channel's bounds), then
each channel's periods (their sum is the channel total, each period within its cap), all
channels at once.
"""
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.budget.optimizer.answer import Units
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem

# A period without a cap has room for any plan (the most money is 1e15 with 4 decimals).
_UNCAPPED = 2**62


@dataclass(frozen=True)
class Rounded:
    """The plan in whole minor units: per cell, and its sums per channel and per period."""

    units: Units
    channels: Units
    periods: Units


def round_allocation(model: ScaledProblem, cells: Cells, spend: Floats) -> Rounded:
    """Per cell, channel and period: the plan in whole minor units, adding up exactly."""
    problem = model.problem
    scale = 10 ** problem.decimals
    to_units = model.unit * scale
    available = int(model.available * scale)
    channels = len(problem.channels)
    channel, period, is_deal = cells.channel, cells.period, cells.is_deal
    wanted_units = np.where(is_deal, 0.0, np.maximum(spend, 0.0) * to_units)

    # A deal counts as bought above EPS of scaled spend.
    deal_units = {i: _units(deal[0] * model.unit, scale) if spend[i] > EPS else 0
                  for i in np.flatnonzero(is_deal).tolist()
                  if (deal := cells[i].deal) is not None}
    wanted = np.bincount(channel, weights=wanted_units, minlength=channels).tolist()
    low = [_low(model, c, wanted[c], scale) for c in range(channels)]
    high: list[float] = [_high(model, c, scale) for c in range(channels)]
    target = min(round(sum(wanted)), available - sum(deal_units.values()))
    totals = largest_remainder(wanted, target, low, high)

    cell_units = np.zeros(len(cells), dtype=np.int64)
    curves = np.flatnonzero(~is_deal)
    if all(p.cap is None for p in model.periods):
        cell_units[curves] = _largest_remainder_by(channel[curves], wanted_units[curves],
                                                   np.asarray(totals, dtype=np.int64))
    else:
        room = np.array([_units(float(p.cap), scale) if p.cap is not None else _UNCAPPED
                         for p in model.periods], dtype=np.int64)
        for i, units in deal_units.items():
            room[cells[i].period] -= units
        cell_units[curves] = _largest_remainder_capped(
            channel[curves], period[curves], wanted_units[curves],
            np.asarray(totals, dtype=np.int64), room)
    for i, units in deal_units.items():
        cell_units[i] = units

    return Rounded(units=cell_units, channels=sum_by(channel, cell_units, channels),
                   periods=sum_by(period, cell_units, len(model.periods)))


def sum_by(index: npt.NDArray[np.intp], units: Units, size: int) -> Units:
    """Sums of `units` by `index` (0 … size − 1), exact (no float in between)."""
    sums = np.zeros(size, dtype=np.int64)
    np.add.at(sums, index, units)
    return sums


def largest_remainder(values: list[float], target: int, low: list[int],
                      high: list[float]) -> list[int]:
    """Integers near `values` summing to `target`, each within [low, high] where possible.

    Start from the floors (held in bounds), then give the missing units to the largest
    fractional parts, or take surplus units from the smallest.

    >>> largest_remainder([3333.33, 3333.33, 3333.34], 10000, [0, 0, 0], [10**6] * 3)
    [3333, 3333, 3334]
    """
    floors = [int(min(max(math.floor(v + 1e-6), lo), hi)) for v, lo, hi in zip(values, low, high)]
    missing = target - sum(floors)
    by_remainder = sorted(range(len(values)), key=lambda i: values[i] - floors[i], reverse=True)
    while missing > 0:
        # Whole rounds at once while every value that can grow takes a unit (a unit a round
        # took minutes for a plan far below its target: 2 M units over a few cells).
        growing = [i for i in by_remainder if floors[i] + 1 <= high[i]]
        rounds = min([missing // len(growing)] + [int(high[i] - floors[i]) for i in growing
                                                  if math.isfinite(high[i])]) if growing else 0
        if rounds > 1:
            for i in growing:
                floors[i] += rounds - 1
            missing -= (rounds - 1) * len(growing)
        grew = False
        for i in by_remainder:
            if missing and floors[i] + 1 <= high[i]:
                floors[i] += 1
                missing -= 1
                grew = True
        if not grew:
            break
    for i in reversed(by_remainder):
        if missing < 0 and floors[i] - 1 >= low[i]:
            floors[i] -= 1
            missing += 1
    return floors


def _largest_remainder_by(group: npt.NDArray[np.intp], values: Floats,
                          totals: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`largest_remainder` within each group at once, with no bounds but 0: per group, the
    floors plus a unit more for the largest fractional parts (a unit less for the smallest)."""
    floors = np.floor(values + 1e-6).astype(np.int64)
    missing = totals - np.bincount(group, weights=floors, minlength=len(totals)).astype(np.int64)
    counts = np.bincount(group, minlength=len(totals))
    # Every member gets the whole rounds of missing units; the rest goes by remainder.
    rounds = np.where(counts > 0, np.maximum(missing, 0) // np.maximum(counts, 1), 0)
    floors += rounds[group]
    missing -= rounds * counts
    order = np.lexsort((-(values - floors), group))
    floors[order] += _ranks(group[order], np.ones(len(values), dtype=bool)) < missing[group[order]]
    floors -= _given_back(group, values - floors, floors, np.maximum(-missing, 0))
    return floors


def _largest_remainder_capped(channel: npt.NDArray[np.intp], period: npt.NDArray[np.intp],
                              values: Floats, totals: npt.NDArray[np.int64],
                              room: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per cell, whole units near `values` such that each channel's add up to its total where
    the periods' `room` allows, and no period's pass its room.

    The floors, then a unit more for the cells by falling fractional part, across all channels
    (the largest first), while the cell's channel lacks units and its period has room: a cell a
    full period refuses leaves its channel's unit to the channel's next cell. That greedy is
    found in rounds, all channels and periods at once (deferred acceptance: each channel asks
    its best cells not yet refused for the units it lacks; each period keeps the best it is
    asked for and refuses the rest, for good, since it is only asked more from then on).
    A channel whose cells' periods are all full by then takes whole units where room is left
    (`largest_remainder`), or goes short (what it lacks stays unspent; no cap is passed).
    """
    channels, periods = len(totals), len(room)
    floors = np.floor(values + 1e-6).astype(np.int64)
    # A plan may pass a cap by the solver's tolerance (units on a large budget): such a period
    # first gives units back, from its smallest fractional parts.
    over = np.maximum(sum_by(period, floors, periods) - room, 0)
    floors -= _given_back(period, values - floors, floors, over)
    lacking = totals - sum_by(channel, floors, channels)
    floors -= _given_back(channel, values - floors, floors, np.maximum(-lacking, 0))
    lacking = np.maximum(lacking, 0)
    left = room - sum_by(period, floors, periods)
    rank = np.empty(len(values), dtype=np.intp)
    rank[np.argsort(floors - values, kind="stable")] = np.arange(len(values))
    by_channel, by_period = np.lexsort((rank, channel)), np.lexsort((rank, period))
    refused = np.zeros(len(values), dtype=bool)
    while True:
        asking = ~refused[by_channel]
        asked = np.zeros(len(values), dtype=bool)
        asked[by_channel] = asking & (_ranks(channel[by_channel], asking) <
                                      lacking[channel[by_channel]])
        offered = asked[by_period]
        kept = np.zeros(len(values), dtype=bool)
        kept[by_period] = offered & (_ranks(period[by_period], offered) < left[period[by_period]])
        if not (asked & ~kept).any():
            break
        refused |= asked & ~kept
    floors += kept
    lacking -= sum_by(channel, kept.astype(np.int64), channels)
    left -= sum_by(period, kept.astype(np.int64), periods)
    for c in np.flatnonzero(lacking > 0).tolist():
        mine = np.flatnonzero(channel == c)
        base = floors[mine]
        grown = np.asarray(largest_remainder(
            values[mine].tolist(), int(base.sum() + lacking[c]), base.tolist(),
            (base + left[period[mine]]).astype(float).tolist()), dtype=np.int64)
        left -= sum_by(period[mine], grown - base, periods)
        floors[mine] = grown
    return floors


def _given_back(group: npt.NDArray[np.intp], remainders: Floats, units: npt.NDArray[np.int64],
                count: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per member, 1 where it gives a unit back: in each group, `count` of its members that
    have a unit, those with the smallest fractional parts."""
    if not count.any():
        return np.zeros(len(units), dtype=np.int64)
    order = np.lexsort((remainders, group))
    giving = units[order] >= 1
    given = np.zeros(len(units), dtype=np.int64)
    given[order] = giving & (_ranks(group[order], giving) < count[group[order]])
    return given


def _ranks(group: npt.NDArray[np.intp], flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """Per position of `group` (sorted), how many flagged positions of its group come before."""
    before: npt.NDArray[np.intp] = np.cumsum(flags) - flags
    if not len(group):
        return before
    starts = np.r_[True, group[1:] != group[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(group)), 0))
    ranks: npt.NDArray[np.intp] = before - before[first]
    return ranks


def _units(amount: float, scale: int) -> int:
    return int(round(amount * scale))


def _low(model: ScaledProblem, c: int, wanted: float, scale: int) -> int:
    """The channel's floor in units: its min (if used when that is the rule) and incremental low."""
    channel = model.problem.channels[c]
    floor = 0
    if channel.min is not None and (not channel.min_if_used or wanted >= 0.5):
        floor = _units(float(channel.min), scale)
    return max(floor, math.ceil(model.lower[c] * model.unit * scale - 1e-6))


def _high(model: ScaledProblem, c: int, scale: int) -> int:
    return math.floor(model.upper[c] * model.unit * scale + 1e-6)
