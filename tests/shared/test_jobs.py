"""Durable jobs (shared/jobs.py) on SQLite and PostgreSQL, through the tiny service in
tests/shared/jobs_app.py: a fake solve that adds values is the work, the jobs core is under test.

The fake's answers are worked out by hand: values 1.25, 2.50, 3.75 add up to 7.50 (`optimal`,
3 picked); stopped after its first step, the answer is 1.25 (`stopped`, 1 picked), and the
progress then shows incumbent 1.25, bound 7.5, gap (7.5 - 1.25) / 7.5 = 0.8333…
"""
import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlmodel import Session

from shared.db import create_db_engine, write_engine
from shared.idempotency import Idempotency, fingerprint
from shared.internal_auth import Caller, sign
from shared.jobs import JobRunner
from shared.prefer import prefers_async
from shared.settings import DatabaseSettings
from tests.conftest import TEST_SECRET
from tests.shared import jobs_app
from tests.shared.jobs_app import Controls, create_app, jobs, plans

VALUES = ["1.25", "2.50", "3.75"]
ASYNC = {"Prefer": "respond-async"}
BASE = "/api/v1/jobtest"


def call(client: TestClient, method: str, path: str, *, role: str = "planner",
         body: object = None, headers: dict | None = None, principal: str = "key:ana"):
    """Sign the call exactly as the gateway would for `role`, body included."""
    content = b"" if body is None else json.dumps(body).encode()
    signed = sign(TEST_SECRET.encode(), method=method, path=path, body=content,
                  caller=Caller(principal, role))
    return client.request(method, path, content=content or None, headers=signed | {
        "content-type": "application/json"} | (headers or {}))


def wait_for(client: TestClient, job_id: str, done: Callable[[dict], bool],
             role: str = "planner") -> dict:
    # Polls until the state is reached; the deadline only keeps a broken build from hanging.
    deadline = time.monotonic() + 30
    while True:
        job = call(client, "GET", f"{BASE}/jobs/{job_id}", role=role).json()
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def ended(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


@contextmanager
def service(database_url: str, controls: Controls, **options) -> Iterator[TestClient]:
    options.setdefault("poll_seconds", 0.05)
    options.setdefault("heartbeat_seconds", 0.05)
    options.setdefault("lease_seconds", 2.0)
    with TestClient(create_app(database_url, controls, **options)) as client:
        yield client
    controls.release.set()  # a job still held must not outlive its test


@pytest.fixture
def controls() -> Controls:
    return Controls()


def submit(client: TestClient, path: str = "/solve", body: dict | None = None, **kwargs):
    response = call(client, "POST", BASE + path, body=body or {"values": VALUES},
                    headers=ASYNC | kwargs.pop("headers", {}), **kwargs)
    assert response.status_code == 202, response.text
    return response


def test_a_jobs_life_ends_with_the_synchronous_answer(database_url, controls):
    with service(database_url, controls) as client:
        body = {"values": VALUES, "hold": True}
        accepted = submit(client, body=body)
        job = accepted.json()
        assert accepted.headers["location"] == f"{BASE}/jobs/{job['id']}"
        assert accepted.headers["preference-applied"] == "respond-async"
        assert (job["kind"], job["status"], job["result"], job["error"]) == \
            ("solve", "queued", None, None)

        running = wait_for(client, job["id"], lambda j: j["progress"] and
                           j["progress"].get("incumbent") is not None)
        assert running["status"] == "running" and running["attempts"] == 1
        assert running["progress"]["incumbent"] == 1.25 and running["progress"]["bound"] == 7.5
        assert running["progress"]["gap"] == pytest.approx(6.25 / 7.5)

        controls.release.set()
        finished = wait_for(client, job["id"], ended)
        synchronous = call(client, "POST", f"{BASE}/solve", body=body)
        assert synchronous.status_code == 200 and "preference-applied" not in synchronous.headers
        assert finished["status"] == "succeeded" and finished["error"] is None
        assert finished["result"] == synchronous.json() == \
            {"total": "7.50", "picked": 3, "status": "optimal"}


def test_cancel_stops_a_running_job_and_keeps_the_best_answer(database_url, controls):
    # The service's own heartbeat period, which the one-second promise rests on.
    with service(database_url, controls, heartbeat_seconds=0.5) as client:
        job = submit(client, body={"values": VALUES, "hold": True}).json()
        wait_for(client, job["id"], lambda j: j["status"] == "running")
        cancelling = call(client, "POST", f"{BASE}/jobs/{job['id']}/cancel")
        # From here the fake waits at most one more second (50 slices of 20 ms) for
        # `cancelled()`; past that it gives up waiting (`gave_up`) and carries on solving.
        controls.cancel_sent.set()
        assert cancelling.status_code == 200 and cancelling.json()["cancel_requested"] is True
        finished = wait_for(client, job["id"], ended)
        assert not controls.gave_up.is_set()
        assert finished["status"] == "cancelled"
        assert finished["result"] == {"total": "1.25", "picked": 1, "status": "stopped"}


def test_cancel_of_a_queued_job_ends_it_before_it_runs(database_url, controls):
    with service(database_url, controls, run_jobs=False) as client:
        job = submit(client).json()
        cancelled = call(client, "POST", f"{BASE}/jobs/{job['id']}/cancel").json()
        assert (cancelled["status"], cancelled["result"], cancelled["attempts"]) == \
            ("cancelled", None, 0)
        # Cancelling again, or a finished job, changes nothing.
        again = call(client, "POST", f"{BASE}/jobs/{job['id']}/cancel").json()
        assert again == cancelled


def test_a_problem_is_stored_as_the_jobs_error(database_url, controls):
    with service(database_url, controls) as client:
        job = submit(client, body={"values": ["1", "-2"]}).json()
        failed = wait_for(client, job["id"], ended)
        synchronous = call(client, "POST", f"{BASE}/solve", body={"values": ["1", "-2"]})
        assert failed["status"] == "failed" and failed["result"] is None
        assert failed["error"] == synchronous.json()
        assert failed["error"]["status"] == 422
        assert failed["error"]["errors"][0]["field"] == "values[1]"


def test_a_restarted_service_runs_the_queued_jobs(database_url, controls):
    with service(database_url, controls, run_jobs=False) as client:
        ids = [submit(client, body={"values": [str(n)]}).json()["id"] for n in (1, 2, 3)]
        assert {call(client, "GET", f"{BASE}/jobs/{i}").json()["status"] for i in ids} == \
            {"queued"}
    with service(database_url, controls) as client:
        results = [wait_for(client, i, ended) for i in ids]
    assert [(r["status"], r["result"]["total"]) for r in results] == \
        [("succeeded", "1"), ("succeeded", "2"), ("succeeded", "3")]


def test_a_stopping_service_hands_its_running_job_back(database_url, controls):
    with service(database_url, controls) as client:
        job = submit(client, body={"values": VALUES, "hold": True}).json()
        wait_for(client, job["id"], lambda j: j["status"] == "running")
    # The first process stopped mid-solve: the job is queued again, not counted as an attempt.
    restarted = Controls()
    restarted.release.set()
    with service(database_url, restarted) as client:
        finished = wait_for(client, job["id"], ended)
    assert (finished["status"], finished["attempts"], finished["result"]["total"]) == \
        ("succeeded", 1, "7.50")


def test_a_job_is_visible_only_to_roles_that_could_have_made_the_call(database_url, controls):
    with service(database_url, controls, run_jobs=False) as client:
        whatif = submit(client, role="finance").json()
        plan = submit(client, "/plans").json()
        assert call(client, "GET", f"{BASE}/jobs/{whatif['id']}", role="planner").status_code \
            == 200
        assert call(client, "GET", f"{BASE}/jobs/{whatif['id']}", role="viewer").status_code \
            == 404
        assert call(client, "GET", f"{BASE}/jobs/{plan['id']}", role="finance").status_code \
            == 404
        refused = call(client, "POST", f"{BASE}/jobs/{plan['id']}/cancel", role="finance")
        assert refused.status_code == 404
        assert call(client, "GET", f"{BASE}/jobs/{plan['id']}").json()["status"] == "queued"
        # Asking for the job needs the role the call needs, as without Prefer.
        assert call(client, "POST", f"{BASE}/plans", role="finance", body={"values": VALUES},
                    headers=ASYNC).status_code == 403


def count_plans(database_url: str) -> int:
    engine = create_db_engine(DatabaseSettings(database_url=database_url, port=1))
    try:
        with Session(engine) as session:
            return session.execute(select(func.count()).select_from(plans)).scalar_one()
    finally:
        engine.dispose()


def test_an_idempotency_key_gives_one_job_and_one_resource(database_url, controls):
    key = {"Idempotency-Key": "plan-2027-q1"}
    body = {"values": VALUES, "hold": True}
    with service(database_url, controls) as client:
        first = submit(client, "/plans", body=body, headers=key)
        again = submit(client, "/plans", body=body, headers=key)
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        other = call(client, "POST", f"{BASE}/plans", body={"values": ["9"]},
                     headers=ASYNC | key)
        assert other.status_code == 422 and "different request" in other.json()["detail"]

        controls.release.set()
        finished = wait_for(client, first.json()["id"], ended)
        assert finished["status"] == "succeeded"
        # The job recorded the key's answer as the synchronous call does: a synchronous replay
        # answers that one plan; an asynchronous one still answers the job, now ended with it.
        replay = call(client, "POST", f"{BASE}/plans", body=body, headers=key)
        assert replay.status_code == 201 and replay.json() == finished["result"]
        replay = call(client, "POST", f"{BASE}/plans", body=body, headers=ASYNC | key)
        assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == finished
    assert count_plans(database_url) == 1


def test_a_key_used_synchronously_first_gives_its_job_the_same_resource(database_url, controls):
    key = {"Idempotency-Key": "sync-first"}
    body = {"values": VALUES}
    with service(database_url, controls) as client:
        made = call(client, "POST", f"{BASE}/plans", body=body, headers=key)
        assert made.status_code == 201
        job = wait_for(client, submit(client, "/plans", body=body, headers=key).json()["id"],
                       ended)
        assert job["status"] == "succeeded" and job["result"] == made.json()
    assert count_plans(database_url) == 1


def test_a_failed_jobs_key_can_be_used_again(database_url, controls):
    key = {"Idempotency-Key": "retry-me"}
    with service(database_url, controls) as client:
        bad = submit(client, "/plans", body={"values": ["-1"]}, headers=key).json()
        assert wait_for(client, bad["id"], ended)["status"] == "failed"
        # As a failed synchronous call records nothing, the same request runs again.
        retry = submit(client, "/plans", body={"values": ["-1"]}, headers=key).json()
        assert retry["id"] != bad["id"]


def test_without_prefer_the_call_is_synchronous(database_url, controls):
    with service(database_url, controls) as client:
        for prefer in (None, "return=minimal", "handling=strict, wait=5"):
            response = call(client, "POST", f"{BASE}/solve", body={"values": VALUES},
                            headers={"Prefer": prefer} if prefer else None)
            assert response.status_code == 200
            assert response.json() == {"total": "7.50", "picked": 3, "status": "optimal"}
        engine = create_db_engine(DatabaseSettings(database_url=database_url, port=1))
        with Session(engine) as session:
            assert session.execute(select(func.count()).select_from(jobs)).scalar_one() == 0
        engine.dispose()


def test_prefer_is_read_as_rfc_7240_says():
    assert prefers_async(["respond-async"])
    assert prefers_async(["RESPOND-ASYNC; x=1"])
    assert prefers_async(["wait=10, respond-async"])
    assert prefers_async(["return=minimal", "respond-async"])
    assert prefers_async(['foo="a, respond-async", respond-async'])
    assert not prefers_async(['foo="a, respond-async"'])
    assert not prefers_async(["respond-asynchronously", "handling=lenient"])
    assert not prefers_async([])


# The runner's claims, directly: no HTTP, several runners as several processes would hold.

@pytest.fixture
def engine(database_url):
    engine = create_db_engine(DatabaseSettings(database_url=database_url, port=1))
    jobs_app.metadata.create_all(engine)
    yield engine
    engine.dispose()


def queued_jobs(engine, count: int) -> list[str]:
    queue = jobs_app.queue()
    ids = []
    with Session(write_engine(engine)) as session:
        for n in range(count):
            response = queue.submit(session, kind="solve", caller=Caller("key:ana", "planner"),
                                    body=jobs_app.SolveIn(values=[n]))
            ids.append(json.loads(response.body)["id"])
    return ids


def runner(engine, controls: Controls | None = None, **options) -> JobRunner:
    return JobRunner(jobs_app.queue(), engine=engine,
                     work=jobs_app.work(engine, controls or Controls()),
                     **{"lease_seconds": 2.0, "heartbeat_seconds": 0.05} | options)


def lapse(engine, job_id: str) -> None:
    """Make the job's heartbeat older than any lease: its runner died."""
    with Session(write_engine(engine)) as session:
        session.execute(update(jobs).where(jobs.c.id == job_id).values(
            heartbeat_at=datetime.now(UTC) - timedelta(hours=1)))
        session.commit()


def row(engine, job_id: str):
    with Session(engine) as session:
        return session.execute(select(jobs).where(jobs.c.id == job_id)).one()


def test_a_dead_runners_job_is_claimed_again_after_its_heartbeat_lapses(engine):
    (job_id,) = queued_jobs(engine, 1)
    dead, alive = runner(engine), runner(engine)
    claim = dead.claim()
    assert claim is not None and claim.id == job_id
    assert alive.claim() is None                 # its heartbeat is fresh: not claimable
    lapse(engine, job_id)
    again = alive.claim()
    assert again is not None and (again.id, again.attempt) == (job_id, 2)
    # The first runner lost its claim: its heartbeat says so and its outcome is not written.
    assert dead.beat(claim, {"elapsed_seconds": 1.0}) is None
    assert dead.finish(claim, dead.execute(claim, dead.context(claim)),
                       {"elapsed_seconds": 1.0}) is False
    assert (row(engine, job_id).status, row(engine, job_id).claimed_by) == ("running", alive.name)
    outcome = alive.execute(again, alive.context(again))
    assert alive.finish(again, outcome, {"elapsed_seconds": 0.1}) is True
    assert (row(engine, job_id).status, row(engine, job_id).result) == \
        ("succeeded", {"total": "0", "picked": 1, "status": "optimal"})


def test_a_job_whose_runners_keep_dying_fails_with_the_reason(engine):
    (job_id,) = queued_jobs(engine, 1)
    for _ in range(2):
        assert runner(engine, max_attempts=2).claim() is not None
        lapse(engine, job_id)
    assert runner(engine, max_attempts=2).claim() is None
    failed = row(engine, job_id)
    assert (failed.status, failed.attempts, failed.error["status"]) == ("failed", 2, 503)
    assert "stopped 2 times" in failed.error["detail"]


def test_the_heartbeat_reports_a_cancel(engine):
    (job_id,) = queued_jobs(engine, 1)
    worker = runner(engine)
    claim = worker.claim()
    assert claim is not None
    assert worker.beat(claim, {"elapsed_seconds": 0.5, "incumbent": 1.0}) is False
    with Session(write_engine(engine)) as session:
        jobs_app.queue().request_cancel(session, job_id)
    assert worker.beat(claim, {"elapsed_seconds": 1.0}) is True
    assert row(engine, job_id).progress == {"elapsed_seconds": 1.0}


def test_a_job_claimed_while_the_service_stops_is_handed_back(engine):
    """Cancelling the runner does not stop a claim's thread: the job it claims after the stop
    is queued again at once, not left running under a stopped runner until its lease lapses."""
    (job_id,) = queued_jobs(engine, 1)
    stopping = runner(engine, lease_seconds=3600.0)
    entered, gate = threading.Event(), threading.Event()
    claim = stopping.claim

    def slow_claim():
        entered.set()
        gate.wait(10)
        return claim()

    stopping.claim = slow_claim  # type: ignore[method-assign]

    async def stop_mid_claim() -> None:
        task = asyncio.create_task(stopping.run())
        await asyncio.to_thread(entered.wait, 10)
        task.cancel()
        asyncio.get_running_loop().call_later(0.2, gate.set)
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_mid_claim())
    left = row(engine, job_id)
    assert (left.status, left.claimed_by, left.attempts) == ("queued", None, 0)


def test_two_runners_never_run_the_same_job(engine):
    ids = queued_jobs(engine, 24)
    runners = [runner(engine) for _ in range(16)]
    barrier, claimed, errors = threading.Barrier(len(runners)), [], []

    def claim_all(worker: JobRunner) -> None:
        try:
            barrier.wait()
            while (claim := worker.claim()) is not None:
                claimed.append((claim.id, worker.name))
        except Exception as error:  # collected, so the assertion shows it
            errors.append(error)

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(job_id for job_id, _ in claimed) == sorted(ids)
    with Session(engine) as session:
        holders = dict(session.execute(select(jobs.c.id, jobs.c.claimed_by)).all())
    assert holders == dict(claimed)


def test_concurrent_submits_with_one_key_make_one_job(engine):
    queue, body = jobs_app.queue(), jobs_app.SolveIn(values=[1])
    idempotency = Idempotency(table=jobs_app.records, principal="key:ana", key="same",
                              fingerprint=fingerprint("POST", "/plans", body.model_dump()))
    barrier, answers, errors = threading.Barrier(16), [], []

    def submit_once() -> None:
        try:
            with Session(write_engine(engine)) as session:
                barrier.wait()
                response = queue.submit(session, kind="plan", body=body, idempotency=idempotency,
                                        caller=Caller("key:ana", "planner"))
                answers.append((response.status_code, json.loads(response.body)["id"],
                                response.headers.get("idempotent-replayed")))
        except Exception as error:  # collected, so the assertion shows it
            errors.append(error)

    threads = [threading.Thread(target=submit_once) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({job_id for _, job_id, _ in answers}) == 1
    assert sorted(replayed or "" for _, _, replayed in answers) == [""] + ["true"] * 15
    assert {status for status, _, _ in answers} == {202}


def test_a_stop_is_heard_when_a_wake_comes_with_it(engine):
    # A job ending (or a submit) wakes the idle runner; a service stopping in the same moment
    # must still stop it. Python 3.11's asyncio.wait_for dropped such a cancel, and a
    # service's shutdown then waited on its runner for ever.
    async def stop_while_woken() -> bool:
        worker = runner(engine, poll_seconds=60)
        task = asyncio.create_task(worker.run())
        while worker._wake is None or not worker._wake._waiters:  # idle, waiting for a wake
            await asyncio.sleep(0.01)
        worker.wake()
        await asyncio.sleep(0)  # the wake is set before the stop reaches the task
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        return task in done and task.cancelled()

    assert asyncio.run(stop_while_woken())
