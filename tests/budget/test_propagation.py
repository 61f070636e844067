"""Calendar changes reach the budget through the event feed: each linked campaign's name,
status and dates; draws for a closed campaign are refused; an event applied again changes
nothing; events of campaigns no budget links are skipped and still move the cursor."""
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, select, update
from sqlmodel import Session

from services.budget.ledger.tables import LinkedCampaign, event_consumer
from services.budget.propagation import apply_event
from shared.events import Event


def consumer(api):
    return api.client.app.state.consumer


@contextmanager
def database(api) -> Iterator[Engine]:
    """The budget's own database, for what the API cannot show or do."""
    engine = create_engine(api.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def newest_event(api) -> str:
    items, after = [], None
    while True:
        page = api.calendar("GET", "/events?limit=500" + (f"&after={after}" if after else ""))
        items += page["items"]
        if page["next_cursor"] is None:
            return items[-1]["id"]
        after = page["next_cursor"]


def linked(api, budget: dict) -> list[tuple]:
    fresh = api.ok(api.get(f"/budgets/{budget['id']}"))
    return [(c["id"], c["name"], c["status"], c["start_date"], c["end_date"])
            for c in fresh["campaigns"]]


def test_budgets_list_their_campaigns_as_the_calendar_reports_them(api):
    campaign = api.campaign(name="Spring launch")
    budget = api.budget(campaign_ids=[campaign["id"], api.campaign_id])
    assert linked(api, budget)[0] == (campaign["id"], "Spring launch", "draft", "2026-12-01",
                                      "2026-12-31")
    assert [c["id"] for c in budget["campaigns"]] == [campaign["id"], api.campaign_id]

    api.change_campaign(campaign["id"], "PATCH", "", {"name": "Spring launch (DE)",
                                                      "end_date": "2027-01-15"})
    consumer(api).poll_once()
    assert linked(api, budget)[0] == (campaign["id"], "Spring launch (DE)", "draft",
                                      "2026-12-01", "2027-01-15")
    # The budget's representation changed, so its version (its ETag) moved.
    assert api.ok(api.get(f"/budgets/{budget['id']}"))["version"] == budget["version"] + 1
    status = api.ok(api.get("/sync", role="viewer"))
    assert (status["cursor"], status["pending"], status["last_error"]) == \
        (newest_event(api), 0, None)


def test_a_draw_for_a_cancelled_campaign_is_a_409_naming_its_status(api):
    campaign = api.campaign(name="Cancelled soon")
    budget = api.budget(campaign_ids=[campaign["id"]])
    draw = {"amount": "1000.00", "reason": "rush print run", "campaign_id": campaign["id"]}
    path = f"/budgets/{budget['id']}/reserve/draws"
    api.ok(api.post(path, draw), 201)

    api.change_campaign(campaign["id"], "POST", "/status", {"status": "cancelled"})
    consumer(api).poll_once()
    refused = api.post(path, draw)
    assert refused.status_code == 409, refused.text
    assert refused.json()["campaign_status"] == "cancelled"
    assert "'Cancelled soon'" in refused.json()["detail"] and "cancelled" in refused.json()["detail"]
    assert linked(api, budget)[0][2] == "cancelled"
    # Only the one draw made before: the reserve still holds the rest.
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve"))["drawn"] == "1000.00"


def test_a_draw_for_a_completed_campaign_is_refused_too(api):
    campaign = api.campaign()
    budget = api.budget(campaign_ids=[campaign["id"]])
    state = api.calendar("GET", f"/campaigns/{campaign['id']}") | {"status": "completed"}
    # Reaching `completed` in the calendar takes approved review gates and a launch; the rule
    # under test is the budget's, so the event's state is applied as the feed would bring it.
    with database(api) as engine, Session(engine) as session:
        apply_event(session, Event(id="1", type="campaign.status_changed",
                                   campaign_id=campaign["id"], occurred_at=datetime.now(UTC)),
                    state)
        session.commit()
    refused = api.post(f"/budgets/{budget['id']}/reserve/draws",
                       {"amount": "5", "reason": "late invoice", "campaign_id": campaign["id"]})
    assert refused.status_code == 409 and refused.json()["campaign_status"] == "completed"


def test_events_applied_again_change_nothing(api):
    campaign = api.campaign(name="Replayed")
    budget = api.budget(campaign_ids=[campaign["id"]])
    api.change_campaign(campaign["id"], "PATCH", "", {"name": "Replayed twice"})
    api.change_campaign(campaign["id"], "POST", "/status", {"status": "planned"})
    consumer(api).poll_once()
    before = api.ok(api.get(f"/budgets/{budget['id']}"))
    applied = api.ok(api.get("/sync"))["applied"]

    # Every event the calendar ever published, delivered a second time.
    with database(api) as engine, engine.begin() as connection:
        connection.execute(update(event_consumer).values(cursor=None))
    again = consumer(api).poll_once()
    assert again > 0 and api.ok(api.get("/sync"))["applied"] == applied + again
    assert api.ok(api.get(f"/budgets/{budget['id']}")) == before
    assert linked(api, budget)[0][1:3] == ("Replayed twice", "planned")


def test_events_of_campaigns_no_budget_links_are_skipped_and_move_the_cursor(api):
    consumer(api).poll_once()
    stranger = api.campaign(name="Nobody's")
    api.change_campaign(stranger["id"], "POST", "/status", {"status": "cancelled"})
    assert consumer(api).poll_once() >= 2          # created, status changed (and its milestones)
    assert api.ok(api.get("/sync"))["cursor"] == newest_event(api)
    with database(api) as engine, engine.connect() as connection:
        assert connection.execute(select(LinkedCampaign.campaign_id).where(
            LinkedCampaign.campaign_id == stranger["id"])).first() is None
