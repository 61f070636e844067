"""Recurring reviews on working days: the RFC 5545 recurrence of a review (a rule, the dates it
leaves out, the dates it adds) such that every occurrence is a working day of the market.

- daily: every day outside the market's weekend (SA's is Friday and Saturday); a public
  holiday is left out (`EXDATE`): the next working day has its own review.
- weekly: on the weekday of the first working day of the window; monthly and quarterly: on
  the window's first day of the month, and on the last day of a month too short for it
  (`BYMONTHDAY=-1` for the 31st, `BYMONTHDAY=28,29;BYSETPOS=-1` for the 29th), so no month
  is skipped. An occurrence on a day off moves (`EXDATE` + `RDATE`) by the "modified
  following" rule of business-day calendars: to the next working day, unless that leaves the
  week (weekly) or month (monthly, quarterly) it stands for, or the window, then to the
  working day before; dropped only when no such day is in the window, or the day it would
  move to already has the review.

Pure: no database, no HTTP.

>>> from datetime import date
>>> # Monthly from Fri 2027-01-29 in Bavaria: February has no 29th, so the 28th, a Sunday,
>>> # whose next working day (1 March) is in another month: Friday 26 February. 29 March is
>>> # Easter Monday: Tuesday 30 March.
>>> plan = recurrence("monthly", date(2027, 1, 29), date(2027, 4, 30), "DE-BY")
>>> [d.isoformat() for d in plan.dates]
['2027-01-29', '2027-02-26', '2027-03-30', '2027-04-29']
>>> plan.rule.by_month_day, plan.rule.by_set_pos
((28, 29), -1)
"""
import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from shared.workdays import is_working_day, next_working_day, previous_working_day, weekend_of

Frequency = Literal["daily", "weekly", "monthly", "quarterly"]
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_MONTHS = {"monthly": 1, "quarterly": 3}


@dataclass(frozen=True)
class Rule:
    """An RRULE: FREQ, INTERVAL, UNTIL (inclusive), and the BY parts it needs."""

    freq: Literal["DAILY", "WEEKLY", "MONTHLY"]
    interval: int
    until: date
    by_day: tuple[str, ...] = ()
    by_month_day: tuple[int, ...] = ()
    by_set_pos: int | None = None


@dataclass(frozen=True)
class Recurrence:
    """A review's `DTSTART`, `RRULE`, `EXDATE` and `RDATE`, and the dates they make."""

    start: date
    rule: Rule
    excluded: tuple[date, ...]
    added: tuple[date, ...]
    dates: tuple[date, ...]


def _add_months(day: date, months: int, anchor_day: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def _rule_dates(frequency: Frequency, start: date, last: date,
                weekend: frozenset[int]) -> tuple[Rule, list[date]]:
    if frequency == "daily":
        days = tuple(WEEKDAYS[d] for d in range(7) if d not in weekend)
        dates = [start + timedelta(days=i) for i in range((last - start).days + 1)]
        return (Rule("DAILY", 1, last, by_day=days),
                [d for d in dates if d.weekday() not in weekend])
    if frequency == "weekly":
        return Rule("WEEKLY", 1, last), [start + timedelta(weeks=i)
                                         for i in range((last - start).days // 7 + 1)]
    months, anchor = _MONTHS[frequency], start.day
    # The 29th-31st exist in some months only: an RRULE on such a day skips the others.
    by_month_day: tuple[int, ...] = ((-1,) if anchor == 31 else tuple(range(28, anchor + 1))
                                     if anchor > 28 else ())
    rule = Rule("MONTHLY", months, last, by_month_day=by_month_day,
                by_set_pos=-1 if len(by_month_day) > 1 else None)
    dates, step = [], 0
    while (day := _add_months(start, step * months, anchor)) <= last:
        dates.append(day)
        step += 1
    return rule, dates


def _period(frequency: Frequency, day: date) -> tuple[int, int]:
    """The week or month an occurrence stands for."""
    return day.isocalendar()[:2] if frequency == "weekly" else (day.year, day.month)


def _moved(frequency: Frequency, day: date, first: date, last: date, market: str) -> date | None:
    """Where an occurrence on a day off goes: modified following, within first..last."""
    following = next_working_day(day, market)
    if _period(frequency, following) == _period(frequency, day) and following <= last:
        return following
    preceding = previous_working_day(day, market)
    if preceding >= first:
        return preceding
    return following if following <= last else None


def recurrence(frequency: Frequency, first: date, last: date, market: str) -> Recurrence | None:
    """The recurrence of a review from `first` to `last` (inclusive) on working days of
    `market`; None when the window holds no working day."""
    start = next_working_day(first, market) if frequency in ("daily", "weekly") else first
    if next_working_day(first, market) > last:
        return None
    rule, dates = _rule_dates(frequency, start, last, weekend_of(market))
    kept = {d for d in dates if is_working_day(d, market)}
    excluded = sorted(set(dates) - kept)
    added: set[date] = set()
    if frequency != "daily":
        for day in excluded:
            moved = _moved(frequency, day, first, last, market)
            if moved is not None and moved not in kept:
                added.add(moved)
    return Recurrence(start, rule, tuple(excluded), tuple(sorted(added)),
                      tuple(sorted(kept | added)))
