"""Stored schedules with the engine's own notions: a resource's market holidays named as
holidays (its own days off as time off), and re-plans that keep tasks hour for hour."""
from tests.planner.conftest import call, ok

HOLIDAY_CAMPAIGN = "cmp_holiday_test"
SPLIT_CAMPAIGN = "cmp_split_test"


def resource(planner, name: str, skill: str, **fields) -> dict:
    return ok(call(planner, "POST", "/resources", {"name": name, "skills": [skill],
                                                   "hours_per_day": "8", **fields}), 201)


def task(planner, task_id: str, campaign: str, skill: str, hours: str, earliest: str,
         deadline: str, priority: int = 1) -> None:
    ok(call(planner, "POST", "/tasks", {
        "id": task_id, "name": task_id, "campaign_id": campaign, "skill": skill,
        "effort_hours": hours, "earliest_start": earliest, "deadline": deadline,
        "priority": priority}), 201)


def test_late_work_names_market_holidays_as_holidays(planner):
    # Thanksgiving (US) is Thursday 25 November 2027; the writer also takes Tuesday off.
    writer = resource(planner, "holiday writer", "holidaycopy", market="US",
                      time_off=["2027-11-23"])
    task(planner, "hol-essay", HOLIDAY_CAMPAIGN, "holidaycopy", "24", "2027-11-22", "2027-11-24",
         priority=2)
    stored = ok(call(planner, "POST", "/schedules", {
        "start": "2027-11-22", "horizon_days": 30, "campaign_ids": [HOLIDAY_CAMPAIGN]}), 201)
    schedule = stored["schedule"]
    [assignment] = schedule["assignments"]
    assert [(d["date"], d["hours"]) for d in assignment["days"]] == [
        ("2027-11-22", "8.00"), ("2027-11-24", "8.00"), ("2027-11-26", "8.00")]
    [late] = schedule["late"]
    rid = writer["id"]
    assert (late["finish"], late["days_late"], late["saturated_days"]) == ("2027-11-26", 2, [])
    assert late["reason"] == (
        f"hol-essay finishes 2027-11-26, 2 working day(s) after its deadline 2027-11-24; "
        f"{rid} was on time off on 2027-11-23; 2027-11-25 is a holiday for {rid}; "
        f"it needs 3 working day(s) at up to 8 h a day from 2027-11-22.")
    assert schedule["objective"]["weighted_lateness_days"] == 4
    assert (schedule["status"], schedule["bound"]) == ("optimal", 4)


def test_a_replan_keeps_tasks_hour_for_hour(planner):
    worker = resource(planner, "split worker", "splitwork")
    # 16 h by Tuesday fits only as 8 h Monday and Tuesday; the 8 h task later in the week goes
    # on its first day (the earliest finish).
    task(planner, "split-a", SPLIT_CAMPAIGN, "splitwork", "16", "2027-06-07", "2027-06-08")
    task(planner, "split-b", SPLIT_CAMPAIGN, "splitwork", "8", "2027-06-14", "2027-06-18")
    first = ok(call(planner, "POST", "/schedules", {
        "start": "2027-06-07", "horizon_days": 30, "campaign_ids": [SPLIT_CAMPAIGN]}), 201)
    days = {a["task"]: [(d["date"], d["hours"]) for d in a["days"]]
            for a in first["schedule"]["assignments"]}
    assert days == {"split-a": [("2027-06-07", "8.00"), ("2027-06-08", "8.00")],
                    "split-b": [("2027-06-14", "8.00")]}

    same = ok(call(planner, "POST", f"/schedules/{first['id']}/replan",
                   {"as_of": "2027-06-01"}), 201)
    assert same["schedule"]["moved"] == 0
    assert same["schedule"]["assignments"] == first["schedule"]["assignments"]

    # A day off on split-b's day moves split-b alone, to the next day.
    ok(call(planner, "PATCH", f"/resources/{worker['id']}", {"time_off": ["2027-06-14"]},
            headers={"If-Match": f'"{worker["version"]}"'}))
    again = ok(call(planner, "POST", f"/schedules/{first['id']}/replan",
                    {"as_of": "2027-06-01"}), 201)
    after = {a["task"]: [(d["date"], d["hours"]) for d in a["days"]]
             for a in again["schedule"]["assignments"]}
    assert after == {"split-a": days["split-a"], "split-b": [("2027-06-15", "8.00")]}
    assert again["schedule"]["moved"] == 1
