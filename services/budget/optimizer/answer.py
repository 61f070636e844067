"""What the optimizer answers: the allocation, or why there is none."""
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

from shared.money import quantum

Units = npt.NDArray[np.int64]
# Ratios (ROIs, the budget's marginal value) are told to six decimals.
RATIO_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class PeriodAllocation:
    period: str
    amount: Decimal
    expected_return: Decimal


@dataclass(frozen=True)
class ChannelAllocation:
    channel: str
    amount: Decimal
    expected_return: Decimal
    marginal_roi: Decimal | None       # return of the next unit here; None for a deal
    binding: tuple[str, ...]
    periods: tuple[PeriodAllocation, ...] = ()


@dataclass(frozen=True, eq=False)
class Figures:
    """A plan's amounts and expected returns in whole minor units, per channel and per channel
    and period (a grid, 0 where nothing may be spent): arrays, so that a plan of 52,000 cells
    crosses a process boundary and is written out without an object per cell."""

    decimals: int                      # the currency's minor-unit decimals
    periods: tuple[str, ...]           # the grid's columns; () when the problem has no periods
    amounts: Units                     # per channel
    returns: Units
    cell_amounts: Units                # channels × periods
    cell_returns: Units

    def money(self, units: Units) -> list[Decimal]:
        """`units` as amounts of the currency (Decimal with its decimals)."""
        unit = quantum(self.decimals)
        return [Decimal(u) * unit for u in units.tolist()]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Figures) and (self.decimals, self.periods) == \
            (other.decimals, other.periods) and all(
                np.array_equal(a, b) for a, b in zip(self._arrays(), other._arrays()))

    __hash__ = None  # type: ignore[assignment]   # equal by value, and mutable arrays inside

    def _arrays(self) -> tuple[Units, ...]:
        return self.amounts, self.returns, self.cell_amounts, self.cell_returns


@dataclass(frozen=True)
class Allocation:
    status: Literal["optimal", "feasible"]
    total: Decimal
    reserve: Decimal
    spend: Decimal
    unspent: Decimal
    expected_return: Decimal
    marginal_value_of_budget: Decimal | None
    channels: tuple[str, ...]
    marginal_roi: tuple[Decimal | None, ...]    # per channel; None for a deal
    binding: tuple[tuple[str, ...], ...]        # per channel
    figures: Figures
    binding_constraints: tuple[str, ...]
    # Bound on how far the true optimum can beat this plan, relative to its return: infinite
    # when the plan returns nothing and a plan could return more.
    approximation_error: float
    gap: float | None                  # the solver's optimality gap (MILP), 0 when proven
    solver: str
    seconds: float

    @cached_property
    def allocations(self) -> tuple[ChannelAllocation, ...]:
        """Per channel (and period, when the problem has periods): amount, expected return,
        marginal ROI and binding bounds, as objects (made when first asked for)."""
        figures = self.figures
        amounts, returns = figures.money(figures.amounts), figures.money(figures.returns)
        cells = figures.money(figures.cell_amounts.ravel())
        earned = figures.money(figures.cell_returns.ravel())
        width = len(figures.periods)
        return tuple(
            ChannelAllocation(channel=channel, amount=amounts[c], expected_return=returns[c],
                              marginal_roi=self.marginal_roi[c], binding=self.binding[c],
                              periods=tuple(PeriodAllocation(period, cells[c * width + p],
                                                             earned[c * width + p])
                                            for p, period in enumerate(figures.periods)))
            for c, channel in enumerate(self.channels))


@dataclass(frozen=True)
class Conflict:
    constraint: str
    change: Decimal                    # the smallest relaxation of this constraint that helps
    detail: str
    # Enough alone; else a part of the one change that all the others not alone make together.
    alone: bool = False


class Infeasible(Exception):
    """No plan meets every constraint; `conflicts` is the smallest set of changes that fixes it."""

    def __init__(self, conflicts: list[Conflict]):
        super().__init__("; ".join(c.detail for c in conflicts))
        self.conflicts = conflicts

    def __reduce__(self) -> tuple[type["Infeasible"], tuple[list[Conflict]]]:
        # Crosses the worker-process boundary intact.
        return Infeasible, (self.conflicts,)


@dataclass(frozen=True)
class Progress:
    """How a solve stands: the best plan's objective so far, the bound no plan can beat, and the
    gap between them (relative to the incumbent), in the objective's money."""

    incumbent: float | None
    bound: float | None
    gap: float | None
    seconds: float


class TooSteep(Exception):
    """A curve returns more per unit than the solver can take (1e15 or more near zero spend)."""


class SolveTimeout(Exception):
    """The time limit passed before the solver found any plan."""
