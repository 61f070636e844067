"""The problem in floats, as the solvers see it: money divided by the money available, so the
budget is 1, and each channel in each period a `Cell` with its curve as segments."""
import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from services.budget.optimizer.curves import (
    Floats,
    Segments,
    hill,
    hill_segments,
    hill_slope,
    linear_segments,
    points_segments,
)
from services.budget.optimizer.problem import Deal, Hill, Linear, Period, Points, Problem

# Scaled money is 1 for the whole budget; a cent on a billion is 1e-11, so 1e-9 is "equal".
EPS = 1e-9


@dataclass(frozen=True)
class Cell:
    """One channel in one period: its curve as segments, or its deal."""

    channel: int
    period: int
    weight: float
    upper: float
    segments: Segments | None          # None for a deal
    deal: tuple[float, float] | None   # (cost, value), scaled


@dataclass
class Solution:
    """A solver's plan before rounding: spend per cell, scaled."""

    spend: Floats
    status: str
    gap: float | None
    solver: str
    marginal_value: float | None
    model_return: float        # objective-side return of the piecewise-linear model, scaled


class ScaledProblem:
    """`problem` with money divided by the money available (total − reserve)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.reserve = problem.reserve.of(problem.total, problem.decimals)
        self.available = problem.total - self.reserve
        self.unit = float(self.available) if self.available > 0 else 1.0
        self.budget = float(self.available) / self.unit
        self.periods = problem.periods or (Period(id=""),)
        self.index = {c.id: i for i, c in enumerate(problem.channels)}
        self.lower, self.upper = self._bounds()
        self._cache: dict[tuple[int, float, float], Segments] = {}

    def money(self, amount: Decimal) -> float:
        """`amount` scaled."""
        return float(amount) / self.unit

    def optional_money(self, amount: Decimal | None) -> float | None:
        return None if amount is None else self.money(amount)

    def _bounds(self) -> tuple[list[float], list[float]]:
        """Per channel: hard floor and cap, scaled; incremental bounds folded in."""
        lower, upper = [], []
        incremental = self.problem.incremental
        for channel in self.problem.channels:
            low = 0.0 if channel.min_if_used or channel.min is None else self.money(channel.min)
            high = self.budget if channel.max is None else min(self.money(channel.max), self.budget)
            if incremental and channel.id in incremental.previous:
                previous = self.money(incremental.previous[channel.id])
                share = float(incremental.tolerance)
                low, high = max(low, previous * (1 - share)), min(high, previous * (1 + share))
            lower.append(low)
            upper.append(high)
        return lower, upper

    def cells(self, tolerance: float) -> list[Cell]:
        """Every (channel, period) where money may go, its curve within `tolerance` (of the
        curve's value at its cap) of its segments."""
        cells = []
        for c, channel in enumerate(self.problem.channels):
            for p, period in enumerate(self.periods):
                cap = self.optional_money(period.cap)
                upper = min(self.upper[c], cap if cap is not None else math.inf)
                weight = float(period.weight)
                response = channel.response
                if isinstance(response, Deal):
                    deal = (self.money(response.cost), self.money(response.value) * weight)
                    cells.append(Cell(c, p, weight, upper, None, deal))
                elif upper > EPS:
                    cells.append(Cell(c, p, weight, upper,
                                      self._segments(response, upper, tolerance), None))
        return cells

    def _segments(self, response: Linear | Points | Hill, upper: float,
                  tolerance: float) -> Segments:
        key = (id(response), upper, tolerance)
        if key not in self._cache:
            if isinstance(response, Linear):
                segments = linear_segments(float(response.roi), upper)
            elif isinstance(response, Points):
                points = [(float(s) / self.unit, float(r) / self.unit) for s, r in response.points]
                segments = points_segments(points, upper)
            else:
                beta, k = float(response.beta) / self.unit, float(response.k) / self.unit
                alpha = float(response.alpha)
                segments = hill_segments(
                    beta, k, alpha, upper, tolerance * float(hill(upper, beta, k, alpha)))
            self._cache[key] = segments
        return self._cache[key]

    def true_return(self, cell: Cell, spend: float) -> float:
        """The return of `spend` in `cell` on the channel's true curve, scaled."""
        response = self.problem.channels[cell.channel].response
        if isinstance(response, Deal):
            assert cell.deal is not None
            return cell.deal[1] if spend > EPS else 0.0
        if isinstance(response, Linear):
            value = float(response.roi) * spend
        elif isinstance(response, Points):
            xs = [float(s) / self.unit for s, _ in response.points]
            ys = [float(r) / self.unit for _, r in response.points]
            value = float(np.interp(spend, xs, ys))
        else:
            value = float(hill(spend, float(response.beta) / self.unit,
                                      float(response.k) / self.unit, float(response.alpha)))
        return cell.weight * value

    def true_slope(self, cell: Cell, spend: float) -> float | None:
        """The return of the next unit spent in `cell` on the true curve."""
        response = self.problem.channels[cell.channel].response
        if isinstance(response, Deal):
            return None
        if isinstance(response, Linear):
            return cell.weight * float(response.roi)
        if isinstance(response, Points):
            xs = [float(s) / self.unit for s, _ in response.points]
            ys = [float(r) / self.unit for _, r in response.points]
            right = int(np.searchsorted(xs, spend + EPS, side="right"))
            if right >= len(xs):
                return 0.0
            return cell.weight * (ys[right] - ys[right - 1]) / (xs[right] - xs[right - 1])
        return cell.weight * float(hill_slope(spend, float(response.beta) / self.unit,
                                                     float(response.k) / self.unit,
                                                     float(response.alpha)))
