"""Campaigns: create, templates, the status machine with its gates, ETags, bulk create."""
import uuid

import pytest

from services.calendar.campaigns import TRANSITIONS
from tests.calendar.conftest import CAMPAIGN


def test_create_campaign_starts_in_draft(api):
    campaign = api.campaign()
    assert (campaign["status"], campaign["version"], campaign["phases"], campaign["milestones"]) == \
        ("draft", 1, [], [])
    assert campaign["objective"] == CAMPAIGN["objective"] and campaign["id"].startswith("cmp_")
    response = api.get(f"/campaigns/{campaign['id']}")
    assert response.headers["etag"] == '"1"'
    assert api.get(f"/campaigns/{campaign['id']}", headers={"If-None-Match": '"1"'}).status_code == 304


@pytest.mark.parametrize("change, field", [
    ({"end_date": "2026-11-01"}, "end_date"),
    ({"market": "XX"}, "market"),
    ({"market": "US-ZZ"}, "market"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"priority": 9}, "priority"),
    ({"channels": []}, "channels"),
    ({"objective": {"kpi": "cr", "target": "x", "deadline": "2026-12-31"}}, "objective.target"),
    ({"start_date": None}, "start_date"),
    ({"template": "standard"}, "launch_date"),
    ({"launch_date": "2026-12-10"}, "launch_date"),
])
def test_bad_campaigns_are_422_naming_the_field(api, change, field):
    response = api.post("/campaigns", CAMPAIGN | change)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_standard_template_lays_milestones_back_from_launch_in_working_days(api):
    # Launch Monday 2027-01-04; 2026-12-25 and 2027-01-01 are US holidays.
    campaign = api.from_template("standard", launch="2027-01-04")
    milestones = [(m["kind"], m["name"], m["due_date"]) for m in campaign["milestones"]]
    assert milestones == [
        ("kickoff", "Kickoff", "2026-12-03"),                      # 10 working days before
        ("creative_final", "Creative final", "2026-12-17"),
        ("review_gate", "Creative review", "2026-12-21"),
        ("channel_test", "Channel test", "2026-12-24"),            # 3 before, over the 25th
        ("review_gate", "Launch readiness review", "2026-12-29"),
        ("launch", "Launch", "2027-01-04"),                         # 3 after, over the 1st
        ("contingency", "Launch contingency window", "2027-01-04"),
    ]
    phases = [(p["kind"], p["start_date"], p["end_date"]) for p in campaign["phases"]]
    assert phases == [("warmup", "2026-12-28", "2027-01-03"), ("burst", "2027-01-04", "2027-01-17"),
                      ("sustain", "2027-01-18", "2027-02-07"), ("wrapup", "2027-02-08", "2027-02-14")]
    assert (campaign["start_date"], campaign["end_date"]) == ("2026-12-03", "2027-02-14")
    by_kind = {m["kind"]: m for m in campaign["milestones"]}
    assert by_kind["contingency"]["window_hours"] == 48
    assert by_kind["launch"]["depends_on"][0]["lag_days"] == 3
    assert [r["frequency"] for r in campaign["reviews"]] == ["daily", "weekly", "monthly"]


def test_flash_sale_and_brand_templates_differ_in_length(api):
    flash = api.from_template("flash_sale", launch="2027-03-15")
    brand = api.from_template("brand", launch="2027-03-15")
    assert flash["end_date"] == "2027-03-19" and brand["end_date"] == "2027-06-20"
    assert [p["kind"] for p in flash["phases"]] == ["warmup", "burst", "wrapup"]
    launch = {c["template"]: next(m["due_date"] for m in c["milestones"] if m["kind"] == "launch")
              for c in (flash, brand)}
    assert launch == {"flash_sale": "2027-03-15", "brand": "2027-03-15"}


def _walk(api, campaign: dict, path: list[str]) -> dict:
    for status in path:
        etag = api.get(f"/campaigns/{campaign['id']}").headers["etag"]
        campaign = api.ok(api.post(f"/campaigns/{campaign['id']}/status", {"status": status},
                                   headers={"If-Match": etag}))
    return campaign


ALL = ["draft", "planned", "approved", "live", "completed", "cancelled"]
ROUTE = {"draft": [], "planned": ["planned"], "approved": ["planned", "approved"],
         "live": ["planned", "approved", "live"], "completed": ["planned", "approved", "live", "completed"],
         "cancelled": ["cancelled"]}


@pytest.mark.parametrize("start", ALL)
def test_every_transition_is_allowed_or_a_409_naming_the_allowed_ones(api, start):
    for target in ALL:
        campaign = _walk(api, api.campaign(), ROUTE[start])
        etag = api.get(f"/campaigns/{campaign['id']}").headers["etag"]
        response = api.post(f"/campaigns/{campaign['id']}/status", {"status": target},
                            headers={"If-Match": etag})
        if target in TRANSITIONS[start]:
            assert response.status_code == 200, (start, target, response.text)
            assert response.json()["status"] == target
        else:
            assert response.status_code == 409, (start, target)
            assert response.json()["allowed"] == list(TRANSITIONS[start])


def test_approval_needs_every_gate_before_launch_passed(api):
    campaign = _walk(api, api.from_template("flash_sale"), ["planned"])
    etag = api.get(f"/campaigns/{campaign['id']}").headers["etag"]
    refused = api.post(f"/campaigns/{campaign['id']}/status", {"status": "approved"},
                       headers={"If-Match": etag})
    assert refused.status_code == 409 and len(refused.json()["gates"]) == 2
    gates = [m for m in campaign["milestones"] if m["kind"] == "review_gate"]
    api.ok(api.post(f"/campaigns/{campaign['id']}/milestones/{gates[0]['id']}/approval",
                    {"decision": "passed", "comment": "creative is on brand"}))
    api.ok(api.post(f"/campaigns/{campaign['id']}/milestones/{gates[1]['id']}/approval",
                    {"decision": "rejected", "comment": "tracking missing"}))
    etag = api.get(f"/campaigns/{campaign['id']}").headers["etag"]
    still = api.post(f"/campaigns/{campaign['id']}/status", {"status": "approved"},
                     headers={"If-Match": etag})
    assert still.status_code == 409 and still.json()["gates"] == [gates[1]["id"]]
    gate = api.ok(api.post(f"/campaigns/{campaign['id']}/milestones/{gates[1]['id']}/approval",
                           {"decision": "passed"}, role="admin"))
    assert gate["approval"]["approver"] == "key:test" and gate["status"] == "passed"
    assert _walk(api, campaign, ["approved"])["status"] == "approved"


def test_stale_if_match_is_412_and_missing_is_428(api):
    campaign = api.campaign()
    path = f"/campaigns/{campaign['id']}"
    assert api.patch(path, {"name": "a"}, headers={"If-Match": '"1"'}).status_code == 200
    assert api.patch(path, {"name": "b"}, headers={"If-Match": '"1"'}).status_code == 412
    assert api.patch(path, {"name": "b"}).status_code == 428
    assert api.post(f"{path}/status", {"status": "planned"}, headers={"If-Match": '"1"'}).status_code == 412
    assert api.ok(api.get(path))["name"] == "a"


def test_bulk_create_rejects_the_batch_listing_every_bad_row(api):
    owner = f"script-{uuid.uuid4().hex[:6]}"
    rows = [CAMPAIGN | {"owner": owner, "name": f"c{i}"} for i in range(4)]
    rows[1] = rows[1] | {"market": "XX"}
    rows[3] = rows[3] | {"end_date": "2020-01-01"}
    response = api.post("/campaigns/bulk", {"campaigns": rows})
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["campaigns[1].market", "campaigns[3].end_date"]
    assert api.ok(api.get("/campaigns", params={"owner": owner}))["items"] == []
    partial = api.ok(api.post("/campaigns/bulk", {"campaigns": rows}, params={"partial": "true"}), 201)
    assert [c["name"] for c in partial["created"]] == ["c0", "c2"]
    assert [r["index"] for r in partial["rejected"]] == [1, 3]


def test_bulk_create_replays_with_the_same_key(api):
    owner = f"script-{uuid.uuid4().hex[:6]}"
    body = {"campaigns": [CAMPAIGN | {"owner": owner, "name": f"c{i}"} for i in range(3)]}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.ok(api.post("/campaigns/bulk", body, headers=key), 201)
    again = api.post("/campaigns/bulk", body, headers=key)
    assert again.json() == first and again.headers["idempotent-replayed"] == "true"
    assert len(api.ok(api.get("/campaigns", params={"owner": owner}))["items"]) == 3


def test_viewers_and_finance_cannot_write_campaigns(api):
    assert api.post("/campaigns", CAMPAIGN, role="viewer").status_code == 403
    assert api.post("/campaigns", CAMPAIGN, role="finance").status_code == 403


def test_a_template_campaign_can_be_changed_and_keeps_its_dates(api):
    # Every change to a template campaign was a 422 asking for the create's launch_date.
    campaign = api.from_template("standard", launch="2027-03-15")
    path = f"/campaigns/{campaign['id']}"

    def patch(body: dict):
        return api.patch(path, body, headers={"If-Match": api.get(path).headers["etag"]})

    renamed = api.ok(patch({"name": "Spring launch"}))
    assert (renamed["name"], renamed["start_date"]) == ("Spring launch", campaign["start_date"])
    refused = patch({"end_date": None})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "end_date"
    assert "keeps its dates" in refused.json()["errors"][0]["detail"]
    backwards = patch({"end_date": "2020-01-01"})
    assert backwards.status_code == 422 and "before it starts" in backwards.text


def test_dates_that_would_leave_a_phase_outside_the_campaign_are_a_409_naming_it(api):
    # The trial's case (issue 17): a campaign's end moved before its burst was accepted, and
    # a range past the new end then missed the burst's overlaps.
    campaign = api.from_template("flash_sale", launch="2028-03-07", market="DE",
                                 time_zone="Europe/Berlin")
    path = f"/campaigns/{campaign['id']}"
    phases = {p["kind"]: p for p in campaign["phases"]}
    burst, wrapup = phases["burst"], phases["wrapup"]
    refused = api.patch(path, {"end_date": "2028-03-03"}, headers={"If-Match": '"1"'})
    assert refused.status_code == 409, refused.text
    assert refused.json()["phase_ids"] == [phases["warmup"]["id"], burst["id"], wrapup["id"]]
    assert f"burst {burst['start_date']}..{burst['end_date']}" in refused.json()["detail"]
    cut = api.patch(path, {"end_date": burst["end_date"]}, headers={"If-Match": '"1"'})
    assert cut.status_code == 409 and cut.json()["phase_ids"] == [wrapup["id"]]
    assert api.ok(api.get(path))["end_date"] == campaign["end_date"]
    # Dates that still hold every phase are taken.
    later = api.ok(api.patch(path, {"end_date": "2028-04-30"}, headers={"If-Match": '"1"'}))
    assert later["end_date"] == "2028-04-30"


def test_a_launch_move_keeps_every_phase_inside_the_campaign(api):
    # The window's end follows the wrap-up it ended with; a hand-made phase it also held
    # keeps it there (US: launch Mon 03-15 → Thu 03-18 → back to Mon 03-15).
    campaign = api.from_template("standard", launch="2027-03-15")
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    api.ok(api.move(campaign, launch["id"], "2027-03-18"))
    moved = api.ok(api.get(f"/campaigns/{campaign['id']}"))
    assert moved["end_date"] == "2027-04-28"
    hand = api.ok(api.post(f"/campaigns/{campaign['id']}/phases", {
        "kind": "sustain", "start_date": "2027-04-26", "end_date": "2027-04-28"}), 201)
    api.ok(api.move(campaign, launch["id"], "2027-03-15"))
    back = api.ok(api.get(f"/campaigns/{campaign['id']}"))
    wrapup = next(p for p in back["phases"] if p["kind"] == "wrapup")
    assert wrapup["end_date"] == "2027-04-25"
    assert back["end_date"] == hand["end_date"] == "2027-04-28"
    assert all(back["start_date"] <= p["start_date"] and p["end_date"] <= back["end_date"]
               for p in back["phases"])
