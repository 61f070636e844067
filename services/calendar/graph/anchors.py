"""Dates that follow an anchor (a template's phases and contingency window follow its launch):
when the anchor moves, each keeps its offset to it in working days of the market.

A date is placed as the working day at or before it, counted in working days from the
anchor, plus the calendar days after that working day (a phase that starts on a Saturday
starts on the Saturday after the same working day). Pure: no database, no HTTP.

>>> from datetime import date
>>> # Launch Mon 2027-03-15 → Thu 03-18. Mon 03-08 was 5 working days before it: Thu 03-11.
>>> # Sun 03-28 was "Fri 03-26 (+9) and 2 days": Wed 03-31 (+9), and Thu 04-01 is a working
>>> # day, so Wed 03-31. Sat 03-13 was "Fri 03-12 (-1) and 1 day": Wed 03-17 likewise.
>>> [follow(d, date(2027, 3, 15), date(2027, 3, 18), "US").isoformat()
...  for d in (date(2027, 3, 8), date(2027, 3, 28), date(2027, 3, 13))]
['2027-03-11', '2027-03-31', '2027-03-17']
"""
from dataclasses import dataclass
from datetime import date, timedelta

from shared.workdays import add_working_days, is_working_day, previous_working_day


@dataclass(frozen=True)
class Offset:
    """Where a date stands from an anchor: `working_days` to the working day at or before it
    (the anchor itself when none lies between them), then `days` calendar days on."""

    working_days: int
    days: int


def _between(first: date, last: date, market: str) -> int:
    """The working days in (first, last]."""
    count, day = 0, first
    while day < last:
        day += timedelta(days=1)
        count += is_working_day(day, market)
    return count


def offset_of(day: date, anchor: date, market: str) -> Offset:
    """The offset of `day` from `anchor` in `market`'s working days."""
    base = previous_working_day(day, market)
    if day >= anchor and base < anchor:
        base = anchor   # between a non-working anchor and the first working day after it
    if base >= anchor:
        return Offset(_between(anchor, base, market), (day - base).days)
    return Offset(-_between(base - timedelta(days=1), anchor - timedelta(days=1), market),
                  (day - base).days)


def date_at(offset: Offset, anchor: date, market: str) -> date:
    """The date at `offset` from `anchor`; the calendar days stop short of the next working
    day, so dates that were in order stay in order."""
    base = add_working_days(anchor, offset.working_days, market)
    return min(base + timedelta(days=offset.days),
               add_working_days(base, 1, market) - timedelta(days=1)) if offset.days else base


def follow(day: date, old_anchor: date, new_anchor: date, market: str) -> date:
    """Where `day` goes when its anchor moves from `old_anchor` to `new_anchor`. (Follow a
    span's day after its end, not its last day: spans that met still meet.)"""
    if old_anchor == new_anchor:
        return day
    return date_at(offset_of(day, old_anchor, market), new_anchor, market)
