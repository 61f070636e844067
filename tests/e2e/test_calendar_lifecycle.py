"""A campaign's way to approval through the gateway, as a script and a planner drive it, and
its feed as a calendar client reads it (no API key: the feed token is the credential)."""
import uuid
from datetime import date

import httpx
import icalendar
import pytest

from tests.calendar.conftest import CAMPAIGN
from tests.e2e.conftest import api_key

pytestmark = pytest.mark.e2e


def test_campaign_from_template_to_approved_and_its_feed(system):
    base = f"http://127.0.0.1:{system['port']}"
    gateway = httpx.Client(base_url=base + "/api/v1/calendar", timeout=60)
    planner, viewer = api_key(system, "planner"), api_key(system, "viewer")

    # a script creates the campaign from a template, safely retried with the same key
    body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")} \
        | {"template": "standard", "launch_date": "2027-01-04"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = gateway.post("/campaigns", json=body, headers=planner | key)
    again = gateway.post("/campaigns", json=body, headers=planner | key)
    assert first.status_code == again.status_code == 201, first.text
    campaign = first.json()
    assert again.json()["id"] == campaign["id"]
    assert gateway.post("/campaigns", json=body, headers=viewer).status_code == 403
    path = f"/campaigns/{campaign['id']}"
    by_kind = {m["kind"]: m for m in campaign["milestones"]}

    # the creative slips two working days: everything after it moves along
    creative = by_kind["creative_final"]
    etag = gateway.get(f"{path}/milestones/{creative['id']}", headers=planner).headers["etag"]
    moved = gateway.post(f"{path}/milestones/{creative['id']}/move", json={"due_date": "2026-12-21"},
                         headers=planner | {"If-Match": etag})
    assert moved.status_code == 200, moved.text
    assert [m["name"] for m in moved.json()["moved"]] == [
        "Creative final", "Creative review", "Channel test", "Launch readiness review", "Launch",
        "Launch contingency window"]
    # the contingency window follows its launch
    assert [m["to_date"] for m in moved.json()["moved"][-2:]] == ["2027-01-06", "2027-01-06"]

    # gates approved, then planned → approved
    current = gateway.get(path, headers=planner).json()
    for gate in (m for m in current["milestones"] if m["kind"] == "review_gate"):
        response = gateway.post(f"{path}/milestones/{gate['id']}/approval",
                                json={"decision": "passed", "comment": "ok"}, headers=planner)
        assert response.status_code == 200, response.text
    for status in ("planned", "approved"):
        etag = gateway.get(path, headers=planner).headers["etag"]
        response = gateway.post(f"{path}/status", json={"status": status},
                                headers=planner | {"If-Match": etag})
        assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"

    # a calendar client subscribes with the feed URL alone
    token = gateway.post("/feed-tokens", json={"label": "Outlook", "campaign_id": campaign["id"]},
                         headers=planner).json()
    feed = httpx.get(base + token["path"], timeout=30)
    assert feed.status_code == 200, feed.text
    events = {str(e["UID"]): e for e in icalendar.Calendar.from_ical(feed.content).walk("VEVENT")}
    launch = events[f"{by_kind['launch']['id']}@marketplan"]
    assert launch.decoded("DTSTART") == date(2027, 1, 6)
    assert str(events[f"{campaign['id']}@marketplan"]["STATUS"]) == "CONFIRMED"
    # it polls cheaply: HEAD, and a 304 while its copy is current
    head = httpx.head(base + token["path"], timeout=30)
    assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", feed.headers["etag"])
    # The same length and coding as the GET's (a client that takes gzip, as httpx does, is
    # sent the kept gzip bytes: their length, not the decoded one).
    assert [head.headers.get(h) for h in ("content-length", "content-encoding")] == \
        [feed.headers.get(h) for h in ("content-length", "content-encoding")]
    for validator in ({"If-None-Match": feed.headers["etag"]},
                      {"If-Modified-Since": feed.headers["last-modified"]}):
        assert httpx.get(base + token["path"], headers=validator, timeout=30).status_code == 304
    gateway.post(f"/feed-tokens/{token['id']}/revoke", headers=planner)
    assert httpx.get(base + token["path"], timeout=30).status_code == 404
    assert httpx.get(base + "/api/v1/calendar/campaigns", timeout=30).status_code == 401


def test_plan_a_campaigns_calendar_steps_preview_create_and_undo(system):
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{system['port']}/api/v1/calendar",
                           timeout=60)
    planner = api_key(system, "planner")
    # Saturday 2027-01-02: the preview refuses it as the create would, naming Monday the 4th.
    body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")} \
        | {"template": "flash_sale", "launch_date": "2027-01-02"}
    refused = gateway.post("/campaigns/preview", json=body, headers=planner)
    assert refused.status_code == 422 and "2027-01-04" in refused.text
    body["adjust"] = "next_working_day"
    preview = gateway.post("/campaigns/preview", json=body, headers=planner)
    assert preview.status_code == 200, preview.text
    assert gateway.get(f"/campaigns/{preview.json()['id']}", headers=planner).status_code == 404

    created = gateway.post("/campaigns", json=body,
                           headers=planner | {"Idempotency-Key": str(uuid.uuid4())})
    assert created.status_code == 201, created.text
    assert [(m["kind"], m["due_date"]) for m in created.json()["milestones"]] == \
        [(m["kind"], m["due_date"]) for m in preview.json()["milestones"]]
    # a later step failed: the undo deletes the draft with the ETag the create answered
    path = f"/campaigns/{created.json()['id']}"
    undone = gateway.delete(path, headers=planner | {"If-Match": created.headers["etag"]})
    assert undone.status_code == 204, undone.text
    assert gateway.get(path, headers=planner).status_code == 404
    feed = gateway.get("/events", params={"campaign_id": created.json()["id"]},
                       headers=planner).json()["items"]
    assert feed[-1]["type"] == "campaign.deleted"
