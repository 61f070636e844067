"""Working days of a market: its weekend and its public holidays (the `holidays` package) skipped
(the calendar's working-day lags, the planner's resource calendars).
Pure: no database, no HTTP."""
from datetime import date, timedelta
from functools import cache

import holidays

WEEKEND = frozenset({5, 6})   # Saturday, Sunday: the weekend where no market says otherwise


def check_market(market: str) -> str:
    """Return `market` (ISO 3166-1 alpha-2, optionally `-subdivision`, e.g. `US-CA`) if the
    holidays package knows it, else raise ValueError saying what is accepted."""
    country, _, subdivision = market.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(f"{market!r} is not a market with a public-holiday calendar; use an "
                         "ISO 3166-1 country code such as US, DE, GB, JP")
    if subdivision and subdivision not in supported[country]:
        raise ValueError(f"{subdivision!r} is not a subdivision of {country}; known: "
                         f"{', '.join(supported[country][:30])}")
    return market


@cache
def _holidays(market: str, year: int) -> frozenset[date]:
    country, _, subdivision = market.partition("-")
    return frozenset(holidays.country_holidays(country, subdiv=subdivision or None, years=year))


@cache
def weekend_of(market: str | None) -> frozenset[int]:
    """Return the weekdays (Monday 0) that are a market's weekend, as the holidays package
    knows its country's (SA: Friday and Saturday; IR: Friday); Saturday and Sunday without
    a market."""
    if market is None:
        return WEEKEND
    country, _, subdivision = market.partition("-")
    return frozenset(holidays.country_holidays(country, subdiv=subdivision or None).weekend)


def is_working_day(day: date, market: str) -> bool:
    return day.weekday() not in weekend_of(market) and day not in _holidays(market, day.year)


def add_working_days(day: date, count: int, market: str) -> date:
    """The `count`-th working day after `day` (before it when negative); `day` itself when 0.

    >>> add_working_days(date(2026, 12, 24), 1, "US")   # Christmas, then a weekend
    datetime.date(2026, 12, 28)
    """
    step = 1 if count >= 0 else -1
    left = abs(count)
    while left:
        day += timedelta(days=step)
        if is_working_day(day, market):
            left -= 1
    return day


def next_working_day(day: date, market: str) -> date:
    """`day` if it is a working day, else the first one after it."""
    while not is_working_day(day, market):
        day += timedelta(days=1)
    return day


def previous_working_day(day: date, market: str) -> date:
    while not is_working_day(day, market):
        day -= timedelta(days=1)
    return day


def holidays_between(market: str, first: date, last: date) -> set[date]:
    """The market's public holidays from `first` to `last`, inclusive."""
    return {day for year in range(first.year, last.year + 1)
            for day in _holidays(market, year) if first <= day <= last}
