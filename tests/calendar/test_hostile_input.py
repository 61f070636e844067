"""Issue 12 in the calendar: the same text rules on both backends, checked before the
database (NUL, lengths from one definition), local times without offsets, and feeds that
survive any stored text."""
import icalendar
import pytest
from sqlalchemy import text

from services.calendar.models import COMMENT_LENGTH
from shared.types import NAME_LENGTH
from tests.calendar.conftest import CAMPAIGN
from tests.calendar.test_feeds import feed_of

NUL = "a\x00b"


@pytest.mark.parametrize("change", [
    {"name": NUL}, {"owner": NUL},
    {"objective": CAMPAIGN["objective"] | {"kpi": NUL}},
    {"objective": CAMPAIGN["objective"] | {"unit": NUL}},
    {"reviews": [{"name": NUL, "frequency": "weekly"}]}])
def test_a_nul_in_any_campaign_text_is_a_422(api, change):
    response = api.post("/campaigns", CAMPAIGN | change)
    assert response.status_code == 422, response.text
    assert "control characters" in response.text


def test_a_nul_in_milestone_approval_and_token_text_is_a_422(api):
    campaign = api.from_template("standard", launch="2027-03-15")
    gate = next(m for m in campaign["milestones"] if m["kind"] == "review_gate")
    base = f"/campaigns/{campaign['id']}"
    for path, body in ((base + "/milestones", {"kind": "kickoff", "name": NUL,
                                               "due_date": "2027-02-01"}),
                       (base + "/milestones", {"kind": "kickoff", "name": "k", "owner": NUL,
                                               "due_date": "2027-02-01"}),
                       (f"{base}/milestones/{gate['id']}/approval",
                        {"decision": "passed", "comment": NUL}),
                       ("/feed-tokens", {"label": NUL})):
        assert api.post(path, body).status_code == 422, (path, body)


@pytest.mark.parametrize("path", [
    "/campaigns?owner=a%00", "/calendar?from=2026-12-01&to=2026-12-31&channel=%00",
    "/calendar?from=2026-12-01&to=2026-12-31&owner=%00", "/events?campaign_id=%00",
    "/audit?campaign_id=%00", "/campaigns/cmp%00x", "/campaigns/cmp_x/milestones/ms%00"])
def test_a_nul_in_a_filter_or_an_id_is_a_422(api, path):
    response = api.get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_text_limits_are_the_columns_on_both_backends(api):
    campaign = api.campaign(name="n" * NAME_LENGTH)
    assert api.post("/campaigns", CAMPAIGN | {"name": "n" * (NAME_LENGTH + 1)}).status_code == 422
    gate_campaign = api.from_template("standard", launch="2027-03-15")
    gate = next(m for m in gate_campaign["milestones"] if m["kind"] == "review_gate")
    path = f"/campaigns/{gate_campaign['id']}/milestones/{gate['id']}/approval"
    stored = api.ok(api.post(path, {"decision": "passed", "comment": "c" * COMMENT_LENGTH}))
    assert len(stored["approval"]["comment"]) == COMMENT_LENGTH
    assert api.post(path, {"decision": "passed",
                           "comment": "c" * (COMMENT_LENGTH + 1)}).status_code == 422
    assert api.ok(api.get(f"/campaigns/{campaign['id']}"))["name"] == "n" * NAME_LENGTH


@pytest.mark.parametrize("due_time", ["10:00:00+16:00", "10:30:00+05:00", "10:30:00Z"])
def test_a_due_time_with_an_offset_is_a_422(api, due_time):
    campaign = api.campaign()
    response = api.post(f"/campaigns/{campaign['id']}/milestones",
                        {"kind": "launch", "name": "Launch", "due_date": "2026-12-15",
                         "due_time": due_time})
    assert response.status_code == 422
    assert "without a UTC offset" in response.json()["errors"][0]["detail"]
    local = api.milestone(campaign, kind="launch", name="Launch", due_date="2026-12-15",
                          due_time="10:30:00")
    assert local["due_time"] == "10:30:00"


def test_feeds_survive_line_breaks_and_control_characters_in_stored_text(api):
    campaign = api.campaign(name="Winter\nsale\tnow")
    # Text stored before the API refused control characters (or by any other path).
    with api.client.app.state.engine.begin() as connection:
        connection.execute(text("UPDATE campaign SET owner = :owner WHERE id = :id"),
                           {"owner": "ana\x01\x1b", "id": campaign["id"]})
    _, body = feed_of(api, campaign_id=campaign["id"])
    parsed = icalendar.Calendar.from_ical(body)
    event = next(e for e in parsed.walk("VEVENT") if str(e["UID"]) == f"{campaign['id']}@marketplan")
    assert str(event["SUMMARY"]) == "Winter sale now (campaign)"
    assert "Owner: ana . Status: draft." in str(event["DESCRIPTION"])
    assert str(parsed["X-WR-CALNAME"]) == "Winter sale now"
