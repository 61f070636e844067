"""Round a solver's float plan to the currency's minor unit so that the money adds up exactly.

Largest-remainder rounding, in two levels: channel totals first (their sum is the solver's spend
rounded to the unit, never above the money available, each within its channel's bounds), then
each channel's periods (their sum is the channel total, each period within its cap).
"""
import math
from dataclasses import dataclass
from decimal import Decimal

from services.budget.optimizer.curves import Floats
from services.budget.optimizer.scaled import EPS, Cell, ScaledProblem
from shared.money import quantum


@dataclass(frozen=True)
class Rounded:
    cells: list[Decimal]
    channels: list[Decimal]
    periods: list[Decimal]


def round_allocation(model: ScaledProblem, cells: list[Cell], spend: Floats) -> Rounded:
    """Per cell, channel and period: the plan in whole minor units, adding up exactly."""
    problem = model.problem
    scale = 10 ** problem.decimals
    to_units = model.unit * scale
    available = int(model.available * scale)

    # A deal counts as bought above EPS of scaled spend.
    deal_units = {i: _units(cell.deal[0] * model.unit, scale) if spend[i] > EPS else 0
                  for i, cell in enumerate(cells) if cell.deal is not None}
    flows: list[list[float]] = [[] for _ in problem.channels]
    for i, cell in enumerate(cells):
        if cell.deal is None:
            flows[cell.channel].append(max(float(spend[i]), 0.0) * to_units)
    wanted = [sum(f) for f in flows]
    low = [_low(model, c, wanted[c], scale) for c in range(len(problem.channels))]
    high: list[float] = [_high(model, c, scale) for c in range(len(problem.channels))]
    target = min(round(sum(wanted)), available - sum(deal_units.values()))
    totals = largest_remainder(wanted, target, low, high)

    period_left = [_units(float(p.cap), scale) if p.cap is not None else math.inf
                   for p in model.periods]
    for i, units in deal_units.items():
        period_left[cells[i].period] -= units
    cell_units = [0] * len(cells)
    by_channel: list[list[int]] = [[] for _ in problem.channels]
    for i, cell in enumerate(cells):
        if cell.deal is None:
            by_channel[cell.channel].append(i)
    for c, mine in enumerate(by_channel):
        values = [max(float(spend[i]), 0.0) * to_units for i in mine]
        caps = [period_left[cells[i].period] for i in mine]
        for i, units in zip(mine, largest_remainder(values, totals[c], [0] * len(mine), caps)):
            cell_units[i] = units
            period_left[cells[i].period] -= units
    for i, units in deal_units.items():
        cell_units[i] = units

    unit = quantum(problem.decimals)
    as_money = [Decimal(u) * unit for u in cell_units]
    channels = [Decimal(0) * unit] * len(problem.channels)
    periods = [Decimal(0) * unit] * len(model.periods)
    for cell, amount in zip(cells, as_money):
        channels[cell.channel] += amount
        periods[cell.period] += amount
    return Rounded(as_money, channels, periods)


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
