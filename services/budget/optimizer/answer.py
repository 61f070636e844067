"""What the optimizer answers: the allocation, or why there is none."""
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal


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


@dataclass(frozen=True)
class Allocation:
    status: Literal["optimal", "feasible"]
    total: Decimal
    reserve: Decimal
    spend: Decimal
    unspent: Decimal
    expected_return: Decimal
    marginal_value_of_budget: Decimal | None
    allocations: tuple[ChannelAllocation, ...]
    binding_constraints: tuple[str, ...]
    approximation_error: float         # bound on how far the true optimum can beat this plan
    gap: float | None                  # the solver's optimality gap (MILP), 0 when proven
    solver: str
    seconds: float


@dataclass(frozen=True)
class Conflict:
    constraint: str
    change: Decimal                    # the smallest relaxation of this constraint that helps
    detail: str


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


class SolveTimeout(Exception):
    """The time limit passed before the solver found any plan."""
