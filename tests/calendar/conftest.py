"""The calendar service on a migrated database, once per backend per test module; each test
makes its own campaigns."""
import pytest
from fastapi.testclient import TestClient

from services.calendar.app import MIGRATIONS, create_app
from services.calendar.config import CalendarSettings
from tests.conftest import TEST_SECRET, SignedApi, migrated_database

PREFIX = "/api/v1/calendar"

CAMPAIGN = {"name": "Winter sale", "owner": "ana", "channels": ["search", "social"],
            "objective": {"kpi": "conversion_rate", "target": "4.5", "unit": "%",
                          "deadline": "2026-12-31"},
            "market": "US", "time_zone": "America/New_York", "priority": 4,
            "start_date": "2026-12-01", "end_date": "2026-12-31"}


class Api(SignedApi):
    """Signed calls to the calendar service as one role or another."""

    prefix = PREFIX

    def campaign(self, **changes) -> dict:
        return self.ok(self.post("/campaigns", CAMPAIGN | changes), 201)

    def from_template(self, template: str = "standard", launch: str = "2027-03-15", **changes) -> dict:
        body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")}
        return self.ok(self.post("/campaigns", body | {"template": template, "launch_date": launch}
                                 | changes), 201)

    def milestone(self, campaign: dict, **body) -> dict:
        return self.ok(self.post(f"/campaigns/{campaign['id']}/milestones",
                                 {"kind": "kickoff", "name": "m"} | body), 201)

    def move(self, campaign: dict, milestone_id: str, due_date: str):
        path = f"/campaigns/{campaign['id']}/milestones/{milestone_id}"
        etag = self.get(path).headers["etag"]
        return self.post(path + "/move", {"due_date": due_date}, headers={"If-Match": etag})


def calendar_settings(request, tmp_path_factory) -> CalendarSettings:
    """A fresh, migrated calendar database on the backend `request.param` names."""
    url = migrated_database(request, tmp_path_factory, MIGRATIONS, request.param)
    return CalendarSettings(database_url=url, internal_secret=TEST_SECRET)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    settings = calendar_settings(request, tmp_path_factory)
    with TestClient(create_app(settings)) as client:
        yield Api(client)
