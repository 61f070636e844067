"""`POST /api/v1/planner/solve`: the contract, the rules, the explanations, the 422s."""
import copy
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.planner.conftest import EXAMPLE, check_schedule, solve


def test_the_issue_example_is_scheduled_within_every_rule(client):
    response = solve(client, EXAMPLE)
    assert response.status_code == 200, response.text
    schedule = response.json()
    check_schedule(EXAMPLE, schedule)
    assert schedule["status"] == "optimal" and schedule["late"] == []
    creative = next(a for a in schedule["assignments"] if a["task"] == "c1-creative")
    # Brief on Tue 1 Dec; creative from Wed 2 Dec at 16 h a day: 2nd, 3rd, then Fri 4th.
    assert [(d["date"], d["hours"]) for d in creative["days"]] == [
        ("2026-12-02", "16.00"), ("2026-12-03", "16.00"), ("2026-12-04", "8.00")]
    assert schedule["objective"] == {"weighted_lateness_days": 0, "makespan_date": "2026-12-04"}
    week = next(u for u in schedule["utilisation"] if u["resource"] == "design" and u["week"] == "2026-W49")
    assert (week["hours"], week["capacity"]) == ("40.00", "96.00")   # from Tuesday 1st
    week = next(u for u in schedule["utilisation"] if u["resource"] == "design" and u["week"] == "2026-W50")
    assert week["capacity"] == "96.00"   # Thursday 10 December off


def test_holidays_weekends_and_time_off_are_skipped(client):
    body = copy.deepcopy(EXAMPLE)
    body["start"] = "2026-12-24"
    body["tasks"] = [{"id": "t", "skill": "design", "effort_hours": "48", "max_hours_per_day": "8"}]
    body["resources"][0]["time_off"] = ["2026-12-29"]
    schedule = solve(client, body).json()
    check_schedule(body, schedule)
    # A task pauses over weekends, holidays (Christmas) and its resource's day off (29th).
    assert [d["date"] for d in schedule["assignments"][0]["days"]] == [
        "2026-12-24", "2026-12-28", "2026-12-30", "2026-12-31", "2027-01-01", "2027-01-04"]


def test_a_late_task_names_the_saturated_resource_and_the_chain(client):
    body = {"start": "2026-12-07", "horizon_days": 60,
            "resources": [{"id": "design", "skills": ["design"], "hours_per_day": "8"},
                          {"id": "tech", "skills": ["tech"], "hours_per_day": "8"}],
            "tasks": [
                {"id": "big", "skill": "design", "effort_hours": "40", "deadline": "2026-12-11",
                 "priority": 5},
                {"id": "small", "skill": "design", "effort_hours": "8", "deadline": "2026-12-08",
                 "priority": 1},
                {"id": "build", "skill": "tech", "effort_hours": "8", "deadline": "2026-12-11",
                 "predecessors": ["big"], "priority": 1}]}
    schedule = solve(client, body).json()
    check_schedule(body, schedule)
    # Best: big all week (on time), small 4 days late (×1), build 1 day late (×1) = 5;
    # small first would make big 1 day late (×5) and build 2 (×1) = 7.
    assert schedule["objective"]["weighted_lateness_days"] == 5
    assert schedule["bound"] == 5 and schedule["status"] == "optimal"
    late = {x["task"]: x for x in schedule["late"]}
    assert late["small"]["resource"] == "design" and late["small"]["days_late"] == 4
    assert late["small"]["saturated_days"] == ["2026-12-07", "2026-12-08", "2026-12-09",
                                               "2026-12-10", "2026-12-11"]
    assert "design was fully booked" in late["small"]["reason"] and "big" in late["small"]["reason"]
    assert late["build"]["chain"] == ["big"] and late["build"]["saturated_days"] == []
    assert late["build"]["days_late"] == 1 and "waited for big" in late["build"]["reason"]


def test_pinned_resource_and_started_work_stay_put(client):
    body = {"start": "2026-12-07", "horizon_days": 30,
            "resources": [{"id": "ana", "skills": ["design"], "hours_per_day": "8"},
                          {"id": "ben", "skills": ["design"], "hours_per_day": "8"}],
            "tasks": [{"id": "a", "skill": "design", "effort_hours": "16", "resource_id": "ben"},
                      {"id": "b", "skill": "design", "effort_hours": "8", "start": "2026-12-09"}]}
    schedule = solve(client, body).json()
    check_schedule(body, schedule)
    placed = {a["task"]: a for a in schedule["assignments"]}
    assert placed["a"]["resource"] == "ben" and placed["b"]["start"] == "2026-12-09"


def test_the_same_input_gives_the_same_schedule(client):
    from bench.workloads import workload  # a 42-task generated workload
    body = workload_body(workload(3))
    first, second = solve(client, body).json(), solve(client, body).json()
    for answer in (first, second):
        check_schedule(body, answer)
        answer.pop("solver")
    assert first == second


def workload_body(problem) -> dict:
    return {"start": problem.start.isoformat(), "horizon_days": problem.horizon_days,
            "calendar": {"holidays": sorted(d.isoformat() for d in problem.holidays)},
            "resources": [{"id": r.id, "skills": sorted(r.skills),
                           "hours_per_day": str(Decimal(r.hours_per_day) / 100)} for r in problem.resources],
            "tasks": [{"id": t.id, "campaign_id": t.campaign, "skill": t.skill,
                       "effort_hours": str(Decimal(t.effort) / 100),
                       "earliest_start": t.earliest_start.isoformat(), "deadline": t.deadline.isoformat(),
                       "priority": t.priority, "predecessors": list(t.predecessors),
                       "max_hours_per_day": str(Decimal(t.max_per_day) / 100)} for t in problem.tasks],
            "time_limit_seconds": 10}


@pytest.mark.parametrize("change, field, words", [
    ({"tasks": [{"id": "x", "skill": "juggling", "effort_hours": "1"}]}, "tasks[0].skill",
     "no resource can do"),
    ({"tasks": [{"id": "x", "skill": "design", "effort_hours": "1", "predecessors": ["y"]},
                {"id": "y", "skill": "design", "effort_hours": "1", "predecessors": ["x"]}]},
     "tasks", "cycle"),
    ({"horizon_days": 3, "tasks": [{"id": "x", "skill": "design", "effort_hours": "100",
                                    "max_hours_per_day": "8"}]}, "tasks[0]", "horizon"),
    ({"tasks": [{"id": "x", "skill": "design", "effort_hours": "1", "predecessors": ["nope"]}]},
     "tasks[0].predecessors", "unknown task"),
    ({"tasks": [{"id": "x", "skill": "design", "effort_hours": "1.005"}]}, "tasks[0].effort_hours", ""),
    ({"resources": []}, "resources", ""),
    ({"tasks": [{"id": "x", "skill": "design", "effort_hours": "1", "resource_id": "nobody"}]},
     "tasks[0].resource_id", "unknown resource"),
])
def test_impossible_problems_are_422_naming_them(client, change, field, words):
    response = solve(client, EXAMPLE | change)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert words in problem["detail"]


def test_a_horizon_too_short_for_the_work_is_a_422(client):
    body = {"start": "2026-12-07", "horizon_days": 5,
            "resources": [{"id": "d", "skills": ["design"], "hours_per_day": "8"}],
            "tasks": [{"id": f"t{i}", "skill": "design", "effort_hours": "16"} for i in range(4)]}
    response = solve(client, body)
    assert response.status_code == 422 and "horizon_days" in response.json()["detail"]


def test_viewers_cannot_solve(client):
    assert solve(client, EXAMPLE, role="viewer").status_code == 403


def test_the_api_process_never_loads_or_tools():
    # OR-Tools bundles its own HiGHS and cannot share a process with highspy (the budget's):
    # only the planner's worker processes may load it.
    code = "import sys, services.planner.app; assert 'ortools' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
