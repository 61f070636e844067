"""What a new user's trial of stored planning found (trial 13): a re-plan of a grown task set
can take a longer horizon and its 422 names tasks by id, a schedule of an unknown campaign
names it, and hours refuse padded numbers as amounts do. On SQLite and PostgreSQL, against the
real calendar service; each test has its own campaign and skills (the module shares one
database)."""
import pytest

from tests.planner.conftest import call, ok


def resource(planner, name: str, skill: str, **fields) -> dict:
    return ok(call(planner, "POST", "/resources", {"name": name, "skills": [skill],
                                                   "hours_per_day": "8", **fields}), 201)


def task(planner, task_id: str, campaign: str, skill: str, hours: str, earliest: str,
         deadline: str) -> None:
    ok(call(planner, "POST", "/tasks", {
        "id": task_id, "name": task_id, "campaign_id": campaign, "skill": skill,
        "effort_hours": hours, "earliest_start": earliest, "deadline": deadline}), 201)


def days(stored: dict) -> dict[str, list[tuple[str, str]]]:
    return {a["task"]: [(d["date"], d["hours"]) for d in a["days"]]
            for a in stored["schedule"]["assignments"]}


def test_a_replan_of_added_work_takes_a_longer_horizon(planner):
    resource(planner, "trial grower", "trialgrow")
    task(planner, "tg-1", "cmp_trial_grow", "trialgrow", "8", "2027-06-07", "2027-06-11")
    # Monday 7 June to Sunday 13 June: five working days.
    first = ok(call(planner, "POST", "/schedules", {
        "start": "2027-06-07", "horizon_days": 7, "campaign_ids": ["cmp_trial_grow"]}), 201)
    assert days(first) == {"tg-1": [("2027-06-07", "8.00")]}

    # 24 h from Thursday at 8 h a day needs Thursday, Friday and Monday 14 June: past the
    # horizon. The 422 names the task by id (the re-plan's request has no list of tasks).
    task(planner, "tg-2", "cmp_trial_grow", "trialgrow", "24", "2027-06-10", "2027-06-18")
    path = f"/schedules/{first['id']}/replan"
    refused = ok(call(planner, "POST", path, {"as_of": "2027-06-01"}), 422)
    [error] = refused["errors"]
    assert error["field"] == "tasks/tg-2"
    assert "'tg-2'" in error["detail"] and "horizon_days" in error["detail"]

    # Bounds as on a schedule.
    too_long = ok(call(planner, "POST", path, {"as_of": "2027-06-01", "horizon_days": 731}),
                  422)
    assert [e["field"] for e in too_long["errors"]] == ["horizon_days"]

    # Fourteen days reach Monday 14 June; tg-1 keeps its Monday.
    longer = ok(call(planner, "POST", path, {"as_of": "2027-06-01", "horizon_days": 14}), 201)
    assert (longer["horizon_days"], longer["replan_of"]) == (14, first["id"])
    assert days(longer) == {"tg-1": [("2027-06-07", "8.00")],
                            "tg-2": [("2027-06-10", "8.00"), ("2027-06-11", "8.00"),
                                     ("2027-06-14", "8.00")]}
    assert longer["schedule"]["late"] == []
    # Without horizon_days a re-plan keeps the horizon of the schedule it re-plans.
    again = ok(call(planner, "POST", f"/schedules/{longer['id']}/replan",
                    {"as_of": "2027-06-01"}), 201)
    assert again["horizon_days"] == 14
    assert days(again) == days(longer)


@pytest.mark.parametrize("prefer", [None, "respond-async"])
def test_a_schedule_of_an_unknown_campaign_names_it(planner, prefer):
    resource(planner, f"trial known {prefer}", "trialknown")
    task(planner, f"tk-{prefer}", "cmp_trial_known", "trialknown", "8", "2027-06-07",
         "2027-06-11")
    headers = {"Prefer": prefer} if prefer else {}
    refused = ok(call(planner, "POST", "/schedules", {
        "start": "2027-06-07", "horizon_days": 30,
        "campaign_ids": ["cmp_trial_known", "cmp_trial_nope", "cmp_trial_nope"]},
        headers=headers), 422)
    assert [(e["field"], e["detail"]) for e in refused["errors"]] == [(
        "campaign_ids[1]", "the planner has no task of campaign 'cmp_trial_nope'; add its tasks "
        "(POST /api/v1/planner/campaigns/cmp_trial_nope/tasks or /api/v1/planner/tasks) or "
        "leave it out")]


@pytest.mark.parametrize("padded", [" 5 ", "1_000", "5 ", "+ 5", "NaN"])
def test_hours_refuse_padded_numbers(planner, padded):
    refused = ok(call(planner, "POST", "/tasks", {
        "id": "tp-padded", "name": "padded", "skill": "trialpad", "effort_hours": padded}), 422)
    assert [e["field"] for e in refused["errors"]] == ["effort_hours"]
    for field in ("hours_per_day", "hours_per_week"):
        refused = ok(call(planner, "POST", "/resources", {
            "name": "trial padded", "skills": ["trialpad"], field: padded}), 422)
        assert [e["field"] for e in refused["errors"]] == [field]


def test_hours_take_plain_decimals_and_json_numbers(planner):
    for i, hours in enumerate([5, "5", "5.25", 5.5]):
        made = ok(call(planner, "POST", "/tasks", {"id": f"tp-plain-{i}", "name": "plain",
                                                   "skill": "trialpad", "effort_hours": hours}),
                  201)
        assert made["effort_hours"] == ["5.00", "5.00", "5.25", "5.50"][i]
