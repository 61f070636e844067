"""`marketplan up --replicas 2` on PostgreSQL: two processes of each service behind the
gateway. Exact reserve draws from both, one resource per Idempotency-Key whichever process
gets it, no acknowledged write lost when a process is killed mid-load, and a job that outlives
the process running it. One system for the whole module (CI's time budget)."""
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
from dotenv import dotenv_values

from shared.internal_auth import Caller, InternalAuth
from tests.budget.conftest import BUDGET, CHANNELS
from tests.budget.test_jobs import ASYNC, s_curves
from tests.e2e.conftest import ADMIN_KEY, migrated_databases
from tests.postgres import free_port

pytestmark = pytest.mark.e2e

REPLICAS = 2
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def replicated(request, tmp_path_factory):
    """The running system with two processes per service, each service on its own database."""
    # One solver worker per process: seven processes and their workers start at once on
    # CI's two cores. A job's lease of 2 s (4 heartbeats, the least the runner takes) instead
    # of 10: the killed job is claimed again that much sooner.
    env = os.environ | {"MARKETPLAN_ADMIN_KEY": ADMIN_KEY, "BUDGET_SOLVER_WORKERS": "1",
                        "PLANNER_SOLVER_WORKERS": "1", "BUDGET_JOB_LEASE_SECONDS": "2"}
    env |= migrated_databases(request, "postgresql")
    port = free_port(1 + 3 * REPLICAS)
    var = tmp_path_factory.mktemp("replicas") / "var"
    up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--replicas", str(REPLICAS),
                           "--port", str(port), "--var-dir", str(var)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    for line in up.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C stops all"):
            break
    assert up.poll() is None, "".join(lines)
    output = "".join(lines)
    processes = {}
    for part in output.split("Processes:")[1].splitlines()[0].split(", "):
        name, _, pid, _, process_port = part.split()
        processes[name] = (int(pid), int(process_port))
    yield {"port": port, "processes": processes, "env": env, "output": output,
           "secret": dotenv_values(var / "up.env")["MARKETPLAN_INTERNAL_SECRET"]}
    up.send_signal(signal.SIGTERM)
    up.wait(timeout=30)


def gateway_client(system: dict) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{system['port']}/api/v1/budget",
                        headers=ADMIN, timeout=60)


def budget_with_plan(client: httpx.Client, **changes) -> tuple[dict, dict[str, dict]]:
    """A budget with two channels and its first plan approved."""
    response = client.post("/budgets", json=BUDGET | changes)
    assert response.status_code == 201, response.text
    budget = response.json()
    channels = {}
    for channel in CHANNELS[:2]:
        made = client.post(f"/budgets/{budget['id']}/channels", json=channel)
        assert made.status_code == 201, made.text
        channels[channel["name"]] = made.json()
    assert client.post(f"/budgets/{budget['id']}/plans", json={}).status_code == 201
    assert client.post(f"/budgets/{budget['id']}/plans/1/approve").status_code == 200
    return budget, channels


def test_replicas_need_postgresql_and_say_what_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    done = subprocess.run([sys.executable, "-m", "marketplan", "up", "--replicas", "2",
                           "--port", str(free_port(7)), "--var-dir", str(tmp_path / "var")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--replicas 2 needs PostgreSQL" in done.stderr
    assert "BUDGET_DATABASE_URL" in done.stderr and "postgresql+psycopg://" in done.stderr


def test_two_processes_per_service_on_consecutive_ports(replicated):
    port = replicated["port"]
    assert {name: process_port for name, (_, process_port) in
            replicated["processes"].items()} == {
        "calendar-1": port + 1, "calendar-2": port + 2, "budget-1": port + 3,
        "budget-2": port + 4, "planner-1": port + 5, "planner-2": port + 6, "gateway": port}
    with gateway_client(replicated) as client:
        assert client.get("/status").json()["database"] == "postgresql"


def test_fifty_concurrent_draws_across_both_processes_stay_exact(replicated):
    with gateway_client(replicated) as client:
        budget, channels = budget_with_plan(client, reserve={"amount": "10000.00"})
        rng = random.Random(7)
        amounts = [Decimal(rng.randint(10_000, 60_000)) / 100 for _ in range(50)]
        names = list(channels)

        def draw(i: int) -> httpx.Response:
            return client.post(f"/budgets/{budget['id']}/reserve/draws",
                               headers={"Idempotency-Key": uuid.uuid4().hex},
                               json={"amount": str(amounts[i]), "reason": f"draw {i}",
                                     "channel_id": channels[names[i % 2]]["id"]})

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(draw, range(50)))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {201, 409}, [r.text for r in responses
                                             if r.status_code not in (201, 409)]
        accepted = [amounts[i] for i, r in enumerate(responses) if r.status_code == 201]
        # The amounts add up to more than the reserve: some must be refused.
        assert sum(amounts) > Decimal("10000") and 0 < len(accepted) < 50
        reserve = client.get(f"/budgets/{budget['id']}/reserve").json()
        assert Decimal(reserve["drawn"]) == sum(accepted)
        assert Decimal(reserve["remaining"]) == Decimal("10000.00") - sum(accepted) >= 0
        for i, response in enumerate(responses):
            if response.status_code == 409:  # refused only because too little was left for it
                assert Decimal(response.json()["remaining"]) < amounts[i]
        plan = client.get(f"/budgets/{budget['id']}/plans/1").json()
        assert sum(Decimal(c["drawn"]) for c in plan["channels"]) == sum(accepted)


def test_an_idempotency_key_replayed_to_either_process_gives_one_resource(replicated):
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = BUDGET | {"name": "Replayed", "department": "replayed"}
    caller = InternalAuth(replicated["secret"].encode(), Caller(f"key:{uuid.uuid4().hex}", "admin"))
    answers = []
    for name in ("budget-1", "budget-2", "budget-1"):  # straight to each process
        port = replicated["processes"][name][1]
        answers.append(httpx.post(f"http://127.0.0.1:{port}/api/v1/budget/budgets", json=body,
                                  headers=key, auth=caller, timeout=30))
    assert [a.status_code for a in answers] == [201, 201, 201], answers[0].text
    assert len({a.json()["id"] for a in answers}) == 1
    assert [a.headers.get("Idempotent-Replayed") for a in answers[1:]] == ["true", "true"]
    # Through the gateway, which takes the two processes in turn. Keys are per caller: the
    # admin key's four sends are one resource of their own.
    with gateway_client(replicated) as client:
        replays = [client.post("/budgets", json=body, headers=key) for _ in range(4)]
        stored = client.get("/budgets", params={"department": "replayed"}).json()["items"]
    assert [r.status_code for r in replays] == [201] * 4
    assert len({r.json()["id"] for r in replays}) == 1
    assert sorted(b["id"] for b in stored) == sorted({answers[0].json()["id"],
                                                      replays[0].json()["id"]})


def test_kill_one_budget_process_during_200_writes_loses_no_acknowledged_write(replicated):
    victim_pid = replicated["processes"]["budget-2"][0]
    department = f"kill-{uuid.uuid4().hex[:8]}"
    keys = [uuid.uuid4().hex for _ in range(200)]

    killed_at = []

    with gateway_client(replicated) as client:
        def create(i: int) -> httpx.Response:
            if i == 60:
                os.kill(victim_pid, signal.SIGKILL)
                killed_at.append(time.monotonic())
            return client.post("/budgets", headers={"Idempotency-Key": keys[i]},
                               json=BUDGET | {"name": f"write {i}", "department": department})

        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(create, range(200)))
        acknowledged = {i: r.json()["id"] for i, r in enumerate(first) if r.status_code == 201}
        unanswered = [i for i, r in enumerate(first) if r.status_code != 201]
        # Only writes the dead process had taken may be unanswered, each as a 503 problem.
        assert all(first[i].status_code == 503 for i in unanswered), \
            [first[i].text for i in unanswered]
        assert len(unanswered) <= 8

        # Every acknowledged write is stored.
        for i, budget_id in acknowledged.items():
            stored = client.get(f"/budgets/{budget_id}")
            assert stored.status_code == 200 and stored.json()["name"] == f"write {i}"

        # Two seconds after the kill the dead process is out: 50 more writes all succeed
        # (they go to the live process, or to the restarted one once its probe answers).
        # The writes and reads above usually took that long already.
        time.sleep(max(0.0, killed_at[0] + 2 - time.monotonic()))
        with ThreadPoolExecutor(8) as pool:
            after = list(pool.map(lambda i: client.post(
                "/budgets", json=BUDGET | {"name": f"after {i}", "department": department}),
                range(50)))
        assert [r.status_code for r in after] == [201] * 50, [r.text for r in after]

        # A write with no answer is sent again with its key: one budget per key in the end.
        for i in unanswered:
            again = client.post("/budgets", headers={"Idempotency-Key": keys[i]},
                                json=BUDGET | {"name": f"write {i}", "department": department})
            assert again.status_code == 201, again.text
        stored, cursor = [], None
        while True:
            page = client.get("/budgets", params={"department": department, "limit": 100}
                              | ({"cursor": cursor} if cursor else {})).json()
            stored += page["items"]
            if not (cursor := page["next_cursor"]):
                break
    assert sorted(b["name"] for b in stored) == sorted(
        [f"write {i}" for i in range(200)] + [f"after {i}" for i in range(50)])


def test_a_job_whose_process_is_killed_finishes_on_another(replicated):
    database = replicated["env"]["BUDGET_DATABASE_URL"].replace("postgresql+psycopg", "postgresql")
    with gateway_client(replicated) as client:
        # Long enough to be killed while it runs; its second run takes as long again.
        submitted = client.post("/optimize", json=s_curves(time_limit=5, crowded=True), headers=ASYNC)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]

        def claimed_by() -> tuple[str | None, int]:
            with psycopg.connect(database) as connection:
                return connection.execute("SELECT claimed_by, attempts FROM job WHERE id = %s",
                                          (job_id,)).fetchone()

        deadline = time.monotonic() + 30  # guards only: a broken build must not hang
        while (claim := claimed_by())[0] is None:
            assert time.monotonic() < deadline, "no process claimed the job"
            time.sleep(0.05)
        first_pid = int(claim[0].split(":")[1])
        assert b"budget" in Path(f"/proc/{first_pid}/cmdline").read_bytes()
        os.kill(first_pid, signal.SIGKILL)

        # Its heartbeat lapses; another process claims it again and runs it to the end.
        deadline = time.monotonic() + 60
        while (job := client.get(f"/jobs/{job_id}").json())["status"] not in (
                "succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
    # The killed process ran nothing after its kill: the second claim finished the job.
    assert (job["status"], job["attempts"]) == ("succeeded", 2), job["error"]
    assert job["result"]["status"] in ("optimal", "feasible")
