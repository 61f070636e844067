"""Random instances: capacity is never exceeded and precedence always holds, whether CP-SAT
(through the API, in its worker) or the priority rule (in process) made the schedule."""
from datetime import date, timedelta

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.planner.engine import Invalid, Model, assemble, priority_rule
from services.planner.solving import SolveRequest, to_problem
from tests.planner.conftest import check_schedule, solve

SKILLS = ("design", "tech", "media")
START = date(2026, 12, 1)


@st.composite
def instances(draw) -> dict:
    resources = []
    for i in range(draw(st.integers(1, 3))):
        resources.append({
            "id": f"r{i}", "skills": sorted(draw(st.sets(st.sampled_from(SKILLS), min_size=1))),
            "hours_per_day": str(draw(st.sampled_from([4, 8, 16, 24]))),
            "time_off": [(START + timedelta(days=d)).isoformat()
                         for d in draw(st.sets(st.integers(0, 40), max_size=3))]})
    skills = sorted({s for r in resources for s in r["skills"]})
    tasks = []
    for i in range(draw(st.integers(1, 12))):
        task = {"id": f"t{i}", "skill": draw(st.sampled_from(skills)),
                "effort_hours": str(draw(st.sampled_from([1, 4, 7.5, 8, 12, 16, 30]))),
                "priority": draw(st.integers(1, 5)),
                "predecessors": sorted(draw(st.sets(st.sampled_from([f"t{j}" for j in range(i)]),
                                                    max_size=2)) if i else [])}
        if draw(st.booleans()):
            task["deadline"] = (START + timedelta(days=draw(st.integers(0, 30)))).isoformat()
        if draw(st.booleans()):
            task["earliest_start"] = (START + timedelta(days=draw(st.integers(0, 10)))).isoformat()
        if draw(st.booleans()):
            task["max_hours_per_day"] = str(draw(st.sampled_from([2, 4, 6, 8])))
        tasks.append(task)
    return {"start": START.isoformat(), "horizon_days": 90, "resources": resources,
            "tasks": tasks, "calendar": {"holidays": ["2026-12-25", "2027-01-01"]},
            "time_limit_seconds": 5}


FAST = settings(max_examples=40, deadline=None, phases=[Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(instances())
def test_cp_sat_schedules_keep_capacity_and_precedence(client, body):
    response = solve(client, body)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        schedule = response.json()
        check_schedule(body, schedule)
        bound, objective = schedule["bound"], schedule["objective"]["weighted_lateness_days"]
        assert bound is None or bound <= objective


@settings(max_examples=300, deadline=None, phases=[Phase.generate])
@given(instances())
def test_priority_rule_schedules_keep_capacity_and_precedence(body):
    try:
        model = Model(to_problem(SolveRequest.model_validate(body)))
        choice = priority_rule.schedule(model)
    except Invalid:
        return
    # assemble re-checks capacity, calendars and precedence and raises if any is broken.
    schedule = assemble(model, choice, status="feasible", engine="priority rule", bound=None,
                        seconds=0, first_answer_seconds=0, best_answer_seconds=0)
    assert len(schedule.assignments) == len(body["tasks"])
