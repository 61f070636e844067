"""Calendar changes reaching the planner: the consumer applies the calendar's events (served
here by the feed contract's double, `tests/shared/test_events.py`) against the real calendar
service's campaigns; generated tasks follow their milestones, schedules go stale, cancelled
work leaves, and an event applied again changes nothing."""
import time
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select

from services.planner.app import MIGRATIONS, create_app
from services.planner.config import PlannerSettings
from services.planner.models import CampaignState, Schedule, Task, event_consumer
from services.planner.propagation import PlannerConsumer, apply_event
from services.planner.resources import templates
from services.planner.schedules import AUTO_REPLANNER
from services.planner.tasks import follow_milestones
from shared.client import ServiceClient
from shared.events import EVENTS_PATH, Event
from tests.conftest import TEST_SECRET, migrated_database, signed_headers
from tests.planner.conftest import (
    calendar_call,
    calendar_campaign,
    call,
    milestone_of,
    move,
    ok,
    team,
)


class Feed(httpx.BaseTransport):
    """The calendar's event feed as a list the test appends to; every other call goes to the
    real calendar service."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.real = httpx.HTTPTransport()

    def add(self, kind: str, campaign: dict, **data) -> str:
        event_id = f"ev{len(self.events) + 1:06d}"
        self.events.append({"id": event_id, "type": kind, "campaign_id": campaign["id"],
                            "occurred_at": datetime.now(UTC).isoformat(), "data": data})
        return event_id

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != EVENTS_PATH:
            return self.real.handle_request(request)
        after, limit = request.url.params.get("after"), int(request.url.params["limit"])
        start = 0 if after is None else [e["id"] for e in self.events].index(after) + 1
        page = self.events[start:start + limit]
        more = start + limit < len(self.events)
        return httpx.Response(200, json={"items": page,
                                         "next_cursor": page[-1]["id"] if more else None})


@pytest.fixture(scope="module")
def feed(planner):
    return Feed()


@pytest.fixture(scope="module")
def worker(planner, calendar, feed) -> PlannerConsumer:
    """The planner's consumer (one per database: it holds the lease) reading `feed`."""
    client = ServiceClient(name="calendar", base_url=calendar.url, secret=TEST_SECRET.encode(),
                           caller_service="planner", transport=feed)
    state = planner.app.state
    return PlannerConsumer(engine=state.engine, calendar=client, workers=state.workers,
                           grace_seconds=30, auto_replan=False, poll_seconds=0.5,
                           lease_seconds=10)


def tasks_of(planner, campaign: dict) -> dict[str, dict]:
    return {t["id"]: t for t in ok(call(planner, "GET", "/tasks",
                                        params={"campaign_id": campaign["id"]}))}


def schedule(planner, *campaigns: dict, start: str = "2027-02-01") -> dict:
    return ok(call(planner, "POST", "/schedules", {
        "start": start, "horizon_days": 90, "campaign_ids": [c["id"] for c in campaigns]}), 201)


def set_status(calendar, campaign: dict, *statuses: str) -> None:
    path = f"/campaigns/{campaign['id']}"
    for status in statuses:
        etag = calendar_call(calendar, "GET", path).headers["etag"]
        ok(calendar_call(calendar, "POST", path + "/status", {"status": status},
                         headers={"If-Match": etag}))


def test_a_slip_moves_the_generated_tasks_and_marks_the_schedule_stale(planner, calendar, feed, worker):
    team(planner)
    slipping, other = calendar_campaign(calendar), calendar_campaign(calendar,
                                                                     launch_date="2027-03-22")
    for campaign in (slipping, other):
        ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    by_hand = ok(call(planner, "POST", "/tasks", {
        "id": f"{slipping['id']}-press", "name": "Press kit", "skill": "copy",
        "effort_hours": "6", "campaign_id": slipping["id"], "deadline": "2027-03-12"}), 201)
    both, alone = schedule(planner, slipping, other), schedule(planner, other)
    worker.poll_once()                       # earlier tests' events: none are about these
    before = tasks_of(planner, slipping)

    move(calendar, slipping, "launch", "2027-03-18")
    event_id = feed.add("milestone.moved", slipping,
                        milestone_id=milestone_of(slipping, "launch")["id"],
                        from_date="2027-03-15", to_date="2027-03-18")
    assert worker.poll_once() == 1

    after = tasks_of(planner, slipping)
    launch = f"{milestone_of(slipping, 'launch')['id']}-1"
    # "launch build" is due by the launch and starts at most 5 working days before it:
    # Mon 15 Mar → Mon 8 Mar; Thu 18 Mar → Thu 11 Mar (no US holiday in between).
    assert (before[launch]["deadline"], before[launch]["earliest_start"]) == \
        ("2027-03-15", "2027-03-08")
    assert (after[launch]["deadline"], after[launch]["earliest_start"]) == \
        ("2027-03-18", "2027-03-11")
    assert after[by_hand["id"]] == before[by_hand["id"]]           # hand-made: kept as made
    assert {t: v for t, v in after.items() if t != launch} == \
        {t: v for t, v in before.items() if t != launch}           # nothing else moved

    stale = ok(call(planner, "GET", f"/schedules/{both['id']}", role="viewer"))
    assert stale["stale"] is True
    [reason] = stale["stale_reasons"]
    assert (reason["campaign_id"], reason["event_id"], reason["event_type"]) == \
        (slipping["id"], event_id, "milestone.moved")
    assert reason["detail"] == f"tasks moved: {launch}"
    untouched = ok(call(planner, "GET", f"/schedules/{alone['id']}"))
    assert (untouched["stale"], untouched["stale_reasons"]) == (False, [])


def test_an_event_applied_again_changes_nothing(planner, calendar, feed, worker):
    team(planner)
    campaign = calendar_campaign(calendar, launch_date="2027-04-05")
    ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    stored = schedule(planner, campaign)
    worker.poll_once()
    move(calendar, campaign, "launch", "2027-04-07")
    feed.add("milestone.moved", campaign)
    move(calendar, campaign, "kickoff", "2027-02-15")
    feed.add("milestone.moved", campaign)
    assert worker.poll_once() == 2
    tasks, read = tasks_of(planner, campaign), ok(call(planner, "GET", f"/schedules/{stored['id']}"))
    # Both moves were already in the calendar when the batch was read, so the first event
    # brought both: the second found nothing left to change and marked nothing.
    assert [r["event_id"] for r in read["stale_reasons"]] == [feed.events[-2]["id"]]

    # Replayed from the start of the feed, as after restoring an old cursor: the same tasks,
    # the same marks, no new schedule.
    with Session(planner.app.state.engine) as session:
        schedules_before = session.exec(select(Schedule.id)).all()
        session.execute(update(event_consumer).values(cursor=None))
        session.commit()
    assert worker.poll_once() == len(feed.events)
    assert tasks_of(planner, campaign) == tasks
    assert ok(call(planner, "GET", f"/schedules/{stored['id']}")) == read
    with Session(planner.app.state.engine) as session:
        assert session.exec(select(Schedule.id)).all() == schedules_before


def test_a_status_change_that_moves_no_task_marks_nothing(planner, calendar, feed, worker):
    team(planner)
    campaign = calendar_campaign(calendar, launch_date="2027-04-12")
    ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    stored = schedule(planner, campaign)
    set_status(calendar, campaign, "planned")
    feed.add("campaign.status_changed", campaign, **{"from": "draft", "to": "planned"})
    worker.poll_once()
    assert ok(call(planner, "GET", f"/schedules/{stored['id']}"))["stale"] is False
    with Session(planner.app.state.engine) as session:
        assert session.get(CampaignState, campaign["id"]).status == "planned"


def test_a_cancelled_campaigns_unstarted_tasks_leave_the_next_schedule_and_replan(
        planner, calendar, feed, worker):
    team(planner)
    kept, cancelled = (calendar_campaign(calendar, launch_date=d)
                       for d in ("2027-03-15", "2027-03-17"))
    for campaign in (kept, cancelled):
        ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    first = schedule(planner, kept, cancelled)
    worker.poll_once()
    set_status(calendar, cancelled, "cancelled")
    feed.add("campaign.status_changed", cancelled, **{"from": "draft", "to": "cancelled"})
    worker.poll_once()

    [reason] = ok(call(planner, "GET", f"/schedules/{first['id']}"))["stale_reasons"]
    assert reason["detail"].startswith("campaign cancelled: its tasks that have not started")
    owned = {c["id"]: set(tasks_of(planner, c)) for c in (kept, cancelled)}
    as_of = "2027-02-22"
    started = {a["task"] for a in first["schedule"]["assignments"]
               if a["task"] in owned[cancelled["id"]] and a["start"] <= as_of}
    assert started and started != owned[cancelled["id"]]   # the case needs both kinds

    replanned = ok(call(planner, "POST", f"/schedules/{first['id']}/replan", {"as_of": as_of}), 201)
    placed = {a["task"] for a in replanned["schedule"]["assignments"]}
    assert placed == owned[kept["id"]] | started     # started work stays, the rest leaves
    fresh = {a["task"] for a in schedule(planner, kept, cancelled)["schedule"]["assignments"]}
    assert fresh == owned[kept["id"]]
    assert len(tasks_of(planner, cancelled)) == len(owned[cancelled["id"]])   # kept, not deleted


def test_a_deleted_campaigns_unstarted_generated_tasks_leave_and_its_schedules_go_stale(
        planner, calendar, feed, worker):
    team(planner)
    deleted, other = (calendar_campaign(calendar, launch_date=d)
                      for d in ("2027-05-24", "2027-05-26"))
    for campaign in (deleted, other):
        ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    by_hand = ok(call(planner, "POST", "/tasks", {
        "id": f"{deleted['id']}-press", "name": "Press kit", "skill": "copy",
        "effort_hours": "6", "campaign_id": deleted["id"], "deadline": "2027-05-20"}), 201)
    generated = set(tasks_of(planner, deleted)) - {by_hand["id"]}
    started = f"{milestone_of(deleted, 'creative_final')['id']}-1"
    with Session(planner.app.state.engine) as session:
        session.get(Task, started).start = date(2027, 4, 26)
        session.commit()
    both = schedule(planner, deleted, other, start="2027-03-15")
    alone = schedule(planner, other, start="2027-03-15")
    worker.poll_once()
    others = tasks_of(planner, other)

    path = f"/campaigns/{deleted['id']}"
    etag = calendar_call(calendar, "GET", path).headers["etag"]
    assert calendar_call(calendar, "DELETE", path, headers={"If-Match": etag}).status_code == 204
    event_id = feed.add("campaign.deleted", deleted,
                        milestone_ids=[m["id"] for m in deleted["milestones"]],
                        phase_ids=[p["id"] for p in deleted["phases"]])
    assert worker.poll_once() == 1

    # Started work and the hand-made task stay; every other generated task and the state go.
    assert set(tasks_of(planner, deleted)) == {started, by_hand["id"]}
    assert tasks_of(planner, other) == others
    with Session(planner.app.state.engine) as session:
        assert session.get(CampaignState, deleted["id"]) is None
    read = ok(call(planner, "GET", f"/schedules/{both['id']}"))
    [reason] = read["stale_reasons"]
    assert (reason["campaign_id"], reason["event_id"], reason["event_type"]) == \
        (deleted["id"], event_id, "campaign.deleted")
    assert reason["detail"] == \
        "campaign deleted: tasks removed: " + ", ".join(sorted(generated - {started}))
    assert ok(call(planner, "GET", f"/schedules/{alone['id']}"))["stale"] is False

    # Delivered again: nothing left to remove, no second mark.
    feed.events.append(feed.events[-1])
    assert worker.poll_once() == 1
    assert set(tasks_of(planner, deleted)) == {started, by_hand["id"]}
    assert ok(call(planner, "GET", f"/schedules/{both['id']}")) == read


def test_auto_replan_replans_a_stale_schedule_once(planner, calendar, feed, worker, monkeypatch):
    team(planner)
    campaign = calendar_campaign(calendar, launch_date="2027-04-19")
    ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    stored = schedule(planner, campaign)
    monkeypatch.setattr(worker, "auto_replan", True)
    worker.poll_once()
    move(calendar, campaign, "launch", "2027-04-21")
    feed.add("milestone.moved", campaign)
    worker.poll_once()
    assert worker.poll_once() == 0          # nothing new: no second re-plan
    with Session(planner.app.state.engine) as session:
        replans = session.exec(select(Schedule).where(Schedule.replan_of == stored["id"])).all()
    [replan] = replans
    assert replan.created_by == AUTO_REPLANNER
    answer = ok(call(planner, "GET", f"/schedules/{replan.id}"))
    assert answer["stale"] is False and answer["schedule"]["moved"] is not None
    launch = f"{milestone_of(campaign, 'launch')['id']}-1"
    finish = next(a["finish"] for a in answer["schedule"]["assignments"] if a["task"] == launch)
    assert finish <= "2027-04-21"


def test_started_work_stays_when_its_milestone_moves_or_its_step_goes(planner, calendar):
    campaign = calendar_campaign(calendar, launch_date="2027-05-10")
    ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    creative = milestone_of(campaign, "creative_final")
    design, review = f"{creative['id']}-1", f"{creative['id']}-2"
    with Session(planner.app.state.engine) as session:
        started = session.get(Task, design)
        started.start, earliest = date(2027, 4, 20), started.earliest_start
        session.commit()
        # The creative final (Mon 26 Apr: 10 working days before the launch) moves a week
        # earlier, and its template loses the copy review.
        steps = templates(session)
        steps["creative_final"] = steps["creative_final"][:1]
        moved = campaign | {"milestones": [m | {"due_date": "2027-04-19"} if m is creative
                                           else m for m in campaign["milestones"]]}
        _, changes = follow_milestones(session, moved, steps)
        assert (changes.moved, changes.removed, changes.added) == ((design,), (review,), ())
        kept = session.get(Task, design)
        # Started: its first day and earliest start stay; it learns the new deadline.
        assert (kept.start, kept.earliest_start, kept.deadline) == \
            (date(2027, 4, 20), earliest, date(2027, 4, 19))
        assert session.get(Task, review) is None
        steps["creative_final"] = []
        _, changes = follow_milestones(session, moved, steps)
        assert not changes and session.get(Task, design) is not None   # started: never dropped
        session.rollback()


def test_a_campaign_the_planner_has_no_tasks_for_is_not_read(planner, feed, worker):
    worker.poll_once()
    feed.add("campaign.created", {"id": "cmp_elsewhere"})
    assert worker.poll_once() == 1
    with Session(planner.app.state.engine) as session:
        assert session.get(CampaignState, "cmp_elsewhere") is None
        # applied directly to an unknown state: a new campaign with no generated tasks
        marked = apply_event(session, Event("ev_x", "campaign.created", "cmp_x",
                                            datetime.now(UTC)),
                             {"id": "cmp_x", "status": "draft", "milestones": []})
        assert marked == []
        session.rollback()


def test_sync_status_for_every_role(planner, feed, worker):
    worker.poll_once()
    status = ok(call(planner, "GET", "/sync", role="viewer"))
    assert (status["consumer"], status["cursor"], status["pending"], status["last_error"]) == \
        ("calendar", feed.events[-1]["id"], 0, None)


def sync_holder(client: TestClient) -> str | None:
    path = "/api/v1/planner/sync"
    holder: str | None = ok(client.get(path, headers=signed_headers("GET", path)))["holder"]
    return holder


def test_the_lifespan_polls_only_when_asked(request, tmp_path_factory, calendar):
    url = migrated_database(request, tmp_path_factory, MIGRATIONS, "sqlite")
    settings = PlannerSettings(database_url=url, internal_secret=TEST_SECRET, solver_workers=1,
                               calendar_url=calendar.url, events_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        time.sleep(0.2)
        assert sync_holder(client) is None
    with TestClient(create_app(settings.model_copy(update={"events_poll_seconds": 0.05}))) as client:
        deadline = time.monotonic() + 10
        while sync_holder(client) is None:      # the consumer took the lease
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # Stopping gave the lease up, so a restarted process need not wait for it to lapse.
    with TestClient(create_app(settings)) as client:
        assert sync_holder(client) is None
