"""A budget's reporting periods (months, quarters or ISO weeks of its fiscal period) and the
exact phasing of an amount across them. Pure: no database, no HTTP."""
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

PeriodLength = Literal["month", "quarter", "week"]
MAX_PERIODS = 104


@dataclass(frozen=True)
class Period:
    id: str             # "2027-03", "2027-Q1" or "2027-W09"
    start: date         # clipped to the fiscal period
    end: date           # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _next_start(day: date, length: PeriodLength) -> date:
    if length == "week":
        return day + timedelta(days=7 - day.weekday())
    months = 1 if length == "month" else 3
    month0 = (day.month - 1) // months * months + months
    return date(day.year + month0 // 12, month0 % 12 + 1, 1)


def _label(day: date, length: PeriodLength) -> str:
    if length == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if length == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


def periods(start: date, end: date, length: PeriodLength) -> list[Period]:
    """Return the periods covering start..end (inclusive), the first and last clipped.

    >>> [p.id for p in periods(date(2027, 1, 15), date(2027, 3, 31), "month")]
    ['2027-01', '2027-02', '2027-03']
    """
    result = []
    day = start
    while day <= end:
        following = _next_start(day, length)
        result.append(Period(_label(day, length), day, min(following - timedelta(days=1), end)))
        day = following
    return result


def period_of(day: date, among: list[Period]) -> Period:
    """The period containing `day`, or the first or last one when `day` is outside them all."""
    if day < among[0].start:
        return among[0]
    return next((p for p in among if p.start <= day <= p.end), among[-1])


def apportion(units: int, weights: list[Decimal]) -> list[int]:
    """Split `units` (minor units) in proportion to `weights`, exactly: the parts sum to
    `units`, each is its exact share rounded down or up (largest remainder).

    >>> apportion(100, [Decimal(1), Decimal(1), Decimal(1)])
    [34, 33, 33]
    """
    total = sum(weights)
    if total == 0:
        weights, total = [Decimal(1)] * len(weights), Decimal(len(weights))
    shares = [Fraction(units) * Fraction(w) / Fraction(total) for w in weights]
    parts = [int(share) for share in shares]   # floor: shares are never negative here
    by_remainder = sorted(range(len(shares)), key=lambda i: (parts[i] - shares[i], i))
    for i in by_remainder[:units - sum(parts)]:
        parts[i] += 1
    return parts
