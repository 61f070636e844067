"""The API as generated clients see it: a Python client (openapi-python-client) runs each
service's main flow, and TypeScript types (openapi-typescript) type-check a frontend's use."""
import importlib
import shutil
import subprocess
import uuid

import pytest

from tests.budget.conftest import BUDGET, CHANNELS
from tests.calendar.conftest import CAMPAIGN
from tests.clients.conftest import HERE, PACKAGE


def op(name: str):
    """A generated operation module, e.g. `op("calendar.create_campaign").sync_detailed`."""
    return importlib.import_module(f"{PACKAGE}.api.{name}")


@pytest.fixture
def client(python_client, system):
    return python_client.AuthenticatedClient(base_url=system["url"], token=system["admin"],
                                             raise_on_unexpected_status=True, timeout=120)


@pytest.fixture
def models(python_client):
    return importlib.import_module(f"{PACKAGE}.models")


def test_typescript_types_check_against_a_frontends_use(document, node_tools, tmp_path):
    generated = subprocess.run([str(node_tools / "openapi-typescript"), str(document), "-o",
                                str(tmp_path / "schema.d.ts")],
                               capture_output=True, text=True, timeout=300)
    assert generated.returncode == 0, generated.stderr
    shutil.copy(HERE / "usage.ts", tmp_path / "usage.ts")
    checked = subprocess.run([str(node_tools / "tsc"), "--strict", "--noEmit", "--target",
                              "es2022", "--module", "es2022", "--moduleResolution", "bundler",
                              str(tmp_path / "usage.ts")],
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_calendar_flow_through_the_python_client(client, models):
    create = op("calendar.create_campaign")
    body = models.CampaignCreate.from_dict(
        {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")}
        | {"template": "standard", "launch_date": "2027-01-04"})
    key = str(uuid.uuid4())
    first = create.sync_detailed(client=client, body=body, idempotency_key=key)
    assert first.status_code == 201
    campaign = first.parsed
    assert isinstance(campaign, models.CampaignPublic) and campaign.milestones
    assert first.headers["location"] == f"/api/v1/calendar/campaigns/{campaign.id}"

    # a retried create with the same key: the first answer, marked as a replay
    again = create.sync_detailed(client=client, body=body, idempotency_key=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.parsed.id == campaign.id

    # a bulk file with a bad row: a typed problem naming the row and field
    rows = [CAMPAIGN, CAMPAIGN | {"priority": 9}]
    bulk = op("calendar.create_campaigns_in_bulk").sync_detailed(
        client=client, body=models.BulkCreate.from_dict({"campaigns": rows}))
    assert bulk.status_code == 422
    problem = bulk.parsed
    assert isinstance(problem, models.Problem) and problem.status == 422
    assert any("priority" in error.field and "[1]" in error.field for error in problem.errors)

    # read with its ETag, then change it with If-Match
    read = op("calendar.read_campaign").sync_detailed(campaign_id=campaign.id, client=client)
    etag = read.headers["etag"]
    assert first.headers["etag"] == etag
    moved = op("calendar.change_status").sync_detailed(
        campaign_id=campaign.id, client=client, if_match=etag,
        body=models.StatusChange.from_dict({"status": "planned"}))
    assert moved.status_code == 200 and moved.parsed.status == "planned"
    stale = op("calendar.change_status").sync_detailed(
        campaign_id=campaign.id, client=client, if_match=etag,
        body=models.StatusChange.from_dict({"status": "cancelled"}))
    assert stale.status_code == 412 and isinstance(stale.parsed, models.Problem)

    page = op("calendar.read_campaigns").sync_detailed(client=client, limit=1)
    assert isinstance(page.parsed.items[0], models.CampaignPublic)


def test_budget_flow_through_the_python_client(client, models):
    created = op("budget.create_budget").sync_detailed(
        client=client, body=models.BudgetCreate.from_dict(BUDGET | {"name": "client"}))
    assert created.status_code == 201
    budget = created.parsed
    assert isinstance(budget, models.BudgetPublic) and budget.total == "1000000.00"
    for channel in CHANNELS:
        made = op("budget.create_channel").sync_detailed(
            budget_id=budget.id, client=client, body=models.ChannelCreate.from_dict(channel))
        assert isinstance(made.parsed, models.ChannelPublic), made.content
    key = str(uuid.uuid4())
    plan = op("budget.create_plan").sync_detailed(
        budget_id=budget.id, client=client, body=models.PlanCreate.from_dict({}),
        idempotency_key=key)
    assert plan.status_code == 201 and isinstance(plan.parsed, models.PlanPublic)
    again = op("budget.create_plan").sync_detailed(
        budget_id=budget.id, client=client, body=models.PlanCreate.from_dict({}),
        idempotency_key=key)
    assert again.headers["idempotent-replayed"] == "true"

    # money with more decimals than the currency has: a 422 the client reads as a Problem
    bad = op("budget.create_budget").sync_detailed(
        client=client, body=models.BudgetCreate.from_dict(BUDGET | {"total": "10.001"}))
    assert bad.status_code == 422 and isinstance(bad.parsed, models.Problem)
    assert bad.parsed.detail


def test_planner_flow_through_the_python_client(client, models):
    campaign = op("calendar.create_campaign").sync_detailed(
        client=client, body=models.CampaignCreate.from_dict(
            {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")}
            | {"template": "flash_sale", "launch_date": "2027-03-15"})).parsed
    for name, skills, hours in [("studio", ["design", "copy", "strategy"], "16"),
                                ("performance", ["media", "tech"], "8")]:
        made = op("planner.create_resource").sync_detailed(
            client=client, body=models.ResourceCreate.from_dict(
                {"name": name, "skills": skills, "hours_per_day": hours, "market": "US"}),
            idempotency_key=str(uuid.uuid4()))
        assert isinstance(made.parsed, models.ResourcePublic), made.content
    tasks = op("planner.generate_tasks").sync_detailed(campaign_id=campaign.id, client=client)
    assert tasks.parsed and all(isinstance(t, models.TaskPublic) for t in tasks.parsed)
    schedule = op("planner.create_schedule").sync_detailed(
        client=client, body=models.ScheduleCreate.from_dict(
            {"start": "2027-02-15", "horizon_days": 60, "campaign_ids": [campaign.id]}))
    assert schedule.status_code == 201 and isinstance(schedule.parsed, models.StoredSchedulePublic)
    read = op("planner.read_schedule").sync_detailed(schedule_id=schedule.parsed.id, client=client)
    assert read.parsed.id == schedule.parsed.id

    # a schedule with an unknown query parameter: refused, naming it
    unknown = client.get_httpx_client().get("/api/v1/planner/tasks", params={"campain": "x"})
    assert unknown.status_code == 422 and "campain" in unknown.text
