"""A task no resource can do leaves the stored schedule, with every task that waits for it,
and the answer says which and why; the rest is planned and re-planned as usual (issue 14).
On SQLite and PostgreSQL, against the real calendar service. Each test has its own campaign
and skills: the module's tests share one database."""
from tests.planner.conftest import call, ok

NO_WELDER = ("no resource has skill 'welding': no schedule can place it until one does (add "
             "the skill to a resource, or add one at /api/v1/planner/resources)")


def resource(planner, name: str, skills: list[str]) -> dict:
    return ok(call(planner, "POST", "/resources", {"name": name, "skills": skills,
                                                   "hours_per_day": "8"}), 201)


def task(planner, task_id: str, campaign: str, skill: str, *predecessors: str,
         **fields) -> None:
    ok(call(planner, "POST", "/tasks", {
        "id": task_id, "name": task_id, "campaign_id": campaign, "skill": skill,
        "effort_hours": "8", "earliest_start": "2027-06-07", "deadline": "2027-06-18",
        "predecessors": list(predecessors), **fields}), 201)


def schedule(planner, campaign: str) -> dict:
    return call(planner, "POST", "/schedules", {"start": "2027-06-07", "horizon_days": 30,
                                                "campaign_ids": [campaign]})


def placed(stored: dict) -> dict[str, tuple[str, str]]:
    return {a["task"]: (a["resource"], a["start"]) for a in stored["schedule"]["assignments"]}


def test_a_task_nobody_can_do_leaves_the_schedule_with_what_waits_for_it(planner):
    poet = resource(planner, "un poet", ["unpoetry"])
    task(planner, "un-weld", "cmp_un_a", "welding")
    task(planner, "un-paint", "cmp_un_a", "unpoetry", "un-weld")
    task(planner, "un-hang", "cmp_un_a", "unpoetry", "un-paint")
    task(planner, "un-verse", "cmp_un_a", "unpoetry")
    task(planner, "un-after-both", "cmp_un_a", "unpoetry", "un-verse", "un-hang")
    stored = ok(schedule(planner, "cmp_un_a"), 201)
    assert placed(stored) == {"un-verse": (poet["id"], "2027-06-07")}
    # Task order; a waiting task names its first predecessor that is left out.
    assert stored["unscheduled"] == [
        {"task_id": "un-after-both",
         "reason": "waits for task 'un-hang', which cannot be scheduled"},
        {"task_id": "un-hang", "reason": "waits for task 'un-paint', which cannot be scheduled"},
        {"task_id": "un-paint", "reason": "waits for task 'un-weld', which cannot be scheduled"},
        {"task_id": "un-weld", "reason": NO_WELDER}]
    assert ok(call(planner, "GET", f"/schedules/{stored['id']}")) == stored

    # A welder arrives: the re-plan places everything and leaves nothing out.
    welder = resource(planner, "un welder", ["welding"])
    again = ok(call(planner, "POST", f"/schedules/{stored['id']}/replan",
                    {"as_of": "2027-06-01"}), 201)
    assert again["unscheduled"] == []
    assert placed(again) == {
        "un-weld": (welder["id"], "2027-06-07"), "un-verse": (poet["id"], "2027-06-07"),
        "un-paint": (poet["id"], "2027-06-08"), "un-hang": (poet["id"], "2027-06-09"),
        "un-after-both": (poet["id"], "2027-06-10")}


def test_a_replan_leaves_out_a_task_that_can_no_longer_be_done(planner):
    sculptor = resource(planner, "un sculptor", ["unclay"])
    task(planner, "un-mould", "cmp_un_b", "unclay")
    task(planner, "un-cast", "cmp_un_b", "unclay", "un-mould")
    task(planner, "un-sign", "cmp_un_b", "unclay")
    first = ok(schedule(planner, "cmp_un_b"), 201)
    assert first["unscheduled"] == []
    assert set(placed(first)) == {"un-mould", "un-cast", "un-sign"}

    ok(call(planner, "PATCH", "/tasks/un-mould", {"skill": "unbronze"}))
    again = ok(call(planner, "POST", f"/schedules/{first['id']}/replan",
                    {"as_of": "2027-06-01"}), 201)
    assert placed(again) == {"un-sign": placed(first)["un-sign"]}
    assert placed(again)["un-sign"][0] == sculptor["id"]
    assert again["unscheduled"] == [
        {"task_id": "un-cast", "reason": "waits for task 'un-mould', which cannot be scheduled"},
        {"task_id": "un-mould", "reason": (
            "no resource has skill 'unbronze': no schedule can place it until one does (add the "
            "skill to a resource, or add one at /api/v1/planner/resources)")}]


def test_a_task_pinned_to_a_resource_without_its_skill_is_left_out(planner):
    singer = resource(planner, "un singer", ["unsong"])
    resource(planner, "un dancer", ["undance"])
    task(planner, "un-duet", "cmp_un_c", "undance", resource_id=singer["id"])
    task(planner, "un-solo", "cmp_un_c", "unsong")
    stored = ok(schedule(planner, "cmp_un_c"), 201)
    assert placed(stored) == {"un-solo": (singer["id"], "2027-06-07")}
    assert stored["unscheduled"] == [{"task_id": "un-duet", "reason": (
        f"it is pinned to resource {singer['id']!r}, which lacks skill 'undance': no schedule "
        "can place it until that resource has the skill or the pin is removed")}]


def test_nothing_to_schedule_only_when_no_task_is_left(planner):
    task(planner, "un-only-weld", "cmp_un_d", "unforging")
    task(planner, "un-only-after", "cmp_un_d", "unpoetry", "un-only-weld")
    refused = ok(schedule(planner, "cmp_un_d"), 409)
    assert refused["detail"] == (
        "Nothing to schedule: add resources at /api/v1/planner/resources and tasks (or generate "
        "them for a campaign) first. No task in scope can be scheduled: un-only-after: waits "
        "for task 'un-only-weld', which cannot be scheduled; un-only-weld: no resource has "
        "skill 'unforging': no schedule can place it until one does (add the skill to a "
        "resource, or add one at /api/v1/planner/resources).")
    # A campaign with no task at all is named as unknown (tests/planner/test_stored_trial.py).
    assert ok(schedule(planner, "cmp_un_empty"), 422)["errors"][0]["field"] == "campaign_ids[0]"
