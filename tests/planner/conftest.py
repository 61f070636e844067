"""The planner service (with its CP-SAT worker processes) on a migrated SQLite database, once
per test module; the stateless solve stores nothing, so one backend is enough here. Stored
planning runs on both backends against the real calendar service."""
from collections import defaultdict
from datetime import date
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient

from services.planner.app import MIGRATIONS, create_app
from services.planner.config import PlannerSettings
from shared.workers import WorkerPool
from tests.calendar.conftest import CAMPAIGN
from tests.conftest import TEST_SECRET, SignedApi, migrated_database, signed_as

SOLVE = "/api/v1/planner/solve"
ok = SignedApi.ok


class Api(SignedApi):
    prefix = "/api/v1/planner"


def call(client, method: str, path: str, body=None, **kwargs):
    return Api(client).call(method, path, json=body, **kwargs)


def calendar_call(calendar, method: str, path: str, body=None, **kwargs) -> httpx.Response:
    """A signed call to the real calendar service under /api/v1/calendar."""
    path = "/api/v1/calendar" + path
    return httpx.request(method, calendar.url + path, json=body, auth=signed_as(), **kwargs)


def calendar_campaign(calendar, **changes) -> dict:
    body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")} \
        | {"template": "standard", "launch_date": "2027-03-15"} | changes
    return ok(calendar_call(calendar, "POST", "/campaigns", body), 201)


def milestone_of(campaign: dict, kind: str) -> dict:
    return next(m for m in campaign["milestones"] if m["kind"] == kind)


def move(calendar, campaign: dict, kind: str, due_date: str) -> None:
    path = f"/campaigns/{campaign['id']}/milestones/{milestone_of(campaign, kind)['id']}"
    etag = calendar_call(calendar, "GET", path).headers["etag"]
    ok(calendar_call(calendar, "POST", path + "/move", {"due_date": due_date},
                     headers={"If-Match": etag}))


def team(planner) -> None:
    if ok(call(planner, "GET", "/resources")):
        return
    for name, skills, hours in [("design", ["design"], "16"), ("copy", ["copy", "strategy"], "8"),
                                ("media", ["media"], "8"), ("tech", ["tech"], "8")]:
        ok(call(planner, "POST", "/resources", {"name": name, "skills": skills,
                                                "hours_per_day": hours, "market": "US"}), 201)

EXAMPLE = {
    "start": "2026-12-01", "horizon_days": 120,
    "calendar": {"weekend": ["sat", "sun"], "holidays": ["2026-12-25"]},
    "resources": [{"id": "design", "skills": ["design"], "hours_per_day": "24",
                   "time_off": ["2026-12-10"]},
                  {"id": "copy", "skills": ["copy", "brief"], "hours_per_day": "8"}],
    "tasks": [
        {"id": "c1-brief", "campaign_id": "c1", "skill": "brief", "effort_hours": "4",
         "deadline": "2026-12-02", "priority": 3},
        {"id": "c1-creative", "campaign_id": "c1", "skill": "design", "effort_hours": "40",
         "earliest_start": "2026-12-01", "deadline": "2026-12-15", "priority": 3,
         "predecessors": ["c1-brief"], "max_hours_per_day": "16", "resource_id": None}],
}


def solve(client: TestClient, body: dict, role: str = "planner"):
    return client.post(SOLVE, json=body, auth=signed_as(role))


def check_schedule(request: dict, schedule: dict) -> None:
    """Independently check every rule of the contract on an answer."""
    weekend = {("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(d)
               for d in request.get("calendar", {}).get("weekend", ["sat", "sun"])}
    holidays = set(request.get("calendar", {}).get("holidays", []))
    resources = {r["id"]: r for r in request["resources"]}
    tasks = {t["id"]: t for t in request["tasks"]}
    load: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    by_task = {a["task"]: a for a in schedule["assignments"]}
    assert set(by_task) == set(tasks)
    for a in schedule["assignments"]:
        task, resource = tasks[a["task"]], resources[a["resource"]]
        assert task["skill"] in resource["skills"]
        assert task.get("resource_id") in (None, a["resource"])
        assert sum(Decimal(d["hours"]) for d in a["days"]) == Decimal(task["effort_hours"])
        for day in a["days"]:
            when = date.fromisoformat(day["date"])
            assert when.weekday() not in weekend and day["date"] not in holidays
            assert day["date"] not in resource.get("time_off", [])
            if task.get("max_hours_per_day"):
                assert Decimal(day["hours"]) <= Decimal(task["max_hours_per_day"])
            load[a["resource"], day["date"]] += Decimal(day["hours"])
        assert (a["start"], a["finish"]) == (a["days"][0]["date"], a["days"][-1]["date"])
        if task.get("earliest_start"):
            assert a["start"] >= task["earliest_start"]
        for p in task.get("predecessors", []):
            assert a["start"] > by_task[p]["finish"]
    for (resource, _), hours in load.items():
        assert hours <= Decimal(resources[resource]["hours_per_day"])


@pytest.fixture(scope="module")
def client(request, tmp_path_factory):
    url = migrated_database(request, tmp_path_factory, MIGRATIONS, "sqlite")
    settings = PlannerSettings(database_url=url, internal_secret=TEST_SECRET, solver_workers=1)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def calendar(request, tmp_path_factory):
    """The real calendar service, whose milestones the planner turns into tasks."""
    from services.calendar.app import MIGRATIONS as CALENDAR_MIGRATIONS
    from services.calendar.app import create_app as create_calendar_app
    from services.calendar.config import CalendarSettings
    from tests.conftest import ThreadedServer

    url = migrated_database(request, tmp_path_factory, CALENDAR_MIGRATIONS, "sqlite")
    server = ThreadedServer(create_calendar_app(
        CalendarSettings(database_url=url, internal_secret=TEST_SECRET))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def planner(request, tmp_path_factory, calendar):
    """The planner on each backend, talking to the real calendar service."""
    url = migrated_database(request, tmp_path_factory, MIGRATIONS, request.param)
    # The tests drive the event consumer themselves (tests/planner/test_propagation.py).
    settings = PlannerSettings(database_url=url, internal_secret=TEST_SECRET, solver_workers=1,
                               calendar_url=calendar.url, events_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def fakes():
    """The contract's calendar and budget as two fake services (tests/planner/contract_fakes.py),
    each on its own server so that one hanging leaves the other answering."""
    from tests.planner.contract_fakes import Fakes, serve

    state = Fakes()
    calendar_server, budget_server = serve(state), serve(state)
    state.calendar_url, state.budget_url = calendar_server.url, budget_server.url
    yield state
    calendar_server.stop()
    budget_server.stop()


def composed_planner(url: str, fakes, **settings) -> TestClient:
    """A planner on `url` (migrated: `backend_url`) calling the fake calendar and budget."""
    return TestClient(create_app(PlannerSettings(
        database_url=url, internal_secret=TEST_SECRET, solver_workers=1,
        calendar_url=fakes.calendar_url, budget_url=fakes.budget_url, events_poll_seconds=0,
        overview_timeout_seconds=0.5, **settings)))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend_url(request, tmp_path_factory):
    """A fresh, migrated planner database URL per module, on each backend."""
    return migrated_database(request, tmp_path_factory, MIGRATIONS, request.param)


@pytest.fixture(scope="module")
def composed(backend_url, fakes):
    """The planner on each backend against the contract's fakes."""
    with composed_planner(backend_url, fakes) as client:
        yield client


@pytest.fixture
def peers(fakes):
    """The fakes, emptied and healthy for each test."""
    fakes.reset()
    return fakes


def engine_solve(problem):
    """The engine's solve, as a worker of `pool` runs it (the pool preloads CP-SAT)."""
    from services.planner.engine import cp_sat
    return cp_sat.solve(problem)


@pytest.fixture(scope="module")
def pool():
    """Run `pool(function, problem)` in a worker process, as the service does, with room
    past the problem's time limit: a solve that overran fails the test, not the worker."""
    workers = WorkerPool(1, preload=("services.planner.engine.cp_sat",))
    workers.start()
    yield lambda function, problem: workers.run(function, problem,
                                                timeout=problem.time_limit + 30)
    workers.close()
