"""Plan a campaign against the contract's calendar and budget (fakes over real HTTP), on both
backends: a what-if that stores nothing, scheduled with the work already planned; a commit that
creates all three parts or, when a step fails, undoes the earlier ones and names the step."""
from datetime import date, timedelta

import pytest

from shared.workdays import add_working_days, next_working_day
from tests.planner.conftest import Api, call, composed_planner, ok, team
from tests.planner.test_campaign_overview import campaign_body, resource_id
from tests.planner.test_jobs import ASYNC, follow, submit

TODAY = date.today()
LAUNCH = next_working_day(TODAY + timedelta(days=90), "US")
PLANS = "/campaign-plans"


def plan_body(name: str, **changes) -> dict:
    # The default 2 s to schedule its work is plenty alone, not on a busy machine.
    body = campaign_body(name, LAUNCH) | {"budget_id": "bud_1", "ceiling": "50000.00",
                                          "time_limit_seconds": 10}
    del body["owner"]
    return body | changes


def plan(planner, body: dict, key: str | None = None):
    return call(planner, "POST", PLANS, body, headers={"Idempotency-Key": key} if key else {})


def campaign_tasks(planner, campaign_id: str) -> list[dict]:
    return ok(call(planner, "GET", "/tasks", params={"campaign_id": campaign_id}))


def test_a_what_if_answers_all_three_parts_and_stores_nothing(composed, peers):
    team(composed)
    tasks_before = ok(call(composed, "GET", "/tasks"))
    answer = ok(plan(composed, plan_body("What if")))
    assert answer["committed"] is False and answer["funded"] is None
    campaign = answer["campaign"]
    assert campaign["id"] is None
    assert [m["kind"] for m in campaign["milestones"]] == [
        "kickoff", "creative_final", "channel_test", "review_gate", "launch"]
    assert [m["id"] for m in campaign["milestones"]] == [f"planned-{i}" for i in range(1, 6)]
    work = answer["work"]
    # Tasks named after the placeholder milestones: creative final (planned-2) has two steps.
    assert [t["id"] for t in work["tasks"]] == [
        "planned-1-1", "planned-2-1", "planned-2-2", "planned-3-1", "planned-5-1"]
    assert all(t["resource"] and t["start"] >= TODAY.isoformat() for t in work["tasks"])
    assert (work["late"], work["saturated"]) == ([], [])
    # The fake budget spends the ceiling evenly over the two channels, returning 2.5 each.
    funding = answer["funding"]
    assert [(x["channel_kind"], x["amount"]) for x in funding["lines"]] == [
        ("social", "25000.00"), ("search", "25000.00")]
    assert (funding["expected_return"], funding["target_reached"]) == ("125000.00", True)
    assert peers.campaigns == {} and peers.funding == {}
    assert ok(call(composed, "GET", "/tasks")) == tasks_before
    assert [m for m, _ in peers.calls if m in ("PUT", "DELETE")] == []


def test_the_new_campaign_is_scheduled_against_the_work_already_planned(composed, peers):
    """Two campaigns launching in 13 working days each need 40 h of design by the creative
    final 10 working days before: 80 h in 4 working days (today's counted where it is one)
    of a 16 h/day design team. The planned campaign has priority 1 and the stored one 5, so
    the planned campaign's design is the one that is late."""
    team(composed)
    launch = add_working_days(TODAY, 13, "US")
    stored = peers.add_campaign(campaign_body("Stored", launch, priority=5))
    ok(call(composed, "POST", f"/campaigns/{stored['id']}/tasks"))
    ok(call(composed, "POST", "/schedules", {"start": TODAY.isoformat(), "horizon_days": 90}), 201)
    answer = ok(plan(composed, plan_body("Squeezed", launch_date=launch.isoformat(), priority=1)))
    design = resource_id(composed, "design")
    late = {x["task"]: x for x in answer["work"]["late"]}
    assert late["planned-2-1"]["resource"] == design and late["planned-2-1"]["days_late"] >= 1
    [saturated] = [s for s in answer["work"]["saturated"] if s["resource"] == design]
    assert "planned-2-1" in saturated["reason"]
    stored_design = f"{stored['milestones'][1]['id']}-1"
    assert stored_design not in {x["task"] for x in answer["work"]["others_late"]}


def test_a_commit_needs_an_idempotency_key(composed, peers):
    response = plan(composed, plan_body("No key", commit=True))
    assert response.status_code == 428 and "Idempotency-Key" in response.json()["detail"]
    assert peers.campaigns == {}


def test_a_commit_creates_the_campaign_its_tasks_and_its_funding_once(composed, peers):
    team(composed)
    response = plan(composed, plan_body("Committed", commit=True), key="plan-1")
    answer = ok(response, 201)
    [campaign] = peers.campaigns.values()
    assert (campaign["name"], campaign["status"], campaign["owner"]) == (
        "Committed", "draft", "key:test")
    assert answer["committed"] is True and answer["campaign"]["id"] == campaign["id"]
    # The what-if's tasks under the created milestones' ids, as the planner stored them.
    stored = campaign_tasks(composed, campaign["id"])
    assert sorted(t["id"] for t in answer["work"]["tasks"]) == [t["id"] for t in stored]
    assert answer["work"]["tasks"][0]["id"] == f"{campaign['milestones'][0]['id']}-1"
    assert [(x["channel_id"], x["amount"]) for x in answer["funded"]["lines"]] == [
        ("ch_social", "25000.00"), ("ch_search", "25000.00")]
    assert peers.funding[("bud_1", campaign["id"])]["committed"] == "50000.00"

    again = plan(composed, plan_body("Committed", commit=True), key="plan-1")
    assert ok(again, 201) == answer and again.headers["Idempotent-Replayed"] == "true"
    assert len(peers.campaigns) == 1


@pytest.fixture
def failing_funding(backend_url, peers):
    """A planner whose commits fail after their last step (PLANNER_FAIL_STEP=funding)."""
    with composed_planner(backend_url, peers, fail_step="funding") as client:
        yield client


def test_a_failure_in_the_last_step_leaves_nothing(failing_funding, peers):
    team(failing_funding)
    response = plan(failing_funding, plan_body("Doomed", commit=True), key="plan-doomed")
    assert response.status_code == 502
    problem = response.json()
    assert (problem["step"], problem["undone"], problem["left"]) == ("funding", True, [])
    assert "PLANNER_FAIL_STEP=funding" in problem["detail"]
    campaign_id = problem["campaign_id"]
    # Each step was done, then undone newest first.
    assert [c for c in peers.calls if c[0] in ("PUT", "DELETE")] == [
        ("PUT", f"/api/v1/budget/budgets/bud_1/campaigns/{campaign_id}"),
        ("DELETE", f"/api/v1/budget/budgets/bud_1/campaigns/{campaign_id}"),
        ("DELETE", f"/api/v1/calendar/campaigns/{campaign_id}")]
    assert (peers.campaigns, peers.funding) == ({}, {})
    assert campaign_tasks(failing_funding, campaign_id) == []
    # The same key answers the same failure (the calendar would replay the deleted campaign).
    again = plan(failing_funding, plan_body("Doomed", commit=True), key="plan-doomed")
    assert again.status_code == 502 and again.json() == problem


def test_a_refused_funding_is_relayed_with_its_step_and_undone(composed, peers):
    team(composed)
    peers.refuse[("PUT", "/api/v1/budget/budgets/")] = (
        409, {"detail": "channel ch_social has 100.00 left"})
    response = plan(composed, plan_body("Too dear", commit=True), key="plan-dear")
    assert response.status_code == 409
    problem = response.json()
    assert (problem["step"], problem["undone"]) == ("funding", True)
    assert "channel ch_social has 100.00 left" in problem["detail"]
    assert peers.campaigns == {}
    assert campaign_tasks(composed, problem["campaign_id"]) == []


def test_an_undo_that_fails_says_what_is_left(composed, peers):
    team(composed)
    peers.refuse[("PUT", "/api/v1/budget/budgets/")] = (409, {"detail": "no money"})
    peers.refuse[("DELETE", "/api/v1/calendar/campaigns/")] = (500, {"detail": "down"})
    problem = plan(composed, plan_body("Stuck", commit=True), key="plan-stuck").json()
    assert (problem["status"], problem["undone"]) == (409, False)
    assert problem["left"] == [f"the draft campaign {problem['campaign_id']}"]
    assert "same Idempotency-Key" in problem["detail"]
    assert campaign_tasks(composed, problem["campaign_id"]) == []   # the tasks were undone


def test_the_calendars_refusal_of_the_preview_is_relayed_and_nothing_is_made(composed, peers):
    errors = [{"in": "body", "field": "launch_date", "detail": "a Saturday", "type": "value_error"}]
    peers.refuse[("POST", "/api/v1/calendar/campaigns/preview")] = (
        422, {"detail": "launch_date is not a working day", "errors": errors})
    response = plan(composed, plan_body("Weekend", commit=True), key="plan-weekend")
    assert response.status_code == 422
    assert response.json()["errors"] == errors
    assert "calendar" in response.json()["detail"]
    assert peers.campaigns == {} and ("POST", "/api/v1/calendar/campaigns") not in peers.calls


def test_an_unknown_budget_is_a_field_to_fix_and_nothing_is_made(composed, peers):
    team(composed)
    peers.refuse[("POST", "/api/v1/budget/budgets/")] = (404, {"detail": "There is no budget"})
    response = plan(composed, plan_body("Nowhere", budget_id="bud_0", commit=True), key="plan-0")
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["budget_id"]
    assert "bud_0" in response.json()["detail"]
    assert peers.campaigns == {} and peers.funding == {}


def test_a_campaign_plan_runs_as_a_job(composed, peers):
    api = Api(composed)
    team(composed)
    # A commit without a key is refused before anything is queued.
    refused = api.post(PLANS, plan_body("No key", commit=True), headers=ASYNC)
    assert refused.status_code == 428 and "Idempotency-Key" in refused.json()["detail"]
    whatif, _ = follow(api, submit(api, PLANS, plan_body("As a job"))["id"])
    assert whatif["status"] == "succeeded", whatif
    assert whatif["result"]["committed"] is False and peers.campaigns == {}
    synchronous = ok(plan(composed, plan_body("As a job")))
    assert whatif["result"]["funding"] == synchronous["funding"]
    assert whatif["result"]["work"]["tasks"] == synchronous["work"]["tasks"]

    key = {"Idempotency-Key": "plan-as-a-job"}
    job, _ = follow(api, submit(api, PLANS, plan_body("Job", commit=True), headers=key)["id"])
    assert job["status"] == "succeeded", job
    [campaign] = peers.campaigns.values()
    assert job["result"]["committed"] is True and job["result"]["campaign"]["id"] == campaign["id"]
    # The key's synchronous replay answers the job's commit: one campaign, not two.
    again = plan(composed, plan_body("Job", commit=True), key="plan-as-a-job")
    assert ok(again, 201) == job["result"] and len(peers.campaigns) == 1
