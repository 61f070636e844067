"""Recurring reviews never fall on a day off of the campaign's market: the pure recurrence,
then the feed as a second consumer (`recurring-ical-events`) expands it, checked against the
`holidays` package directly."""
from collections import defaultdict
from datetime import date

import holidays
import icalendar
import recurring_ical_events

from services.calendar.graph import recurrence
from tests.calendar.test_feeds import feed_of

ALL = [{"name": f, "frequency": f} for f in ("daily", "weekly", "monthly", "quarterly")]


def iso(days) -> list[str]:
    return [d.isoformat() for d in days]


def test_a_daily_review_skips_good_friday_and_easter_monday_in_bavaria():
    plan = recurrence("daily", date(2027, 3, 22), date(2027, 4, 2), "DE-BY")
    assert plan.rule.by_day == ("MO", "TU", "WE", "TH", "FR")
    assert iso(plan.excluded) == ["2027-03-26", "2027-03-29"] and plan.added == ()
    assert iso(plan.dates) == ["2027-03-22", "2027-03-23", "2027-03-24", "2027-03-25",
                               "2027-03-30", "2027-03-31", "2027-04-01", "2027-04-02"]


def test_a_daily_review_keeps_saudi_arabias_friday_saturday_weekend():
    # Sunday 2027-01-03 to Saturday 2027-01-09: Sunday to Thursday are working days in SA.
    plan = recurrence("daily", date(2027, 1, 3), date(2027, 1, 9), "SA")
    assert plan.rule.by_day == ("MO", "TU", "WE", "TH", "SU")
    assert iso(plan.dates) == ["2027-01-03", "2027-01-04", "2027-01-05", "2027-01-06",
                               "2027-01-07"]


def test_a_weekly_review_moves_within_its_week():
    # Fridays from 19 March: Good Friday 26 March → Thursday 25 (Monday 29 is Easter Monday
    # and in the next week anyway).
    fridays = recurrence("weekly", date(2027, 3, 19), date(2027, 4, 2), "DE-BY")
    assert (iso(fridays.excluded), iso(fridays.added)) == (["2027-03-26"], ["2027-03-25"])
    assert iso(fridays.dates) == ["2027-03-19", "2027-03-25", "2027-04-02"]
    # Mondays in the US: Memorial Day (31 May 2027) → Tuesday 1 June, the same week.
    mondays = recurrence("weekly", date(2027, 5, 24), date(2027, 6, 7), "US")
    assert iso(mondays.dates) == ["2027-05-24", "2027-06-01", "2027-06-07"]


def test_a_weekly_review_starts_on_the_first_working_day():
    # The window opens on Saturday 2 January 2027; Monday the 4th is the first working day.
    # Monday 18 January is Martin Luther King Jr. Day: Tuesday 19.
    plan = recurrence("weekly", date(2027, 1, 2), date(2027, 1, 20), "US")
    assert plan.start == date(2027, 1, 4) and iso(plan.dates) == ["2027-01-04", "2027-01-11",
                                                                  "2027-01-19"]


def test_monthly_reviews_at_month_ends_keep_every_month():
    # On the 31st: the last day of each month (BYMONTHDAY=-1). Sun 31 Jan → Mon 1 Feb
    # (Fri 29 Jan is before the window); Sun 28 Feb → Fri 26 Feb (1 March is another month);
    # Memorial Day Mon 31 May → Fri 28 May.
    plan = recurrence("monthly", date(2027, 1, 31), date(2027, 5, 31), "US")
    assert (plan.rule.by_month_day, plan.rule.by_set_pos) == ((-1,), None)
    assert iso(plan.dates) == ["2027-02-01", "2027-02-26", "2027-03-31", "2027-04-30",
                               "2027-05-28"]
    # On the 30th, quarterly: the 28th-30th, the last there is (BYSETPOS=-1).
    quarterly = recurrence("quarterly", date(2027, 4, 30), date(2028, 3, 1), "US")
    assert (quarterly.rule.interval, quarterly.rule.by_month_day) == (3, (28, 29, 30))
    # Sat 30 Oct → Fri 29 Oct (Mon 1 Nov is another month); Sun 30 Jan 2028 → Mon 31 Jan.
    assert iso(quarterly.dates) == ["2027-04-30", "2027-07-30", "2027-10-29", "2028-01-31"]


def test_a_window_without_a_working_day_has_no_review():
    assert recurrence("weekly", date(2027, 12, 25), date(2027, 12, 26), "US") is None


def expanded(body: bytes) -> dict[str, list[date]]:
    """Each review's occurrences as a calendar app expands them."""
    calendar = icalendar.Calendar.from_ical(body)
    found = defaultdict(list)
    for event in recurring_ical_events.of(calendar).between(date(2026, 1, 1), date(2029, 1, 1)):
        if "-review-" in str(event["UID"]):
            found[str(event["SUMMARY"]).split(": ")[-1]].append(event.decoded("DTSTART"))
    return {name: sorted(days) for name, days in found.items()}


def days_off(market: str, year: int) -> set[date]:
    country, _, subdivision = market.partition("-")
    return set(holidays.country_holidays(country, subdiv=subdivision or None, years=year))


def test_a_second_consumer_finds_no_review_on_a_day_off(api):
    # Bavaria around Easter and Whitsun, the US around Memorial Day, Britain with month ends
    # on Saturdays and a bank holiday Monday.
    expected = {
        # 28 Feb (Sunday) → Fri 26 Feb; 29 March (Easter Monday) → Tue 30; 29 May (Saturday)
        # → Mon 31 May.
        ("DE-BY", "monthly"): ["2027-01-29", "2027-02-26", "2027-03-30", "2027-04-29",
                               "2027-05-31", "2027-06-29"],
        # Mondays from Mon 3 May: Memorial Day 31 May → Tue 1 June.
        ("US", "weekly"): ["2027-05-03", "2027-05-10", "2027-05-17", "2027-05-24",
                           "2027-06-01", "2027-06-07", "2027-06-14", "2027-06-21",
                           "2027-06-28"],
        # 29 May is a Saturday and Mon 31 May the spring bank holiday: Fri 28 May.
        ("GB", "monthly"): ["2027-01-29", "2027-02-26", "2027-03-29", "2027-04-29",
                            "2027-05-28", "2027-06-29"],
    }
    windows = {"DE-BY": ("2027-01-29", "2027-06-30", "Europe/Berlin"),
               "US": ("2027-05-03", "2027-06-30", "America/New_York"),
               "GB": ("2027-01-29", "2027-06-30", "Europe/London")}
    for market, (start, end, zone) in windows.items():
        campaign = api.campaign(market=market, time_zone=zone, start_date=start, end_date=end,
                                reviews=ALL)
        _, body = feed_of(api, campaign_id=campaign["id"])
        occurrences = expanded(body)
        assert set(occurrences) == {"daily", "weekly", "monthly", "quarterly"}
        off = days_off(market, 2027)
        for name, days in occurrences.items():
            bad = [d for d in days if d.weekday() >= 5 or d in off]
            assert bad == [], (market, name, bad)
            assert all(date.fromisoformat(start) <= d <= date.fromisoformat(end) for d in days)
        for (where, name), days in expected.items():
            if where == market:
                assert iso(occurrences[name]) == days, (market, name)
        daily = occurrences["daily"]
        working = [d for d in (date.fromordinal(o) for o in range(
            date.fromisoformat(start).toordinal(), date.fromisoformat(end).toordinal() + 1))
            if d.weekday() < 5 and d not in off]
        assert daily == working   # every working day, and only those


def test_a_review_on_the_29th_in_the_feed_keeps_february(api):
    campaign = api.campaign(market="US", start_date="2027-01-29", end_date="2027-04-30",
                            reviews=[{"name": "monthly", "frequency": "monthly"}])
    _, body = feed_of(api, campaign_id=campaign["id"])
    text = body.decode().replace("\r\n ", "")
    assert "RRULE:FREQ=MONTHLY;UNTIL=20270430;INTERVAL=1;BYMONTHDAY=28,29;BYSETPOS=-1" in text
    assert "EXDATE;VALUE=DATE:20270228" in text and "RDATE;VALUE=DATE:20270226" in text
    # 28 Feb 2027 is a Sunday: the next working day is in March, so Friday 26 February.
    assert iso(expanded(body)["monthly"]) == ["2027-01-29", "2027-02-26", "2027-03-29",
                                              "2027-04-29"]
