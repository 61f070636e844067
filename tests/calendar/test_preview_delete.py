"""Plan-a-campaign's calendar steps: a preview that answers what the create would make and
stores nothing, and the undo that deletes a draft campaign with everything in it."""
from sqlalchemy import func
from sqlmodel import Session, col, select

from services.calendar.models import (
    AuditEntry,
    CalendarEvent,
    Campaign,
    Dependency,
    Milestone,
    Phase,
    idempotency_record,
)
from tests.calendar.conftest import CAMPAIGN
from tests.calendar.test_events import events

TEMPLATE = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")} | {
    "template": "standard", "launch_date": "2027-01-04"}
# What no two campaigns share, and what a preview may therefore differ in.
MADE = {"id", "created_at", "updated_at"}


def _rows(api) -> dict[str, int]:
    with Session(api.client.app.state.engine) as session:
        return {table.__name__: session.exec(select(func.count()).select_from(table)).one()
                for table in (Campaign, Phase, Milestone, Dependency, CalendarEvent, AuditEntry)
                } | {"idempotency": session.exec(select(func.count())
                                                 .select_from(idempotency_record)).one()}


def _shape(campaign: dict) -> dict:
    """A campaign answer without what each create makes anew; dependencies and anchors named
    by the milestone they point to, not its id."""
    names = {m["id"]: m["name"] for m in campaign["milestones"]} | {None: None}

    def item(row: dict) -> dict:
        return {k: v for k, v in row.items() if k not in MADE | {"campaign_id"}} | {
            "anchor_id": names[row["anchor_id"]]}

    return {k: v for k, v in campaign.items() if k not in MADE | {"phases", "milestones"}} | {
        "phases": [item(p) for p in campaign["phases"]],
        "milestones": [item(m) | {"depends_on": [(names[d["milestone_id"]], d["lag_days"])
                                                 for d in m["depends_on"]]}
                       for m in campaign["milestones"]]}


def test_a_preview_answers_what_the_create_makes_and_stores_nothing(api):
    before = _rows(api)
    preview = api.ok(api.post("/campaigns/preview", TEMPLATE,
                              headers={"Idempotency-Key": "preview-is-not-a-create"}))
    assert _rows(api) == before
    assert api.get(f"/campaigns/{preview['id']}").status_code == 404
    created = api.ok(api.post("/campaigns", TEMPLATE), 201)
    assert _shape(preview) == _shape(created)
    # The standard template back from Monday 2027-01-04 (see test_campaigns for the working
    # days): the preview's dates are the create's.
    assert [(m["kind"], m["due_date"]) for m in preview["milestones"]][:2] == [
        ("kickoff", "2026-12-03"), ("creative_final", "2026-12-17")]
    assert (preview["status"], preview["start_date"], preview["end_date"], len(preview["phases"])
            ) == ("draft", "2026-12-03", "2027-02-14", 4)


def test_a_preview_refuses_what_the_create_refuses_with_the_same_422(api):
    # Saturday 2027-01-02; the next US working day is Monday the 4th.
    body = TEMPLATE | {"launch_date": "2027-01-02"}
    before = _rows(api)
    preview, create = api.post("/campaigns/preview", body), api.post("/campaigns", body)
    assert (preview.status_code, create.status_code) == (422, 422)
    assert preview.json()["errors"] == create.json()["errors"]
    assert "the next working day is 2027-01-04" in preview.json()["errors"][0]["detail"]
    adjusted = api.ok(api.post("/campaigns/preview", body | {"adjust": "next_working_day"}))
    assert next(m["due_date"] for m in adjusted["milestones"] if m["kind"] == "launch") == \
        "2027-01-04"
    assert _rows(api) == before


def test_viewers_cannot_preview_or_delete(api):
    campaign = api.campaign()
    assert api.post("/campaigns/preview", TEMPLATE, role="viewer").status_code == 403
    assert api.call("DELETE", f"/campaigns/{campaign['id']}", role="viewer",
                    headers={"If-Match": "*"}).status_code == 403


def test_deleting_a_draft_removes_it_with_its_phases_milestones_and_dependencies(api):
    response = api.post("/campaigns", TEMPLATE)
    campaign = api.ok(response, 201)
    # The undo holds the create's ETag: no read needed between the two.
    assert response.headers["etag"] == '"1"'
    path = f"/campaigns/{campaign['id']}"
    gate = next(m for m in campaign["milestones"] if m["kind"] == "review_gate")
    # A decided gate: decisions are append-only, and must not stop the delete.
    api.ok(api.post(f"{path}/milestones/{gate['id']}/approval", {"decision": "passed"}))
    etag = api.get(path).headers["etag"]
    assert etag == '"2"'
    assert api.call("DELETE", path, headers={"If-Match": '"1"'}).status_code == 412
    assert api.call("DELETE", path).status_code == 428
    assert api.call("DELETE", path, headers={"If-Match": etag}).status_code == 204
    assert api.get(path).status_code == 404
    assert api.call("DELETE", path, headers={"If-Match": "*"}).status_code == 404
    milestone_ids = [m["id"] for m in campaign["milestones"]]
    with Session(api.client.app.state.engine) as session:
        assert session.exec(select(Milestone).where(col(Milestone.id).in_(milestone_ids))).all() == []
        assert session.exec(select(Phase).where(Phase.campaign_id == campaign["id"])).all() == []
        assert session.exec(select(Dependency).where(
            col(Dependency.successor_id).in_(milestone_ids))).all() == []
    # The gate's decision history outlives it.
    assert len(api.ok(api.get("/audit", params={"campaign_id": campaign["id"]}))["items"]) == 3
    last = events(api, campaign)[-1]
    assert (last["type"], last["campaign_id"]) == ("campaign.deleted", campaign["id"])
    assert last["data"] == {k: campaign[k] for k in (
        "id", "name", "objective", "owner", "channels", "market", "time_zone", "start_date",
        "end_date", "priority", "status", "template", "reviews", "created_by")} | {
        "phase_ids": [p["id"] for p in campaign["phases"]], "milestone_ids": milestone_ids}
    entry = api.ok(api.get("/audit", params={"campaign_id": campaign["id"]}))["items"][-1]
    assert (entry["action"], entry["target"], entry["after"]) == \
        ("campaign.deleted", campaign["id"], None)
    assert [m["id"] for m in entry["before"]["milestones"]] == milestone_ids
    assert entry["before"]["milestones"][2]["approval"]["decision"] == "passed"


def test_deleting_a_campaign_past_draft_is_a_409_naming_its_status(api):
    planned, cancelled = api.campaign(), api.campaign()
    for campaign, status in ((planned, "planned"), (cancelled, "cancelled")):
        path = f"/campaigns/{campaign['id']}"
        api.ok(api.post(path + "/status", {"status": status}, headers={"If-Match": '"1"'}))
    before = _rows(api)
    # Said before the version: no version of a planned campaign can be deleted.
    response = api.call("DELETE", f"/campaigns/{planned['id']}", headers={"If-Match": '"1"'})
    assert response.status_code == 409
    assert (response.json()["status"], response.json()["campaign_status"]) == (409, "planned")
    assert "is planned: cancel it instead" in response.json()["detail"]
    response = api.call("DELETE", f"/campaigns/{cancelled['id']}", headers={"If-Match": "*"})
    assert (response.status_code, response.json()["campaign_status"]) == (409, "cancelled")
    assert "it stays as it is" in response.json()["detail"]
    assert _rows(api) == before


def test_a_deleted_campaigns_feed_answers_404(api):
    campaign = api.campaign()
    token = api.ok(api.post("/feed-tokens", {"campaign_id": campaign["id"], "label": "mine"}),
                   201)
    feed = token["path"].removeprefix("/api/v1/calendar")
    assert api.get(feed).status_code == 200
    assert api.call("DELETE", f"/campaigns/{campaign['id']}",
                    headers={"If-Match": '"1"'}).status_code == 204
    assert api.get(feed).status_code == 404
