"""The budget service on a migrated database, once per backend per test module; each test
makes its own budgets, so tests do not see each other's data."""
import csv
import io

import httpx
import pytest
from fastapi.testclient import TestClient

from services.budget.app import MIGRATIONS, create_app
from services.budget.config import BudgetSettings
from services.calendar.app import MIGRATIONS as CALENDAR_MIGRATIONS
from services.calendar.app import create_app as create_calendar_app
from services.calendar.config import CalendarSettings
from tests.calendar.conftest import CAMPAIGN
from tests.conftest import TEST_SECRET, SignedApi, ThreadedServer, migrated_database, signed_as

PREFIX = "/api/v1/budget"

BUDGET = {"name": "FY27 growth", "department": "growth", "currency": "USD",
          "start_date": "2027-01-01", "end_date": "2027-06-30", "total": "1000000.00",
          "reserve": {"percent": "10"}}
CHANNELS = [
    {"name": "search", "kind": "search", "max": "400000",
     "response": {"type": "linear", "roi": "2.1"}},
    {"name": "social", "kind": "social",
     "response": {"type": "points", "points": [["0", "0"], ["100000", "250000"], ["600000", "900000"]]}},
    {"name": "video", "kind": "video", "min": "50000",
     "response": {"type": "hill", "beta": "900000", "k": "250000", "alpha": "0.9"}},
]


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    """The rows of a CSV export, which starts with a UTF-8 byte order mark for spreadsheets."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


class Api(SignedApi):
    """Signed calls to the budget service as one role or another."""

    prefix = PREFIX

    def __init__(self, client: TestClient, database_url: str, calendar_url: str,
                 campaign_id: str):
        super().__init__(client)
        self.database_url = database_url
        self.calendar_url = calendar_url
        self.campaign_id = campaign_id   # a real campaign in the calendar service

    def calendar(self, method: str, path: str, body=None, status: int = 200,
                 headers: dict | None = None) -> dict:
        """A signed call to the real calendar service under /api/v1/calendar."""
        path = "/api/v1/calendar" + path
        response = httpx.request(method, self.calendar_url + path, json=body, headers=headers,
                                 auth=signed_as())
        return self.ok(response, status)

    def campaign(self, **changes) -> dict:
        return self.calendar("POST", "/campaigns", CAMPAIGN | changes, 201)

    def change_campaign(self, campaign_id: str, method: str, path: str, body: dict) -> dict:
        """Change a campaign at the version it is now (its ETag is its version)."""
        version = self.calendar("GET", f"/campaigns/{campaign_id}")["version"]
        return self.calendar(method, f"/campaigns/{campaign_id}{path}", body,
                             headers={"If-Match": f'"{version}"'})

    def budget(self, **changes) -> dict:
        return self.ok(self.post("/budgets", BUDGET | changes), 201)

    def budget_with_channels(self, channels=CHANNELS, **changes) -> tuple[dict, dict[str, dict]]:
        budget = self.budget(**changes)
        made = {c["name"]: self.ok(self.post(f"/budgets/{budget['id']}/channels", c), 201)
                for c in channels}
        return budget, made

    def approved_plan(self, budget_id: str, **body) -> dict:
        plan = self.ok(self.post(f"/budgets/{budget_id}/plans", body), 201)
        return self.ok(self.post(f"/budgets/{budget_id}/plans/{plan['number']}/approve"))


@pytest.fixture(scope="module")
def calendar(request, tmp_path_factory):
    """The real calendar service, which the budget service asks about linked campaigns."""
    url = migrated_database(request, tmp_path_factory, CALENDAR_MIGRATIONS, "sqlite")
    server = ThreadedServer(create_calendar_app(
        CalendarSettings(database_url=url, internal_secret=TEST_SECRET))).start()
    path = "/api/v1/calendar/campaigns"
    created = httpx.post(server.url + path, json=CAMPAIGN, auth=signed_as())
    assert created.status_code == 201, created.text
    yield server, created.json()["id"]
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, calendar):
    url = migrated_database(request, tmp_path_factory, MIGRATIONS, request.param)
    server, campaign_id = calendar
    # The tests apply the calendar's events themselves (`consumer.poll_once()`).
    settings = BudgetSettings(database_url=url, internal_secret=TEST_SECRET, solver_workers=1,
                              calendar_url=server.url, events_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield Api(client, url, server.url, campaign_id)
