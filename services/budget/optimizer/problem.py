"""What the optimizer is asked: channels with response curves, groups, periods, the reserve."""
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from shared.money import quantum

Objective = Literal["max_return", "min_spend", "max_profit", "target_roi"]
SolverName = Literal["highs", "cbc"]
# How finely the solver's first round cuts each curve (of its value at its cap; it usually
# proves the plan at once), and the elastic model's cut past the caps under a return floor:
# here, where both the solver and the infeasibility module that it imports can read it.
FIRST_TOLERANCE = 4e-4


@dataclass(frozen=True)
class Linear:
    """Constant return on investment: return = roi × spend."""

    roi: Decimal


@dataclass(frozen=True)
class Points:
    """(spend, return) points from (0, 0), sorted by spend; linear between, flat beyond."""

    points: tuple[tuple[Decimal, Decimal], ...]


@dataclass(frozen=True)
class Hill:
    """Saturation curve: return = beta · s^alpha / (s^alpha + k^alpha); S-shaped when alpha > 1."""

    beta: Decimal
    k: Decimal
    alpha: Decimal


@dataclass(frozen=True)
class Deal:
    """All or nothing: spend exactly `cost` for `value`, or nothing."""

    cost: Decimal
    value: Decimal


Response = Linear | Points | Hill | Deal


@dataclass(frozen=True)
class Channel:
    id: str
    response: Response
    min: Decimal | None = None
    max: Decimal | None = None
    # When set, `min` means "at least min if the channel is used at all".
    min_if_used: bool = False


@dataclass(frozen=True)
class Group:
    id: str
    channels: tuple[str, ...]
    min_share: Decimal | None = None   # fractions of total spend, 0.2 = 20 %
    max_share: Decimal | None = None


@dataclass(frozen=True)
class Period:
    """One period of the horizon. A channel's curve R covers the whole horizon; in period p it is
    r_p(x) = weight_p · s_p · R(x / s_p), s_p the period's share of the horizon (`share` over
    the sum of all periods' shares, or equal shares when none is given), so spending in
    proportion to the shares with all weights 1 returns exactly R(total)."""

    id: str
    weight: Decimal = Decimal(1)       # seasonality: return multiplier in this period
    cap: Decimal | None = None         # most that may be spent in this period
    share: Decimal | None = None       # relative length of the period (e.g. its working days)


@dataclass(frozen=True)
class Reserve:
    """Held back: a percent of the total or a fixed amount."""

    percent: Decimal | None = None
    amount: Decimal | None = None

    def of(self, total: Decimal, decimals: int) -> Decimal:
        """What this policy holds back of `total`: the amount, or the percent rounded half-even
        to the minor unit (as accounting does), so reserve + spend + unspent = total exactly.

        >>> Reserve(percent=Decimal(10)).of(Decimal("1000.05"), 2)
        Decimal('100.00')
        """
        if self.amount is not None:
            return self.amount
        share = total * (self.percent or Decimal(0)) / 100
        return share.quantize(quantum(decimals), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Incremental:
    """Keep each channel of `previous` within ±`tolerance` (0.1 = 10 %) of its amount there."""

    previous: Mapping[str, Decimal]
    tolerance: Decimal


@dataclass(frozen=True)
class Problem:
    total: Decimal
    decimals: int                      # the currency's minor-unit decimals
    channels: tuple[Channel, ...]
    reserve: Reserve = field(default_factory=Reserve)
    groups: tuple[Group, ...] = ()
    periods: tuple[Period, ...] = ()
    objective: Objective = "max_return"
    target_return: Decimal | None = None   # min_spend
    target_roi: Decimal | None = None      # target_roi
    incremental: Incremental | None = None
    solver: SolverName = "highs"
    time_limit: float = 30.0
