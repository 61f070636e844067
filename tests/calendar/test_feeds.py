"""iCalendar feeds: parsed back by `icalendar` and by the independent `vobject`, checked
against RFC 5545 rules, reached with a revocable token."""
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import icalendar
import vobject

from services.calendar import feeds, outbox
from shared.kept import Lru

NEW_YORK = ZoneInfo("America/New_York")


def feed_of(api, **token_body) -> tuple[dict, bytes]:
    token = api.ok(api.post("/feed-tokens", {"label": "mine"} | token_body), 201)
    response = api.get(token["path"].removeprefix("/api/v1/calendar"), role="viewer")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    return token, response.content


def campaign_with_everything(api) -> dict:
    campaign = api.from_template("standard", launch="2027-01-04", time_zone="America/New_York")
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    path = f"/campaigns/{campaign['id']}/milestones/{launch['id']}"
    api.ok(api.patch(path, {"due_time": "09:30:00"}, headers={"If-Match": api.get(path).headers["etag"]}))
    return api.ok(api.get(f"/campaigns/{campaign['id']}"))


def test_campaign_feed_round_trips_through_two_parsers(api):
    campaign = campaign_with_everything(api)
    _, body = feed_of(api, campaign_id=campaign["id"])
    parsed = icalendar.Calendar.from_ical(body)
    events = {str(e["UID"]): e for e in parsed.walk("VEVENT")}
    milestones = {m["id"]: m for m in campaign["milestones"]}
    for milestone in milestones.values():
        event = events[f"{milestone['id']}@marketplan"]
        start = event.decoded("DTSTART")
        if milestone["kind"] == "launch":
            assert start == datetime(2027, 1, 4, 9, 30, tzinfo=start.tzinfo)
            assert str(event["DTSTART"].params["TZID"]) == "America/New_York"
        elif milestone["kind"] == "contingency":
            assert (start, event.decoded("DTEND")) == (date(2027, 1, 2), date(2027, 1, 7))
        else:
            assert start == date.fromisoformat(milestone["due_date"])
        related = event.get("RELATED-TO")
        related = related if isinstance(related, list) else [related]
        finish_to_start = [(str(r), r.params.get("GAP")) for r in related
                           if r.params.get("RELTYPE") == "FINISHTOSTART"]
        assert finish_to_start == [(f"{d['milestone_id']}@marketplan", finish_to_start[0][1])
                                   for d in milestone["depends_on"]]
    launch = next(m for m in milestones.values() if m["kind"] == "launch")
    launch_links = events[f"{launch['id']}@marketplan"]["RELATED-TO"]
    gap = next(r for r in launch_links if r.params.get("RELTYPE") == "FINISHTOSTART").params["GAP"]
    # The readiness review is due Tue 29 Dec (all day: DTEND is Wed 30 Dec, midnight in New
    # York); the launch is 3 working days later (30, 31 Dec, 1 Jan a holiday, 4 Jan) at 09:30.
    assert gap == "P5DT9H30M"
    phases = [e for e in events.values() if "campaign" not in str(e["SUMMARY"])
              and str(e["UID"]).startswith("ph_")]
    assert len(phases) == 4
    reviews = [e for e in events.values() if "RRULE" in e]
    assert sorted(str(e["RRULE"]["FREQ"][0]) for e in reviews) == ["DAILY", "MONTHLY", "WEEKLY"]

    # The independent parser sees the same events, dates and relations.
    other = vobject.readOne(body.decode())
    uids = {str(e.uid.value): e for e in other.vevent_list}
    assert set(uids) == set(events)
    for uid, event in uids.items():
        assert event.dtstart.value == events[uid].decoded("DTSTART")
    launch_v = uids[f"{launch['id']}@marketplan"]
    assert [(r.value, r.params["RELTYPE"][0]) for r in launch_v.contents["related-to"]] == \
        [(str(r), r.params["RELTYPE"]) for r in launch_links]
    daily = next(e for e in other.vevent_list if "rrule" in e.contents
                 and "DAILY" in e.rrule.value)
    occurrences = list(daily.getrruleset())
    assert occurrences[0].date() == date(2027, 1, 4) and all(d.weekday() < 5 for d in occurrences)


def test_feed_follows_rfc_5545_rules(api):
    campaign = campaign_with_everything(api)
    _, body = feed_of(api, campaign_id=campaign["id"])
    text = body.decode()
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))          # 3.1 folding
    assert "\n" not in text.replace("\r\n", "")                                   # CRLF only
    parsed = icalendar.Calendar.from_ical(body)
    assert parsed["VERSION"] == "2.0" and parsed["PRODID"]                       # 3.6
    tzids = set(re.findall(r"TZID=([^:;]+)", text))
    assert tzids == {"America/New_York"}
    assert {str(tz["TZID"]) for tz in parsed.walk("VTIMEZONE")} == tzids          # 3.6.5
    for event in parsed.walk("VEVENT"):
        assert event.get("UID") and event.get("DTSTAMP")                          # 3.6.1
        assert event.decoded("DTEND") > event.decoded("DTSTART")
        assert type(event.decoded("DTEND")) is type(event.decoded("DTSTART"))     # 3.8.2.2
    assert len({str(e["UID"]) for e in parsed.walk("VEVENT")}) == len(parsed.walk("VEVENT"))


def test_feed_uids_are_stable_and_sequences_grow_when_things_change(api):
    campaign = campaign_with_everything(api)
    token, before = feed_of(api, campaign_id=campaign["id"])
    kickoff = next(m for m in campaign["milestones"] if m["kind"] == "kickoff")
    api.ok(api.move(campaign, kickoff["id"], "2026-12-04"))
    after = api.get(token["path"].removeprefix("/api/v1/calendar")).content
    events = [{str(e["UID"]): e for e in icalendar.Calendar.from_ical(b).walk("VEVENT")}
              for b in (before, after)]
    assert set(events[0]) == set(events[1])
    uid = f"{kickoff['id']}@marketplan"
    assert events[1][uid]["SEQUENCE"] > events[0][uid]["SEQUENCE"]
    assert events[1][uid].decoded("DTSTART") == date(2026, 12, 4)


def test_a_filtered_calendar_feed_and_a_revoked_token(api):
    owner = f"feed-{uuid.uuid4().hex[:6]}"
    mine = api.campaign(channels=["kol"], owner=owner, start_date=date.today().isoformat(),
                        end_date=date.today().isoformat())
    api.campaign(channels=["email"], owner=owner, start_date=date.today().isoformat(),
                 end_date=date.today().isoformat())
    token, body = feed_of(api, filters={"channel": "kol", "owner": owner})
    uids = {str(e["UID"]) for e in icalendar.Calendar.from_ical(body).walk("VEVENT")}
    assert uids == {f"{mine['id']}@marketplan"}
    listed = api.ok(api.get("/feed-tokens"))
    assert token["id"] in [t["id"] for t in listed] and "token" not in listed[0]
    api.ok(api.post(f"/feed-tokens/{token['id']}/revoke"))
    assert api.get(token["path"].removeprefix("/api/v1/calendar")).status_code == 404
    assert api.get("/feeds/mpf_guessed.ics").status_code == 404
    assert api.post("/feed-tokens", {"label": "x", "campaign_id": "cmp_nope"}).status_code == 404


def _after(end, gap: timedelta):
    """`end` + `gap` as RFC 5545 3.3.6 adds a duration: days nominal (the same local time),
    the rest exact."""
    sign = -1 if gap < timedelta(0) else 1
    gap = abs(gap)
    if not isinstance(end, datetime):
        return end + sign * gap
    day = datetime.combine(end.date() + sign * timedelta(days=gap.days), end.timetz())
    return (day.astimezone(UTC) + sign * timedelta(seconds=gap.seconds)).astimezone(end.tzinfo)


def test_every_link_gap_runs_from_the_predecessors_end_to_the_successors_start(api):
    campaign = campaign_with_everything(api)
    # Across the start of daylight saving time in New York (Sunday 14 March 2027): Friday
    # 12 March 10:00 EST (its hour ends 11:00) to Monday 15 March 09:00 EDT is 2 nominal days
    # (to Sunday 11:00 EDT) and 22 h, not the 2 days 21 h that pass on the clock.
    friday = api.milestone(campaign, name="Brief", due_date="2027-03-12", due_time="10:00:00")
    monday = api.milestone(campaign, name="Review", due_date="2027-03-15", due_time="09:00:00",
                           depends_on=[{"milestone_id": friday["id"], "lag_days": 1}])
    # The same day with no lag: the successor starts before the all-day predecessor ends.
    same_day = api.milestone(campaign, name="Same day", due_date="2027-03-15",
                             depends_on=[{"milestone_id": monday["id"]}])
    _, body = feed_of(api, campaign_id=campaign["id"])
    events = {str(e["UID"]): e for e in icalendar.Calendar.from_ical(body).walk("VEVENT")}
    gaps = {}
    for uid, event in events.items():
        related = event.get("RELATED-TO", [])
        for link in related if isinstance(related, list) else [related]:
            if link.params.get("RELTYPE") != "FINISHTOSTART":
                continue
            gap = icalendar.vDuration.from_ical(link.params["GAP"])
            # An all-day date next to a timed event: midnight in the campaign's zone.
            end, start = (moment if isinstance(moment, datetime) or not timed
                          else datetime.combine(moment, time(), NEW_YORK)
                          for moment, timed in ((events[str(link)].decoded("DTEND"),
                                                 isinstance(event.decoded("DTSTART"), datetime)),
                                                (event.decoded("DTSTART"),
                                                 isinstance(events[str(link)].decoded("DTEND"),
                                                            datetime))))
            assert _after(end, gap) == start
            gaps[uid] = link.params["GAP"]
    assert len(gaps) == 5 + 2   # the template's chain of 6, and the two made here
    assert gaps[f"{monday['id']}@marketplan"] == "P2DT22H"
    # Monday 09:00-10:00 EDT, then the all-day milestone from Monday midnight: -10 h.
    assert gaps[f"{same_day['id']}@marketplan"] == "-PT10H"
    # Whole days between all-day milestones: Creative final (Thu 17 Dec 2026, so DTEND Fri
    # 18) and the creative review 2 working days later (Mon 21): 3 days from its end.
    by_name = {m["name"]: m for m in campaign["milestones"]}
    assert (by_name["Creative final"]["due_date"], by_name["Creative review"]["due_date"]) == \
        ("2026-12-17", "2026-12-21")
    assert gaps[f"{by_name['Creative review']['id']}@marketplan"] == "P3D"


def test_a_feed_says_how_often_to_poll(api):
    campaign = api.campaign()
    _, body = feed_of(api, campaign_id=campaign["id"])
    text = body.decode()
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT15M\r\n" in text      # RFC 7986 5.7
    assert "X-PUBLISHED-TTL:PT15M\r\n" in text


def test_a_feed_answers_head_and_conditional_requests(api):
    campaign = api.campaign()
    token, _ = feed_of(api, campaign_id=campaign["id"])
    path = token["path"].removeprefix("/api/v1/calendar")
    full = api.get(path)
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert parsedate_to_datetime(modified) == datetime.fromisoformat(
        campaign["updated_at"]).replace(microsecond=0)
    assert full.headers["cache-control"] == "private, max-age=900"

    head = api.call("HEAD", path)
    assert head.status_code == 200 and head.content == b""
    assert (head.headers["etag"], head.headers["last-modified"]) == (etag, modified)
    assert head.headers["content-length"] == str(len(full.content))

    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'},
                    {"If-Modified-Since": modified}):
        for method in ("GET", "HEAD"):
            answer = api.call(method, path, headers=headers)
            assert (answer.status_code, answer.content) == (304, b""), (method, headers)
            assert answer.headers["etag"] == etag
    for headers in ({"If-None-Match": '"other"'},
                    {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
                    {"If-Modified-Since": "not a date"},
                    # Later than the server's clock: not a date it gave (RFC 9110 13.1.3).
                    {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
                    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
                    {"If-None-Match": '"other"', "If-Modified-Since": modified}):
        assert api.get(path, headers=headers).content == full.content, headers

    # A change gives a new ETag: the client's copy is stale.
    entity = f"/campaigns/{campaign['id']}"
    api.ok(api.patch(entity, {"name": "Renamed"}, headers={"If-Match": api.get(entity).headers["etag"]}))
    changed = api.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert b"Renamed" in changed.content

    api.ok(api.post(f"/feed-tokens/{token['id']}/revoke"))
    assert api.call("HEAD", path).status_code == 404
    assert api.get(path, headers={"If-None-Match": etag}).status_code == 404


def test_a_whole_calendar_feed_is_dated_by_the_newest_change_or_today(api):
    token, _ = feed_of(api, filters={"owner": f"nobody-{uuid.uuid4().hex[:6]}"})
    path = token["path"].removeprefix("/api/v1/calendar")
    before = parsedate_to_datetime(api.get(path).headers["last-modified"])
    campaign = api.campaign()   # any campaign's change may move one into or out of the feed
    after = parsedate_to_datetime(api.get(path).headers["last-modified"])
    assert after == max(before, last_change(api))
    assert after >= datetime.fromisoformat(campaign["updated_at"]).replace(microsecond=0)
    assert after >= datetime.combine(date.today(), time(), UTC)


def last_change(api) -> datetime:
    """When the calendar's last event occurred, to the second (as HTTP dates it)."""
    cursor, last = None, None
    while True:
        page = api.ok(api.get("/events", params={"limit": 500} | ({"after": cursor} if cursor else {})))
        last = page["items"][-1] if page["items"] else last
        if not (cursor := page["next_cursor"]):
            return datetime.fromisoformat(last["occurred_at"]).replace(microsecond=0)


def test_a_filtered_feed_is_dated_by_the_delete_of_one_of_its_campaigns(api, monkeypatch):
    # The trial's case (issue 17): a campaign of a filtered feed deleted after a poll; the
    # feed was dated by the newest campaign left, and a poll with the Last-Modified it had
    # answered 304 with the deleted campaign still in it.
    owner = f"gone-{uuid.uuid4().hex[:6]}"
    token, _ = feed_of(api, filters={"owner": owner})
    path = token["path"].removeprefix("/api/v1/calendar")
    doomed = api.campaign(owner=owner, name="Doomed")
    api.campaign(name="Elsewhere")
    shown = api.get(path)
    assert b"Doomed" in shown.content
    # The delete a few seconds later (HTTP dates have whole seconds), without waiting for them.
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    monkeypatch.setattr(outbox, "utcnow", lambda: later)
    entity = f"/campaigns/{doomed['id']}"
    assert api.call("DELETE", entity, headers={"If-Match": "*"}).status_code == 204
    gone = api.get(path, headers={"If-Modified-Since": shown.headers["last-modified"]})
    assert gone.status_code == 200 and b"Doomed" not in gone.content
    assert parsedate_to_datetime(gone.headers["last-modified"]) == later == last_change(api)

def test_a_poll_of_an_unchanged_feed_is_answered_without_rendering_it(api, monkeypatch):
    campaign = campaign_with_everything(api)
    token, body = feed_of(api)
    path = token["path"].removeprefix("/api/v1/calendar")
    etag = api.get(path).headers["etag"]

    def render(**_):
        raise AssertionError("a 304 must not render the feed")

    with monkeypatch.context() as patched:
        patched.setattr(feeds, "render_feed", render)
        assert api.get(path, headers={"If-None-Match": etag}).status_code == 304
    # Any change the calendar makes is a new ETag, a gate's decision as much as a rename; a
    # change to another campaign too (the whole calendar may show it).
    gate = next(m for m in campaign["milestones"] if m["kind"] == "review_gate")
    api.ok(api.post(f"/campaigns/{campaign['id']}/milestones/{gate['id']}/approval",
                    {"decision": "passed"}))
    decided = api.get(path, headers={"If-None-Match": etag})
    assert decided.status_code == 200 and decided.headers["etag"] != etag
    assert decided.content != body
    api.campaign()
    assert api.get(path, headers={"If-None-Match": decided.headers["etag"]}).status_code == 200


def test_a_feed_has_one_vtimezone_per_zone_used_in_one_order(api):
    # `add_missing_timezones` added them in a set's order, which differs between processes:
    # replicas served different bytes under one strong ETag. UTC needs none (`Z` times).
    owner = f"zones-{uuid.uuid4().hex[:6]}"
    for zone in ("Europe/Berlin", "Asia/Tokyo", "America/New_York", "UTC", "Europe/Berlin"):
        campaign = api.campaign(owner=owner, time_zone=zone, start_date="2027-06-01",
                                end_date="2027-06-30")
        api.milestone(campaign, due_date="2027-06-15", due_time="09:30:00")
    api.campaign(owner=owner, time_zone="Australia/Sydney", start_date="2027-06-01",
                 end_date="2027-06-30")   # no timed milestone: no TZID
    _, body = feed_of(api, filters={"owner": owner})
    calendar = icalendar.Calendar.from_ical(body)
    zones = [str(zone["TZID"]) for zone in calendar.walk("VTIMEZONE")]
    assert zones == ["America/New_York", "Asia/Tokyo", "Europe/Berlin"]
    assert calendar.get_used_tzids() == set(zones)
    assert body.index(b"BEGIN:VTIMEZONE") < body.index(b"BEGIN:VEVENT")


def test_a_feed_after_a_change_renders_only_the_campaigns_it_touched(api, monkeypatch):
    # Issue 17: the whole calendar took 3-4 s of CPU to render after any change; a campaign's
    # events are kept by the campaign's state, and copied into every feed that shows it.
    owner = f"blocks-{uuid.uuid4().hex[:6]}"
    a = api.campaign(owner=owner, name="A", start_date="2027-06-01", end_date="2027-06-30")
    b = api.campaign(owner=owner, name="B", time_zone="Europe/Berlin",
                     start_date="2027-06-01", end_date="2027-06-30")
    api.milestone(b, due_date="2027-06-15", due_time="09:30:00")
    token, _ = feed_of(api, filters={"owner": owner})
    path = token["path"].removeprefix("/api/v1/calendar")
    rendered = []
    events = feeds._campaign_events
    monkeypatch.setattr(feeds, "_campaign_events",
                        lambda campaign, *rest: rendered.append(campaign.id) or events(campaign, *rest))
    entity = f"/campaigns/{a['id']}"
    api.ok(api.patch(entity, {"name": "A renamed"}, headers={"If-Match": api.get(entity).headers["etag"]}))
    warm = api.get(path).content
    assert rendered == [a["id"]] and b"A renamed" in warm and b"BEGIN:VTIMEZONE" in warm
    # The same bytes as rendering every campaign again: a new process, after a change elsewhere.
    monkeypatch.setattr(feeds, "_BLOCKS", Lru(max_bytes=2**20))
    api.campaign(name="Elsewhere")
    assert api.get(path).content == warm and sorted(rendered) == sorted([a["id"], a["id"], b["id"]])
    icalendar.Calendar.from_ical(warm)
