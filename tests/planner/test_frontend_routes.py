"""The planner routes a frontend needs (issue 14): one task or resource read, edited and
deleted, the stored schedules listed, the templates previewed and the skills listed; and a
malformed campaign id refused as the caller's 422, not relayed as a 503. On SQLite and
PostgreSQL, against the real calendar service. The module's tests share one database and run
in file order: the skills are listed before any resource exists."""
import httpx
import pytest

from services.planner.tasks import fetch_campaign
from shared.errors import UnprocessableContent
from tests.calendar.conftest import CAMPAIGN as CALENDAR_CAMPAIGN
from tests.conftest import signed_as
from tests.planner.conftest import call, milestone_of, ok

CAMPAIGN = "cmp_frontend"


def resource(planner, name: str, skills: list[str]) -> dict:
    return ok(call(planner, "POST", "/resources", {"name": name, "skills": skills,
                                                   "hours_per_day": "8", "market": "US"}), 201)


def task(planner, task_id: str, skill: str, **fields) -> dict:
    return ok(call(planner, "POST", "/tasks", {
        "id": task_id, "name": task_id, "campaign_id": CAMPAIGN, "skill": skill,
        "effort_hours": "8", "earliest_start": "2027-06-07", "deadline": "2027-06-18",
        **fields}), 201)


def calendar_campaign(calendar, name: str) -> dict:
    # conftest's calendar_call signs headers, not the request as sent, which the calendar
    # now refuses (401): this signs it as the gateway does.
    body = {k: v for k, v in CALENDAR_CAMPAIGN.items() if k not in ("start_date", "end_date")} \
        | {"template": "standard", "launch_date": "2027-03-15", "name": name}
    return ok(httpx.post(f"{calendar.url}/api/v1/calendar/campaigns", json=body,
                         auth=signed_as("planner")), 201)


def no_skill(skill: str) -> str:
    return (f"no resource has skill {skill!r}: no schedule can place it until one does (add "
            "the skill to a resource, or add one at /api/v1/planner/resources)")


def test_skills_are_the_templates_until_resources_exist(planner):
    # The playbook's templates (resources.DEFAULT_TEMPLATES), by skill name.
    assert ok(call(planner, "GET", "/skills")) == [
        {"skill": "copy", "resource_ids": [], "milestone_kinds": ["creative_final"]},
        {"skill": "design", "resource_ids": [], "milestone_kinds": ["creative_final"]},
        {"skill": "media", "resource_ids": [], "milestone_kinds": ["channel_test"]},
        {"skill": "strategy", "resource_ids": [], "milestone_kinds": ["kickoff"]},
        {"skill": "tech", "resource_ids": [], "milestone_kinds": ["launch"]}]
    writer = resource(planner, "fe writer", ["copy", "poetry"])
    skills = {s["skill"]: s for s in ok(call(planner, "GET", "/skills"))}
    assert skills["copy"] == {"skill": "copy", "resource_ids": [writer["id"]],
                              "milestone_kinds": ["creative_final"]}
    assert skills["poetry"] == {"skill": "poetry", "resource_ids": [writer["id"]],
                                "milestone_kinds": []}


def test_a_task_whose_skill_nobody_has_warns_until_someone_has_it(planner):
    made = task(planner, "fe-weld", "welding")
    assert made["warnings"] == [no_skill("welding")]
    assert ok(call(planner, "GET", "/tasks/fe-weld"))["warnings"] == [no_skill("welding")]
    # Changing the skill to one a resource has clears it.
    changed = ok(call(planner, "PATCH", "/tasks/fe-weld", {"skill": "poetry"}))
    assert (changed["skill"], changed["warnings"]) == ("poetry", [])
    again = ok(call(planner, "PATCH", "/tasks/fe-weld", {"skill": "welding"}))
    assert again["warnings"] == [no_skill("welding")]
    # A welder arrives: the same task reads without a warning.
    resource(planner, "fe welder", ["welding"])
    assert ok(call(planner, "GET", "/tasks/fe-weld"))["warnings"] == []


def test_a_task_is_read_changed_and_deleted(planner):
    task(planner, "fe-first", "poetry")
    task(planner, "fe-second", "poetry", predecessors=["fe-first"])
    changed = ok(call(planner, "PATCH", "/tasks/fe-second", {
        "effort_hours": "12.5", "max_hours_per_day": "4", "deadline": None, "priority": 7}))
    assert {k: changed[k] for k in ("effort_hours", "max_hours_per_day", "deadline", "priority",
                                    "earliest_start", "predecessors")} == {
        "effort_hours": "12.50", "max_hours_per_day": "4.00", "deadline": None, "priority": 7,
        "earliest_start": "2027-06-07", "predecessors": ["fe-first"]}
    assert ok(call(planner, "GET", "/tasks/fe-second")) == changed

    # fe-first follows fe-second, which follows fe-first: refused, naming the loop.
    loop = ok(call(planner, "PATCH", "/tasks/fe-first", {"predecessors": ["fe-second"]}), 422)
    assert loop["errors"] == [{"in": "body", "field": "predecessors", "type": "value_error",
                               "detail": "they would form a cycle: "
                                         "fe-first → fe-second → fe-first"}]
    unknown = ok(call(planner, "PATCH", "/tasks/fe-first",
                      {"predecessors": ["fe-nowhere"], "skill": None}), 422)
    assert [(e["field"], e["detail"]) for e in unknown["errors"]] == [
        ("skill", "may not be null; leave it out to keep it"),
        ("predecessors[0]", "unknown task 'fe-nowhere'")]
    assert ok(call(planner, "PATCH", "/tasks/fe-first", {"colour": "red"}), 422)["errors"][0][
        "field"] == "colour"

    # Deleting fe-first lets fe-second start without it.
    assert call(planner, "DELETE", "/tasks/fe-first").status_code == 204
    assert ok(call(planner, "GET", "/tasks/fe-first"), 404)["detail"] == (
        "There is no task 'fe-first'; list them at /api/v1/planner/tasks.")
    assert ok(call(planner, "GET", "/tasks/fe-second"))["predecessors"] == []
    assert call(planner, "DELETE", "/tasks/fe-first").status_code == 404
    # Viewers read; they do not delete.
    assert call(planner, "DELETE", "/tasks/fe-second", role="viewer").status_code == 403


def test_started_work_is_not_deleted_nor_its_resource(planner):
    poet = resource(planner, "fe poet", ["poetry"])
    task(planner, "fe-started", "poetry", resource_id=poet["id"], start="2027-06-07")
    task(planner, "fe-pinned", "poetry", resource_id=poet["id"])
    refused = ok(call(planner, "DELETE", "/tasks/fe-started"), 409)
    assert refused["detail"] == (
        "Task 'fe-started' started on 2027-06-07: started work stays in the plan. Clear its "
        "start (PATCH start: null) first if it never began.")
    held = ok(call(planner, "DELETE", f"/resources/{poet['id']}"), 409)
    assert held["detail"] == (
        f"Resource {poet['id']!r} holds started work (fe-started): finish or re-pin those "
        "tasks (PATCH /api/v1/planner/tasks/{task_id}) first.")
    assert held["tasks"] == ["fe-started"]

    read = call(planner, "GET", f"/resources/{poet['id']}")
    assert (read.status_code, read.headers["etag"]) == (200, '"1"')
    assert read.json() == poet

    # Unstarted, the task may go elsewhere; the resource then goes, lifting the other pin.
    ok(call(planner, "PATCH", "/tasks/fe-started", {"start": None, "resource_id": None}))
    assert call(planner, "DELETE", f"/resources/{poet['id']}").status_code == 204
    assert ok(call(planner, "GET", "/tasks/fe-pinned"))["resource_id"] is None
    assert ok(call(planner, "GET", f"/resources/{poet['id']}"), 404)["status"] == 404
    assert ok(call(planner, "PATCH", "/tasks/fe-pinned", {"resource_id": "res_gone"}),
              404)["detail"].startswith("There is no resource 'res_gone'")


def test_a_generated_task_follows_its_milestone_and_template(planner, calendar):
    resource(planner, "fe designer", ["design"])
    campaign = calendar_campaign(calendar, name="Frontend generated")
    cid = campaign["id"]
    ok(call(planner, "POST", f"/campaigns/{cid}/tasks"))
    design = f"{milestone_of(campaign, 'creative_final')['id']}-1"
    milestone = milestone_of(campaign, "creative_final")["id"]
    refused = ok(call(planner, "PATCH", f"/tasks/{design}",
                      {"deadline": "2027-03-01", "effort_hours": "50"}), 409)
    assert refused["detail"] == (
        f"Task {design!r} was generated for milestone {milestone!r}; deadline: set by the "
        "milestone (move the milestone in the calendar instead); effort_hours: set by the task "
        "template (edit it at /api/v1/planner/task-templates/{milestone_kind}). Only "
        "resource_id and start may change here.")
    assert ok(call(planner, "PATCH", f"/tasks/{design}", {"earliest_start": None}),
              409)["detail"].startswith(f"Task {design!r} was generated")
    # Its pin is the planner's to set; deleting it would be undone by the next refresh.
    assert ok(call(planner, "PATCH", f"/tasks/{design}",
                   {"start": "2027-02-22"}))["start"] == "2027-02-22"
    assert ok(call(planner, "DELETE", f"/tasks/{design}"), 409)["detail"].startswith(
        f"Task {design!r} started on 2027-02-22")


def test_template_preview_dates_the_steps(planner):
    # creative_final on Monday 15 March 2027 (US): both steps start at most 10 working days
    # before it, Monday 1 March (no US holiday between); copy review follows design.
    preview = ok(call(planner, "GET", "/task-templates/creative_final/preview",
                      params={"due_date": "2027-03-15", "market": "US"}))
    assert preview == [
        {"name": "design", "skill": "design", "effort_hours": "40.00",
         "earliest_start": "2027-03-01", "deadline": "2027-03-15", "follows": None,
         "max_hours_per_day": None},
        {"name": "copy review", "skill": "copy", "effort_hours": "8.00",
         "earliest_start": "2027-03-01", "deadline": "2027-03-15", "follows": "design",
         "max_hours_per_day": None}]
    # Launch on Tuesday 6 July 2027 (US): 5 working days back skip Independence Day (observed
    # Monday 5 July): 2, 1, 30 June, 29, 28 → Monday 28 June.
    [build] = ok(call(planner, "GET", "/task-templates/launch/preview",
                      params={"due_date": "2027-07-06", "market": "US"}))
    assert build["earliest_start"] == "2027-06-28"
    assert ok(call(planner, "GET", "/task-templates/review_gate/preview",
                   params={"due_date": "2027-07-06", "market": "US"})) == []
    assert ok(call(planner, "GET", "/task-templates/party/preview",
                   params={"due_date": "2027-07-06", "market": "US"}), 404)["detail"] == (
        "There is no milestone kind 'party'; kinds: kickoff, creative_final, channel_test, "
        "launch, review_gate, contingency.")
    bad = ok(call(planner, "GET", "/task-templates/launch/preview",
                  params={"due_date": "2027-07-06", "market": "XX"}), 422)
    assert [(e["in"], e["field"]) for e in bad["errors"]] == [("query", "market")]


def test_schedules_are_listed_newest_first_a_page_at_a_time(planner):
    resource(planner, "Ana", ["copy"])
    task(planner, "t-copy", "copy")
    made = [ok(call(planner, "POST", "/schedules", {
        "start": "2027-06-07", "horizon_days": 30, "campaign_ids": [CAMPAIGN]}), 201)
        for _ in range(3)]
    first = ok(call(planner, "GET", "/schedules", params={"limit": 2}))
    assert [s["id"] for s in first["items"]] == [made[2]["id"], made[1]["id"]]
    rest = ok(call(planner, "GET", "/schedules",
                   params={"limit": 2, "cursor": first["next_cursor"]}))
    assert ([s["id"] for s in rest["items"]], rest["next_cursor"]) == ([made[0]["id"]], None)
    summary = rest["items"][0]
    stored = made[0]
    assert summary == {
        "id": stored["id"], "start": "2027-06-07", "horizon_days": 30,
        "campaign_ids": [CAMPAIGN], "replan_of": None, "created_by": stored["created_by"],
        "created_by_name": stored["created_by_name"], "created_at": stored["created_at"],
        "stale": False,
        "status": stored["schedule"]["status"],
        "weighted_lateness_days": stored["schedule"]["objective"]["weighted_lateness_days"],
        "late_tasks": len(stored["schedule"]["late"])}
    assert ok(call(planner, "GET", "/schedules", params={"cursor": "nope"}),
              422)["errors"][0]["field"] == "cursor"


def test_a_malformed_campaign_id_is_the_callers_422(planner):
    # The fuzzer's id: a control character (U+0011). Refused here, before the calendar.
    answer = call(planner, "POST", "/campaigns/a%11b/tasks")
    assert answer.status_code == 422, answer.text
    assert [(e["in"], e["field"]) for e in answer.json()["errors"]] == [("path", "campaign_id")]
    assert ok(call(planner, "GET", "/tasks", params={"campaign_id": "a\x11b"}),
              422)["errors"][0]["field"] == "campaign_id"
    assert ok(call(planner, "POST", "/campaigns/cmp_nowhere/tasks"), 404)["status"] == 404


class _Calendar:
    """A calendar that answers every request with one response."""

    def __init__(self, response: httpx.Response):
        self.response = response

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.response


def test_a_calendar_refusal_of_the_id_is_passed_on():
    response = httpx.Response(422, json={"status": 422, "detail": "campaign_id: too long",
                                         "errors": [{"field": "campaign_id"}]})
    with pytest.raises(UnprocessableContent) as refused:
        fetch_campaign(_Calendar(response), "x" * 10)   # type: ignore[arg-type]
    assert refused.value.detail == ("Reading campaign 'xxxxxxxxxx': the calendar service "
                                    "refused it: campaign_id: too long")
    assert refused.value.extra["errors"] == [{"field": "campaign_id"}]
    assert fetch_campaign(_Calendar(httpx.Response(404, json={})), "x") is None  # type: ignore[arg-type]
