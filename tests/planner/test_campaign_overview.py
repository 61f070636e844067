"""The campaign overview against the contract's calendar and budget (fakes over real HTTP), on
both backends: one answer for dates, money and work, `partial` when a service cannot answer,
404 only when the calendar says the campaign does not exist."""
from datetime import date, timedelta

from shared.workdays import next_working_day
from tests.planner.conftest import call, ok, team

TODAY = date.today()
LAUNCH = next_working_day(TODAY + timedelta(days=60), "US")
APPROVAL = {"id": 1, "approver": "key:lead", "approver_name": None, "decision": "passed",
            "comment": "numbers look right", "at": "2026-01-05T10:00:00+00:00",
            "request_id": None}


def campaign_body(name: str, launch: date = LAUNCH, **changes) -> dict:
    return {"name": name, "template": "standard", "launch_date": launch.isoformat(),
            "market": "US", "time_zone": "America/New_York", "channels": ["social", "search"],
            "priority": 3, "owner": "ana",
            "objective": {"kpi": "revenue", "target": "100000", "unit": "USD",
                          "deadline": (launch + timedelta(days=60)).isoformat()}} | changes


def scheduled_campaign(planner, peers, name: str) -> dict:
    """A calendar campaign with a passed review gate, its generated tasks in a stored schedule
    and 12,000 of funding on social."""
    team(planner)
    campaign = peers.add_campaign(campaign_body(name))
    gate = next(m for m in campaign["milestones"] if m["kind"] == "review_gate")
    gate["approval"] = APPROVAL
    ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    peers.fund("bud_1", campaign["id"], [{"channel_id": "ch_social", "amount": "12000.00"}])
    schedule = ok(call(planner, "POST", "/schedules", {
        "start": TODAY.isoformat(), "horizon_days": 120, "campaign_ids": [campaign["id"]]}), 201)
    return campaign | {"schedule_id": schedule["id"]}


def resource_id(planner, name: str) -> str:
    return next(r["id"] for r in ok(call(planner, "GET", "/resources")) if r["name"] == name)


def overview(planner, campaign_id: str, role: str = "viewer"):
    return call(planner, "GET", f"/campaigns/{campaign_id}/overview", role=role)


def test_the_overview_shows_dates_money_and_work_in_one_answer(composed, peers):
    campaign = scheduled_campaign(composed, peers, "Spring sale")
    answer = ok(overview(composed, campaign["id"]))
    assert answer["partial"] == []
    assert answer["campaign"]["status"] == "planned"
    assert [p["kind"] for p in answer["campaign"]["phases"]] == [
        "warmup", "burst", "sustain", "wrapup"]
    gate = next(m for m in answer["campaign"]["milestones"] if m["kind"] == "review_gate")
    assert (gate["decision"]["decision"], gate["decision"]["approver"]) == ("passed", "key:lead")
    [funding] = answer["money"]
    assert (funding["budget_id"], funding["committed"]) == ("bud_1", "12000.00")
    assert funding["lines"][0]["return"] == "0.00"                 # by its own name, not return_
    assert [p["kind"] for p in funding["lines"][0]["per_phase"]] == [
        "warmup", "burst", "sustain", "wrapup"]
    work = answer["work"]
    # The standard template's tasks: brief, design, copy review, media buying, launch build.
    assert [t["skill"] for t in work["tasks"]] == ["strategy", "design", "copy", "media", "tech"]
    assert all(t["resource"] and t["start"] and t["finish"] for t in work["tasks"])
    assert work["schedule"]["id"] == campaign["schedule_id"]
    assert (work["schedule"]["stale"], work["schedule"]["unscheduled"]) == (False, [])


def test_late_work_comes_with_its_reason_and_a_task_missing_from_the_schedule_makes_it_stale(
        composed, peers):
    campaign = scheduled_campaign(composed, peers, "Tight deadline")
    # 40 h of tech work due on the schedule's first working day: tech has 8 h a day, so it
    # ends on the fifth working day, 4 working days late (outside a holiday week).
    due = next_working_day(TODAY, "US")
    ok(call(composed, "POST", "/tasks", {
        "id": "rush-build", "name": "rush build", "campaign_id": campaign["id"], "skill": "tech",
        "effort_hours": "40", "deadline": due.isoformat(), "priority": 3}), 201)
    schedule = ok(call(composed, "POST", "/schedules", {
        "start": TODAY.isoformat(), "horizon_days": 120, "campaign_ids": [campaign["id"]]}), 201)
    work = ok(overview(composed, campaign["id"]))["work"]
    assert work["schedule"]["id"] == schedule["id"] and work["schedule"]["stale"] is False
    [late] = [x for x in work["late"] if x["task"] == "rush-build"]
    assert (late["resource"], late["days_late"]) == (resource_id(composed, "tech"), 4)
    assert late["reason"]

    ok(call(composed, "POST", "/tasks", {
        "id": "afterthought", "name": "afterthought", "campaign_id": campaign["id"],
        "skill": "copy", "effort_hours": "2", "priority": 3}), 201)
    work = ok(overview(composed, campaign["id"]))["work"]
    assert work["schedule"]["stale"] is True
    assert work["schedule"]["unscheduled"] == ["afterthought"]
    assert next(t for t in work["tasks"] if t["id"] == "afterthought")["resource"] is None


def test_a_hanging_budget_leaves_the_rest_of_the_overview(composed, peers):
    campaign = scheduled_campaign(composed, peers, "Budget hangs")
    peers.budget_delay = 1.5   # the planner waits 0.5 s (overview_timeout_seconds)
    answer = ok(overview(composed, campaign["id"]))
    assert (answer["partial"], answer["money"]) == (["budget"], None)
    assert answer["campaign"]["id"] == campaign["id"] and answer["work"]["tasks"]


def test_a_failing_budget_or_calendar_is_named_in_partial(composed, peers):
    campaign = scheduled_campaign(composed, peers, "Services fail")
    peers.budget_status = 500
    assert ok(overview(composed, campaign["id"]))["partial"] == ["budget"]
    peers.budget_status, peers.calendar_status = None, 503
    answer = ok(overview(composed, campaign["id"]))
    assert (answer["partial"], answer["campaign"]) == (["calendar"], None)
    assert answer["money"][0]["committed"] == "12000.00"
    assert len(answer["work"]["tasks"]) == 5


def test_only_the_calendar_saying_so_makes_a_404(composed, peers):
    response = overview(composed, "cmp_unknown")
    assert response.status_code == 404 and "cmp_unknown" in response.json()["detail"]
    peers.calendar_status = 503
    answer = ok(overview(composed, "cmp_unknown"))
    assert answer["partial"] == ["calendar"]
    assert answer["work"] == {"tasks": [], "late": [], "schedule": None}
