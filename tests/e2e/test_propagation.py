"""A change in the calendar reaches the planner and the budget through the event feed, with the
real processes behind the gateway: a slip, a cancellation, a planner that was down, a replay,
and a planner killed while it applies a long backlog. On the running system the e2e tests share
(`up` starts a killed planner again): each schedule names its own campaigns, and the replay
re-applies every event of the feed, the other tests' too."""
import os
import signal
import time

import httpx
import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import Engine

from services.planner.models import event_consumer
from tests.budget.conftest import BUDGET
from tests.calendar.conftest import CAMPAIGN
from tests.e2e.conftest import api_key, unique

pytestmark = pytest.mark.e2e

SYNC_SECONDS = 60   # generous: includes a restart and a dead holder's lease


class System:
    """The running system through the gateway, as a planner uses it."""

    def __init__(self, system: dict):
        self.system = system
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{system['port']}/api/v1",
                                 timeout=120)
        self.key = api_key(system, "planner")

    def call(self, method: str, path: str, body=None, status: int = 200, **kwargs) -> dict | list:
        response = self.http.request(method, path, json=body, headers=self.key
                                     | kwargs.pop("headers", {}), **kwargs)
        assert response.status_code == status, response.text
        return response.json() if response.content else {}

    def campaign(self, launch: str) -> dict:
        body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")} \
            | {"template": "standard", "launch_date": launch}
        return self.call("POST", "/calendar/campaigns", body, 201)

    def read_campaign(self, campaign: dict) -> dict:
        return self.call("GET", f"/calendar/campaigns/{campaign['id']}")

    def move(self, campaign: dict, kind: str, due_date: str) -> None:
        milestone = next(m for m in campaign["milestones"] if m["kind"] == kind)
        path = f"/calendar/campaigns/{campaign['id']}/milestones/{milestone['id']}"
        etag = self.http.get(path, headers=self.key).headers["etag"]
        self.call("POST", path + "/move", {"due_date": due_date}, headers={"If-Match": etag})

    def set_status(self, campaign: dict, status: str) -> None:
        path = f"/calendar/campaigns/{campaign['id']}"
        etag = self.http.get(path, headers=self.key).headers["etag"]
        self.call("POST", path + "/status", {"status": status}, headers={"If-Match": etag})

    def team(self) -> None:
        for name, skills, hours in [("design", ["design"], "16"),
                                    ("studio", ["copy", "strategy"], "8"),
                                    ("performance", ["media", "tech"], "8")]:
            self.call("POST", "/planner/resources", {"name": unique(name), "skills": skills,
                                                     "hours_per_day": hours, "market": "US"}, 201)

    def tasks(self, campaign: dict) -> dict[str, dict]:
        return {t["id"]: t for t in self.call("GET", "/planner/tasks",
                                              params={"campaign_id": campaign["id"]})}

    def events(self) -> list[dict]:
        """Every event the calendar keeps, oldest first."""
        items, after = [], None
        while True:
            page = self.call("GET", "/calendar/events", params={"limit": 500}
                             | ({"after": after} if after else {}))
            items += page["items"]
            if page["next_cursor"] is None:
                return items
            after = page["next_cursor"]

    def synced(self, service: str) -> dict:
        """Wait until `service` has applied every event the calendar has now; its sync status."""
        newest = self.events()[-1]["id"]
        deadline = time.monotonic() + SYNC_SECONDS
        while True:
            response = self.http.get(f"/{service}/sync", headers=self.key)
            if response.status_code == 200 and response.json()["cursor"] == newest:
                return response.json()
            assert time.monotonic() < deadline, response.text
            time.sleep(0.1)


def planner_database(system: dict) -> Engine:
    """The planner's own database, read here only to see a consumer's cursor while the
    process cannot answer (stopped, or killed mid-batch)."""
    url = system["env"].get("PLANNER_DATABASE_URL") or \
        f"sqlite:///{system['env_file'].parent / 'planner.db'}"
    return create_engine(url)


def applied(database: Engine) -> int:
    with database.connect() as connection:
        return connection.execute(select(event_consumer.c.applied)).scalar_one()


def service_group(live: System, service: str) -> int:
    """The process group of the planner's or the budget's process now (`up` restarts one
    that dies, under a new pid)."""
    # The sync status names the lease holder "host:pid:token"; `up` starts each service as the
    # leader of its own process group, so the pid is also the group id.
    return int(live.synced(service)["holder"].split(":")[1])


def test_a_slip_and_a_cancellation_reach_the_planner_and_the_budget(system):
    live = System(system)
    live.team()
    slipping, other = live.campaign("2027-03-15"), live.campaign("2027-03-22")
    for campaign in (slipping, other):
        live.call("POST", f"/planner/campaigns/{campaign['id']}/tasks")
    # The planner has seen the campaigns' creation before the schedule is made: a creation it
    # applied later would mark the schedule stale too (made before it knew the campaign).
    live.synced("planner")
    first = live.call("POST", "/planner/schedules", {
        "start": "2027-02-01", "horizon_days": 90,
        "campaign_ids": [slipping["id"], other["id"]]}, 201)
    budget = live.call("POST", "/budget/budgets", BUDGET | {"campaign_ids": [slipping["id"]]}, 201)
    tasks_before = live.tasks(slipping)

    live.move(slipping, "launch", "2027-03-18")
    live.synced("planner")
    after = live.read_campaign(slipping)
    # The launch moved three working days (Mon 15 → Thu 18 March): the contingency window and
    # every phase moved with it.
    assert next(m for m in after["milestones"] if m["kind"] == "contingency")["due_date"] == \
        "2027-03-18"
    assert all(new["start_date"] > old["start_date"]
               for old, new in zip(slipping["phases"], after["phases"], strict=True))
    launch = next(m for m in slipping["milestones"] if m["kind"] == "launch")
    tasks = live.tasks(slipping)
    # "launch build" starts at most 5 working days before the launch: Thu 11 March now.
    assert (tasks[f"{launch['id']}-1"]["deadline"], tasks[f"{launch['id']}-1"]["earliest_start"]) \
        == ("2027-03-18", "2027-03-11")
    assert tasks_before[f"{launch['id']}-1"]["deadline"] == "2027-03-15"
    stale = live.call("GET", f"/planner/schedules/{first['id']}")
    moves = {e["id"] for e in live.events()
             if e["type"] == "milestone.moved" and e["campaign_id"] == slipping["id"]}
    assert stale["stale"] is True
    assert [(r["campaign_id"], r["event_type"]) for r in stale["stale_reasons"]] == \
        [(slipping["id"], "milestone.moved")]
    assert stale["stale_reasons"][0]["event_id"] in moves

    draw = {"amount": "1000.00", "reason": "rush print run", "campaign_id": slipping["id"]}
    live.call("POST", f"/budget/budgets/{budget['id']}/reserve/draws", draw, 201)
    live.set_status(slipping, "cancelled")
    live.synced("planner")
    fresh = live.call("POST", "/planner/schedules", {
        "start": "2027-02-01", "horizon_days": 90,
        "campaign_ids": [slipping["id"], other["id"]]}, 201)
    others = set(live.tasks(other))
    assert {a["task"] for a in fresh["schedule"]["assignments"]} == others
    # Re-planned as of the schedule's first day: nothing had started, so all of it leaves.
    replan = live.call("POST", f"/planner/schedules/{first['id']}/replan",
                       {"as_of": "2027-01-31"}, 201)
    assert {a["task"] for a in replan["schedule"]["assignments"]} == others
    assert live.tasks(slipping).keys() == tasks.keys()          # kept, out of the schedules

    live.synced("budget")
    refused = live.http.post(f"/budget/budgets/{budget['id']}/reserve/draws", json=draw,
                             headers=live.key)
    assert refused.status_code == 409, refused.text
    assert "cancelled" in refused.json()["detail"]


def test_the_planner_catches_up_after_a_stop_a_kill_and_a_replay(system):
    live = System(system)
    live.team()
    campaign = live.campaign("2027-04-05")
    live.call("POST", f"/planner/campaigns/{campaign['id']}/tasks")
    stored = live.call("POST", "/planner/schedules", {
        "start": "2027-02-15", "horizon_days": 90, "campaign_ids": [campaign["id"]]}, 201)
    database = planner_database(system)
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")

    # Stopped: the planner applies nothing while the calendar changes, here a long backlog
    # (the launch moved back and forth, each move a handful of events).
    group = service_group(live, "planner")
    os.killpg(group, signal.SIGSTOP)
    before = applied(database)
    live.move(campaign, "kickoff", "2027-03-01")
    live.move(campaign, "launch", "2027-04-07")
    for i in range(40):
        live.move(campaign, "launch", "2027-04-08" if i % 2 else "2027-04-09")
    total = len(live.events())
    assert applied(database) == before

    # Killed while it applies the backlog, and restarted by `up`: it goes on from its stored
    # cursor. The events applied before the kill stay applied with their cursor, and the
    # restarted process applies each of the others once: none missed, none twice. (One kill
    # mid-backlog proves what a kill while stopped did too, with one restart less.)
    os.killpg(group, signal.SIGCONT)
    deadline = time.monotonic() + SYNC_SECONDS
    while applied(database) == before:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.killpg(group, signal.SIGKILL)
    at_kill = applied(database)
    assert before < at_kill < total, (before, at_kill, total)   # killed mid-backlog
    status = live.synced("planner")
    assert status["applied"] == total and status["last_error"] is None
    tasks = live.tasks(campaign)
    assert tasks[f"{launch['id']}-1"]["deadline"] == "2027-04-08"     # the last move
    schedule = live.call("GET", f"/planner/schedules/{stored['id']}")
    assert schedule["stale"] is True

    # Replayed from the start (an operator rewinds the cursor): nothing changes.
    with database.begin() as connection:
        connection.execute(update(event_consumer).values(cursor=None))
    assert live.synced("planner")["applied"] == 2 * total
    assert live.tasks(campaign) == tasks
    assert live.call("GET", f"/planner/schedules/{stored['id']}") == schedule
    database.dispose()
