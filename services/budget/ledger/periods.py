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


@dataclass(frozen=True)
class Span:
    """A stretch of days of some kind: a campaign's phase (`warmup`, `burst`, ...)."""
    kind: str
    start: date
    end: date           # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def phase_split(units: int, phases: list[Span], weights: dict[str, Decimal]) -> list[int]:
    """Split `units` over `phases`, exactly: over the phase kinds present by their weights,
    then each kind's part over its phases by their days.

    >>> phase_split(1000, [Span("warmup", date(2027, 3, 1), date(2027, 3, 7)),
    ...                    Span("burst", date(2027, 3, 8), date(2027, 3, 21))],
    ...             {"warmup": Decimal("0.1"), "burst": Decimal("0.5")})
    [167, 833]
    """
    kinds = list(dict.fromkeys(phase.kind for phase in phases))
    parts = [0] * len(phases)
    for kind, amount in zip(kinds, apportion(units, [weights.get(k, Decimal(0)) for k in kinds])):
        mine = [i for i, phase in enumerate(phases) if phase.kind == kind]
        for i, part in zip(mine, apportion(amount, [Decimal(phases[i].days) for i in mine])):
            parts[i] = part
    return parts


def spread(units: int, span: Span, among: list[Period]) -> dict[str, int]:
    """Split `units` over the periods `span` overlaps, by the days it has in each, exactly;
    a span outside them all puts everything in the nearest period.

    >>> spread(100, Span("burst", date(2027, 1, 30), date(2027, 2, 2)),
    ...        periods(date(2027, 1, 1), date(2027, 3, 31), "month"))
    {'2027-01': 50, '2027-02': 50}
    """
    overlaps = [(p.id, (min(span.end, p.end) - max(span.start, p.start)).days + 1) for p in among]
    overlaps = [(period, days) for period, days in overlaps if days > 0]
    if not overlaps:
        return {period_of(span.start, among).id: units}
    return dict(zip([period for period, _ in overlaps],
                    apportion(units, [Decimal(days) for _, days in overlaps])))
