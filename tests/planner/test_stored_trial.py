"""What a new user's trial of stored planning found (trial 13): a re-plan of a grown task set
can take a longer horizon and its 422 names tasks by id, a schedule of an unknown campaign
names it, and hours refuse padded numbers as amounts do. On SQLite and PostgreSQL, against the
real calendar service; each test has its own campaign and skills (the module shares one
database)."""
from datetime import date

import pytest

from services.planner import engine
from services.planner.schedules import task_fields
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


def test_problem_fields_are_named_by_task_id():
    # Stored schedules, re-plans and campaign plans have no `tasks` list in their request.
    problem = engine.Problem(
        start=date(2027, 6, 7), horizon_days=7,
        resources=(engine.Resource("r", frozenset({"s"}), 800),),
        tasks=(engine.Task(id="a", skill="s", effort=800),
               engine.Task(id="b", skill="s", effort=800)))
    rename = task_fields(problem)
    assert [rename(f) for f in ("tasks[1]", "tasks[0].start", "tasks[1].resource_id",
                                "horizon_days", "tasks")] == [
        "tasks/b", "tasks/a.start", "tasks/b.resource_id", "horizon_days", "tasks"]


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


def test_a_resource_works_its_markets_week(planner):
    # SA's weekend is Friday and Saturday; DE's (and no market's) Saturday and Sunday. The
    # schedule's calendar weekend is what every resource has off (Saturday); Friday is the SA
    # resource's own day off, Sunday the DE resource's.
    sara = resource(planner, "trial sara", "trialksa", market="SA")
    resource(planner, "trial dirk", "trialde", market="DE")
    # 40 h from Sunday 2 May 2027, due Thursday 6 May: Sunday to Thursday is Sara's week.
    task(planner, "tw-week", "cmp_trial_ksa", "trialksa", "40", "2027-05-02", "2027-05-06")
    stored = ok(call(planner, "POST", "/schedules", {
        "start": "2027-05-01", "horizon_days": 30, "campaign_ids": ["cmp_trial_ksa"]}), 201)
    week = [(f"2027-05-0{d}", "8.00") for d in range(2, 7)]
    assert days(stored) == {"tw-week": week}
    assert stored["schedule"]["late"] == [] and stored["schedule"]["assignments"][0][
        "resource"] == sara["id"]
    # Late reasons name resources by id: the answer gives their names beside.
    assert stored["resource_names"] == {sara["id"]: "trial sara"}
    replanned = ok(call(planner, "POST", f"/schedules/{stored['id']}/replan",
                        {"as_of": "2027-04-01"}), 201)
    assert days(replanned) == {"tw-week": week} and replanned["schedule"]["moved"] == 0

    # 48 h: the last 8 h go on Sunday 9 May (Friday and Saturday are Sara's weekend). Lateness
    # counts the schedule's working days after Thursday: Friday 7 (a working day for Dirk)
    # and Sunday 9, so 2, where Sara's own week would count 1 (README, "Weekends by market").
    task(planner, "tw-late", "cmp_trial_ksa_late", "trialksa", "48", "2027-05-02", "2027-05-06")
    late = ok(call(planner, "POST", "/schedules", {
        "start": "2027-05-01", "horizon_days": 30, "campaign_ids": ["cmp_trial_ksa_late"]}), 201)
    assert days(late) == {"tw-late": [*week, ("2027-05-09", "8.00")]}
    [entry] = late["schedule"]["late"]
    assert (entry["finish"], entry["days_late"]) == ("2027-05-09", 2)
    # Sara's capacity in ISO week 18 (Monday 3 to Sunday 9 May) is her five working days in
    # it: Monday to Thursday and Sunday 9, not Friday 7.
    capacity = {u["week"]: u["capacity"] for u in late["schedule"]["utilisation"]
                if u["resource"] == sara["id"]}
    assert capacity["2027-W18"] == "40.00"


@pytest.mark.parametrize(("market", "weekly", "daily"), [
    (None, "40", "8.00"), ("SA", "40", "8.00"), ("IR", "48", "8.00"), ("IR", "40", "6.66")])
def test_hours_per_week_spread_over_the_markets_working_days(planner, market, weekly, daily):
    # Iran's weekend is Friday alone: six working days.
    made = ok(call(planner, "POST", "/resources", {
        "name": f"trial weekly {market} {weekly}", "skills": ["trialweekly"],
        "hours_per_week": weekly, "market": market}), 201)
    assert made["hours_per_day"] == daily
