"""Stored planning: resources, templates, tasks generated from the calendar's milestones over
HTTP, schedules, and re-plans that keep started work."""
from tests.calendar.conftest import CAMPAIGN
from tests.planner.conftest import calendar_campaign, call, move, ok, team


def test_tasks_are_generated_from_the_calendars_milestones(planner, calendar):
    campaign = calendar_campaign(calendar)
    tasks = ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    creative = next(m for m in campaign["milestones"] if m["kind"] == "creative_final")
    design, review = [t for t in tasks if t["milestone_id"] == creative["id"]]
    assert (design["skill"], design["effort_hours"], design["deadline"]) == (
        "design", "40.00", creative["due_date"])
    assert review["predecessors"] == [design["id"]] and review["skill"] == "copy"
    assert design["priority"] == CAMPAIGN["priority"]
    assert {t["skill"] for t in tasks} == {"strategy", "design", "copy", "media", "tech"}
    again = ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    assert [t["id"] for t in again] == [t["id"] for t in tasks]   # refreshed, not duplicated
    assert len(ok(call(planner, "GET", "/tasks", params={"campaign_id": campaign["id"]}))) == len(tasks)


def test_an_unknown_campaign_is_a_404(planner, calendar):
    response = call(planner, "POST", "/campaigns/cmp_nope/tasks")
    assert response.status_code == 404 and "cmp_nope" in response.json()["detail"]


def test_templates_are_editable(planner, calendar):
    steps = [{"name": "media buying", "skill": "media", "effort_hours": "24", "window_days": 8}]
    ok(call(planner, "PUT", "/task-templates/channel_test", {"steps": steps}))
    templates = {t["milestone_kind"]: t for t in ok(call(planner, "GET", "/task-templates"))}
    assert templates["channel_test"]["steps"][0]["effort_hours"] == "24"
    assert templates["launch"]["steps"][0]["effort_hours"] == "12"   # the default
    assert call(planner, "PUT", "/task-templates/party", {"steps": []}).status_code == 404


def test_schedule_and_replan_keep_started_work(planner, calendar):
    team(planner)
    campaigns = [calendar_campaign(calendar, launch_date=d, priority=p)
                 for d, p in [("2027-03-15", 5), ("2027-03-17", 3), ("2027-03-22", 1)]]
    for campaign in campaigns:
        ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    ids = [c["id"] for c in campaigns]
    first = ok(call(planner, "POST", "/schedules", {"start": "2027-02-01", "horizon_days": 90,
                                                    "campaign_ids": ids}), 201)
    schedule = first["schedule"]
    assert schedule["status"] in ("optimal", "feasible") and len(schedule["assignments"]) > 10
    assert ok(call(planner, "GET", f"/schedules/{first['id']}"))["schedule"] == schedule

    # The third campaign's launch slips a week; work that started by 22 Feb stays put.
    move(calendar, campaigns[2], "launch", "2027-03-29")
    ok(call(planner, "POST", f"/campaigns/{campaigns[2]['id']}/tasks"))
    again = ok(call(planner, "POST", f"/schedules/{first['id']}/replan", {"as_of": "2027-02-22"}), 201)
    assert again["replan_of"] == first["id"]
    before = {a["task"]: a for a in schedule["assignments"]}
    after = {a["task"]: a for a in again["schedule"]["assignments"]}
    for task, a in before.items():
        if a["start"] <= "2027-02-22":
            assert (after[task]["resource"], after[task]["start"]) == (a["resource"], a["start"])
    # Kept means hour for hour: the same resource and the same hours on each day.
    moved = sum(1 for t in before if (before[t]["resource"], before[t]["days"])
                != (after[t]["resource"], after[t]["days"]))
    assert again["schedule"]["moved"] == moved


def test_a_campaign_without_tasks_is_a_422_naming_it(planner, calendar):
    response = call(planner, "POST", "/schedules", {"start": "2027-02-01", "horizon_days": 30,
                                                    "campaign_ids": ["cmp_without_tasks"]})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["campaign_ids[0]"]


def test_resources_validate_and_version(planner, calendar):
    bad = call(planner, "POST", "/resources", {"name": "x", "skills": [], "hours_per_day": "8"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "skills"
    made = ok(call(planner, "POST", "/resources", {"name": "analyst", "skills": ["analytics"],
                                                   "hours_per_day": "7.5", "market": "DE"}), 201)
    assert made["hours_per_day"] == "7.50"
    path = f"/resources/{made['id']}"
    assert call(planner, "PATCH", path, {"hours_per_day": "8"}).status_code == 428
    assert ok(call(planner, "PATCH", path, {"hours_per_day": "8"},
                   headers={"If-Match": '"1"'}))["version"] == 2
    assert call(planner, "PATCH", path, {"hours_per_day": "6"},
                headers={"If-Match": '"1"'}).status_code == 412
    assert call(planner, "POST", "/resources", {"name": "analyst", "skills": ["a"],
                                                "hours_per_day": "8"}).status_code == 409
    assert call(planner, "POST", "/resources", {"name": "y", "skills": ["a"], "hours_per_day": "8"},
                role="viewer").status_code == 403
    weekly = ok(call(planner, "POST", "/resources", {"name": "freelancer", "skills": ["copy"],
                                                     "hours_per_week": "20"}), 201)
    assert weekly["hours_per_day"] == "4.00"
    both = call(planner, "POST", "/resources", {"name": "z", "skills": ["a"], "hours_per_day": "8",
                                                "hours_per_week": "40"})
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "hours_per_day"


def test_schedule_and_replan_posts_replay_with_an_idempotency_key(planner, calendar):
    team(planner)
    campaign = calendar_campaign(calendar, launch_date="2027-03-17")
    ok(call(planner, "POST", f"/campaigns/{campaign['id']}/tasks"))
    body = {"start": "2027-02-01", "horizon_days": 90, "campaign_ids": [campaign["id"]]}
    first, again = (call(planner, "POST", "/schedules", body, headers={"Idempotency-Key": "s-1"})
                    for _ in range(2))
    assert (first.status_code, again.status_code) == (201, 201)
    # The first answer, schedule id included: the retry stored no second schedule.
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = call(planner, "POST", "/schedules", body | {"horizon_days": 60},
                 headers={"Idempotency-Key": "s-1"})
    assert other.status_code == 422 and "different request" in other.json()["detail"]

    path = f"/schedules/{first.json()['id']}/replan"
    replans = [call(planner, "POST", path, {"as_of": "2027-02-01"},
                    headers={"Idempotency-Key": "r-1"}) for _ in range(2)]
    assert [r.status_code for r in replans] == [201, 201]
    assert replans[1].json() == replans[0].json()
    assert replans[0].json()["replan_of"] == first.json()["id"]


def test_a_replayed_task_create_adds_one_task(planner, calendar):
    body = {"id": "by-hand-1", "name": "Press kit", "skill": "copy", "effort_hours": "6",
            "campaign_id": "cmp_press", "resource_id": None}
    made = [call(planner, "POST", "/tasks", body, headers={"Idempotency-Key": "t-1"})
            for _ in range(2)]
    assert [m.status_code for m in made] == [201, 201] and made[1].json() == made[0].json()
    assert made[1].headers["Idempotent-Replayed"] == "true"
    assert [t["id"] for t in ok(call(planner, "GET", "/tasks",
                                     params={"campaign_id": "cmp_press"}))] == ["by-hand-1"]
