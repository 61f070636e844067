"""The calendar → planner path through the gateway: a campaign created in the calendar, its
tasks generated in the planner from the milestones it reads over HTTP, a schedule, a re-plan."""
import httpx
import pytest

from tests.calendar.conftest import CAMPAIGN
from tests.e2e.conftest import api_key, unique

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("system", ["sqlite"], indirect=True)   # both backends: tests/planner
def test_campaign_to_schedule_through_the_gateway(system):
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{system['port']}/api/v1", timeout=120)
    planner = api_key(system, "planner")
    body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")} \
        | {"template": "flash_sale", "launch_date": "2027-03-15"}
    campaign = gateway.post("/calendar/campaigns", json=body, headers=planner).json()
    for name, skills, hours in [("studio", ["design", "copy", "strategy"], "16"),
                                ("performance", ["media", "tech"], "8")]:
        response = gateway.post("/planner/resources", json={
            "name": unique(name), "skills": skills, "hours_per_day": hours, "market": "US"}, headers=planner)
        assert response.status_code == 201, response.text
    tasks = gateway.post(f"/planner/campaigns/{campaign['id']}/tasks", headers=planner)
    assert tasks.status_code == 200, tasks.text
    assert {t["milestone_id"] for t in tasks.json()} <= {m["id"] for m in campaign["milestones"]}
    assert gateway.post("/planner/campaigns/cmp_unknown/tasks", headers=planner).status_code == 404

    created = gateway.post("/planner/schedules", json={
        "start": "2027-02-15", "horizon_days": 60, "campaign_ids": [campaign["id"]]}, headers=planner)
    assert created.status_code == 201, created.text
    schedule = created.json()["schedule"]
    assert schedule["status"] == "optimal"
    assert {a["task"] for a in schedule["assignments"]} == {t["id"] for t in tasks.json()}

    replanned = gateway.post(f"/planner/schedules/{created.json()['id']}/replan",
                             json={"as_of": "2027-02-15"}, headers=planner)
    assert replanned.status_code == 201, replanned.text
    assert replanned.json()["schedule"]["moved"] == 0     # nothing changed, nothing moves
    viewer = api_key(system, "viewer")
    assert gateway.get(f"/planner/schedules/{created.json()['id']}", headers=viewer).status_code == 200
    assert gateway.post("/planner/schedules", json={"start": "2027-02-15", "horizon_days": 60},
                        headers=viewer).status_code == 403
