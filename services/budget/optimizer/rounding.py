"""Round a solver's float plan to the currency's minor unit so that the money adds up exactly.

Largest-remainder rounding, in two levels: channel totals first (their sum is the solver's spend
rounded to the unit, never above the money available, each within its channel's bounds), then
each channel's periods (their sum is the channel total, each period within its cap).
"""
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.budget.optimizer.answer import Units
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem


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
        # Period caps are shared by the channels, so each channel's periods are rounded in
        # turn against what the channels before it left.
        period_left = [_units(float(p.cap), scale) if p.cap is not None else math.inf
                       for p in model.periods]
        for i, units in deal_units.items():
            period_left[cells[i].period] -= units
        order = curves[np.argsort(channel[curves], kind="stable")]
        starts = np.searchsorted(channel[order], np.arange(channels + 1))
        for c in range(channels):
            mine = order[starts[c]:starts[c + 1]].tolist()
            caps = [period_left[cells[i].period] for i in mine]
            for i, units in zip(mine, largest_remainder(wanted_units[mine].tolist(), totals[c],
                                                        [0] * len(mine), caps)):
                cell_units[i] = units
                period_left[cells[i].period] -= units
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
    rank = np.empty(len(values), dtype=np.int64)
    starts = np.cumsum(counts) - counts
    rank[order] = np.arange(len(values)) - starts[group[order]]
    floors += rank < missing[group]
    # Surplus units come off the smallest fractional parts of members that have one to give.
    surplus = np.maximum(-missing, 0)
    if surplus.any():
        giving = floors[order] >= 1
        givers: npt.NDArray[np.int64] = np.r_[0, np.cumsum(giving)]
        owner = group[order]
        # Among its group's givers, in falling remainder: its position and how many there are.
        position = givers[:-1] - givers[starts][owner]
        count = (givers[starts + counts] - givers[starts])[owner]
        floors[order] -= giving & (position >= count - surplus[owner])
    return floors


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
