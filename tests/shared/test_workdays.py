"""A market's working days: its own weekend (the holidays package's) and its public holidays."""
from datetime import date

from shared.workdays import add_working_days, is_working_day, weekend_of


def test_a_markets_weekend_is_its_countrys():
    assert weekend_of("SA") == {4, 5} and weekend_of("IR") == {4}
    assert weekend_of("DE-BY") == weekend_of(None) == {5, 6}


def test_working_days_follow_the_markets_weekend():
    friday, sunday = date(2027, 1, 8), date(2027, 1, 10)
    assert not is_working_day(friday, "SA") and is_working_day(sunday, "SA")
    assert is_working_day(friday, "DE") and not is_working_day(sunday, "DE")
    # Thursday 7 January: the next working day is Sunday in SA, Friday in DE.
    assert add_working_days(date(2027, 1, 7), 1, "SA") == sunday
    assert add_working_days(date(2027, 1, 7), 1, "DE") == friday
