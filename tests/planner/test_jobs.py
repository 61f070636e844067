"""The planner's long POSTs as durable jobs (issue 17), on SQLite and PostgreSQL: `Prefer:
respond-async` answers 202 with the job's `Location`; the job runs the synchronous call's use
case with CP-SAT's progress, so its `result` is that call's answer; a cancel keeps the best
schedule the search found."""
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from bench.workloads import planted
from services.planner import jobs
from services.planner.app import MIGRATIONS, create_app
from services.planner.config import PlannerSettings
from shared.internal_auth import Caller
from shared.jobs import JobContext, JobRunner
from shared.workers import Cancelled
from tests.conftest import TEST_SECRET, migrated_database
from tests.planner.conftest import EXAMPLE, Api, check_schedule

ASYNC = {"Prefer": "respond-async"}
FINAL = ("succeeded", "failed", "cancelled")
# Nothing listens here: these tests call neither the calendar nor the budget.
NOWHERE = "http://127.0.0.1:9"


def hours(hundredths: int) -> str:
    return str(Decimal(hundredths) / 100)


def request_body(problem, time_limit: float) -> dict:
    """A solve request for an engine problem (the bench's workloads), every field carried."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return {
        "start": problem.start.isoformat(), "horizon_days": problem.horizon_days,
        "calendar": {"weekend": [days[d] for d in sorted(problem.weekend)],
                     "holidays": sorted(d.isoformat() for d in problem.holidays)},
        "resources": [{"id": r.id, "skills": sorted(r.skills), "hours_per_day": hours(r.hours_per_day),
                       "time_off": sorted(d.isoformat() for d in r.time_off)}
                      for r in problem.resources],
        "tasks": [{"id": t.id, "campaign_id": t.campaign, "skill": t.skill,
                   "effort_hours": hours(t.effort),
                   "earliest_start": t.earliest_start and t.earliest_start.isoformat(),
                   "deadline": t.deadline and t.deadline.isoformat(), "priority": t.priority,
                   "predecessors": list(t.predecessors),
                   "max_hours_per_day": None if t.max_per_day is None else hours(t.max_per_day),
                   "resource_id": t.resource, "start": t.start and t.start.isoformat()}
                  for t in problem.tasks],
        "time_limit_seconds": time_limit}


def settings(url: str, **changes) -> PlannerSettings:
    return PlannerSettings(database_url=url, internal_secret=TEST_SECRET, solver_workers=1,
                           calendar_url=NOWHERE, budget_url=NOWHERE, events_poll_seconds=0,
                           **changes)


@pytest.fixture(scope="module")
def api(backend_url):
    with TestClient(create_app(settings(backend_url))) as client:
        yield Api(client)


def submit(api: Api, path: str, body: dict, *, role: str = "planner",
           headers: dict | None = None) -> dict:
    response = api.post(path, body, role=role, headers=ASYNC | (headers or {}))
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/api/v1/planner/jobs/{job['id']}"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert job["status"] == "queued" and job["result"] is None
    return job


def follow(api: Api, job_id: str, done: Callable[[dict], bool] = lambda job: job["status"] in FINAL,
           role: str = "planner") -> tuple[dict, list[str]]:
    """Poll the job until `done`; return it and the statuses seen on the way ("running+" once
    it showed the search's incumbent while running). The deadline only keeps a broken build
    from hanging."""
    deadline, seen = time.monotonic() + 90, []
    while True:
        job = api.ok(api.get(f"/jobs/{job_id}", role=role))
        status = job["status"]
        if status == "running" and (job["progress"] or {}).get("incumbent") is not None:
            status = "running+"
        if not seen or seen[-1] != status:
            seen.append(status)
        if done(job) or time.monotonic() > deadline:
            return job, seen
        time.sleep(0.02)


def timeless(schedule: dict) -> dict:
    """A schedule without the solver's clock, the one thing two runs of one solve differ in."""
    return schedule | {"solver": schedule["solver"] | {
        "seconds": None, "first_answer_seconds": None, "best_answer_seconds": None}}


def test_a_solve_job_answers_what_the_synchronous_call_does(api):
    job, seen = follow(api, submit(api, "/solve", EXAMPLE)["id"])
    assert job["status"] == "succeeded", job
    assert seen[-1] == "succeeded" and set(seen) <= {"queued", "running", "running+", "succeeded"}
    assert job["error"] is None and job["progress"]["elapsed_seconds"] >= 0
    # `Prefer` absent: the synchronous answer, as before.
    response = api.post("/solve", EXAMPLE)
    assert response.status_code == 200 and "Location" not in response.headers
    assert timeless(job["result"]) == timeless(response.json())
    assert job["result"]["objective"]["weighted_lateness_days"] == 0


def test_a_long_search_shows_its_progress_while_it_runs(api):
    # 480 tasks in bursts: CP-SAT improves on the rules' schedule (4 weighted days late) for a
    # second or two before it proves 0.
    body = request_body(planted(40, regime="bursty", seed=40), time_limit=3)
    job, seen = follow(api, submit(api, "/solve", body)["id"])
    assert job["status"] == "succeeded", job
    assert "running+" in seen and seen[-1] == "succeeded"
    assert set(seen) <= {"queued", "running", "running+", "succeeded"}
    progress, result = job["progress"], job["result"]
    assert set(progress) == {"elapsed_seconds", "incumbent", "bound", "gap"}
    check_schedule(body, result)
    # The last report is the answer's own state.
    assert progress["incumbent"] == result["objective"]["weighted_lateness_days"]
    assert progress["bound"] <= progress["incumbent"]
    if result["status"] == "optimal":
        assert (progress["incumbent"], progress["bound"], progress["gap"]) == (0, 0, 0)


def test_a_cancelled_search_keeps_its_best_schedule(api):
    # Deadlines one or two working days before the planted schedule: lateness the bounds
    # cannot close, so the search would run its whole 30 s.
    body = request_body(planted(40, regime="bursty", seed=40, slack=(-2, -1)), time_limit=30)
    job = submit(api, "/solve", body)
    running, _ = follow(api, job["id"], lambda job: job["status"] in FINAL or (
        job["progress"] or {}).get("incumbent") is not None)
    assert running["status"] == "running", running
    assert api.ok(api.post(f"/jobs/{job['id']}/cancel"))["cancel_requested"] is True
    job, _ = follow(api, job["id"])
    assert (job["status"], job["error"]) == ("cancelled", None)
    best = job["result"]
    check_schedule(body, best)
    assert best["status"] == "feasible"
    assert best["bound"] <= best["objective"]["weighted_lateness_days"] == \
        job["progress"]["incumbent"]
    # The pool serves on, and a job that ended stays as it ended.
    assert api.ok(api.post("/solve", EXAMPLE))["objective"]["weighted_lateness_days"] == 0
    assert api.ok(api.post(f"/jobs/{job['id']}/cancel"))["status"] == "cancelled"


def stored_work(api: Api, name: str) -> str:
    """A person and two tasks of a campaign of its own; return the campaign id."""
    campaign = f"cmp_{name}"
    api.ok(api.post("/resources", {"name": name, "skills": [name], "hours_per_day": "8"}), 201)
    for i, deadline in enumerate(("2027-06-08", "2027-06-18")):
        api.ok(api.post("/tasks", {"id": f"{name}-{i}", "name": f"{name} {i}",
                                   "campaign_id": campaign, "skill": name, "effort_hours": "16",
                                   "earliest_start": "2027-06-07", "deadline": deadline}), 201)
    return campaign


def test_schedule_and_replan_jobs_store_what_their_keys_replay(api):
    campaign = stored_work(api, "jobwork")
    body = {"start": "2027-06-07", "horizon_days": 30, "campaign_ids": [campaign]}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    job = submit(api, "/schedules", body, headers=key)
    # The same key sent again answers the same job.
    assert api.post("/schedules", body, headers=ASYNC | key).json()["id"] == job["id"]
    job, _ = follow(api, job["id"])
    assert job["status"] == "succeeded", job
    stored = job["result"]
    assert api.ok(api.get(f"/schedules/{stored['id']}")) == stored
    # The key's synchronous replay answers the job's schedule: one resource, not two.
    replayed = api.post("/schedules", body, headers=key)
    assert replayed.status_code == 201 and replayed.json() == stored
    days = {a["task"]: [(d["date"], d["hours"]) for d in a["days"]]
            for a in stored["schedule"]["assignments"]}
    assert days["jobwork-0"] == [("2027-06-07", "8.00"), ("2027-06-08", "8.00")]

    replan = follow(api, submit(api, f"/schedules/{stored['id']}/replan",
                                {"as_of": "2027-06-01"})["id"])[0]
    assert replan["status"] == "succeeded", replan
    assert (replan["result"]["replan_of"], replan["result"]["schedule"]["moved"]) == \
        (stored["id"], 0)
    assert replan["result"]["schedule"]["assignments"] == stored["schedule"]["assignments"]
    missing = api.post("/schedules/sch_missing/replan", {}, headers=ASYNC)
    assert missing.status_code == 404
    # `Prefer` absent: stored and answered at once, as before.
    assert api.ok(api.post("/schedules", body), 201)["id"] != stored["id"]


def test_a_job_is_seen_only_by_roles_that_could_have_made_the_call(api):
    job = submit(api, "/solve", EXAMPLE)
    assert api.post("/solve", EXAMPLE, role="viewer", headers=ASYNC).status_code == 403
    assert api.post("/solve", EXAMPLE, role="finance", headers=ASYNC).status_code == 403
    for role in ("viewer", "finance"):
        assert api.get(f"/jobs/{job['id']}", role=role).status_code == 404
        assert api.post(f"/jobs/{job['id']}/cancel", role=role).status_code == 404
    assert follow(api, job["id"], role="admin")[0]["status"] == "succeeded"
    assert api.get("/jobs/job-missing").status_code == 404


def test_a_restarted_service_runs_the_jobs_left_queued(api, request, tmp_path_factory):
    backend = str(api.client.app.state.settings.database_url).split(":")[0].split("+")[0]
    url = migrated_database(request, tmp_path_factory, MIGRATIONS, backend)
    # A process that only queues (or one stopped before it ran its queue).
    with TestClient(create_app(settings(url, run_jobs=False))) as client:
        first = Api(client)
        queued = [submit(first, "/solve", EXAMPLE)["id"] for _ in range(2)]
        assert [first.ok(first.get(f"/jobs/{j}"))["status"] for j in queued] == ["queued"] * 2
    # Another process on the same database (or the same one, restarted) runs them.
    with TestClient(create_app(settings(url))) as client:
        second = Api(client)
        for job_id in queued:
            job, _ = follow(second, job_id)
            assert job["status"] == "succeeded", job
            assert job["result"]["objective"]["weighted_lateness_days"] == 0


def context() -> JobContext:
    return JobContext(job_id="job_1", kind=jobs.SOLVE, caller=Caller("key:test", "planner"),
                      body=None, params={}, idempotency=None)


def test_a_job_shows_the_searchs_figures_and_a_stop_without_an_answer_is_a_cancel():
    job = context()
    # The engine's whole `Progress`, as the pool relays it: the job keeps its own clock.
    job.progress({"elapsed_seconds": 7.5, "incumbent": 4, "bound": 1, "gap": 0.75})
    snapshot = job.snapshot()
    assert snapshot["elapsed_seconds"] < 7.5
    assert {k: v for k, v in snapshot.items() if k != "elapsed_seconds"} == \
        {"incumbent": 4.0, "bound": 1.0, "gap": 0.75}

    def stopped(_: JobContext) -> None:
        raise Cancelled("stopped 1 s after its cancel")
    runner = JobRunner(jobs.JOBS, engine=create_engine("sqlite://"), work={jobs.SOLVE: stopped})
    claim = SimpleNamespace(id="job_1", kind=jobs.SOLVE, row=SimpleNamespace(request_id=None))
    assert runner.execute(claim, job).status == "cancelled"
    # A search stopped with a schedule answers it: the runner keeps it as the result.
    runner.work[jobs.SOLVE] = lambda _: "best so far"
    assert runner.execute(claim, job).result == "best so far"
