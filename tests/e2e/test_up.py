"""`marketplan up` starts the real four processes; we talk HTTP to them through the gateway."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from marketplan.up import Child, stop
from tests.e2e.conftest import ADMIN_KEY, is_free

pytestmark = pytest.mark.e2e


def test_each_service_runs_on_the_database_up_was_given(system):
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{system['port']}",
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    for service in ("calendar", "budget", "planner"):
        body = gateway.get(f"/api/v1/{service}/status").json()
        assert (body["service"], body["database"], body["schema_current"]) == (
            service, system["backend"], True)


# The start of its own below on SQLite alone: starting, healing a killed process and stopping
# are `up`'s code whatever the stores, and the test above proves on both backends, on the
# shared system, that `up` gives each service its database (and migrates it).
ONE_BACKEND = pytest.mark.parametrize("module_system", ["sqlite"], indirect=True)


@ONE_BACKEND
def test_the_system_through_the_gateway(module_system):
    system = module_system   # its own: the next test stops it for good
    port, pids = system["port"], system["pids"]
    assert f"http://127.0.0.1:{port}/docs" in system["output"]
    assert ADMIN_KEY in system["output"]
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    backend = system["env"].get("BUDGET_DATABASE_URL", "sqlite").split(":")[0].split("+")[0]

    # 3. each service is reached through the gateway; readiness lists every upstream
    for service in ("calendar", "budget", "planner"):
        body = gateway.get(f"/api/v1/{service}/status").json()
        assert (body["service"], body["role"], body["database"]) == (service, "admin", backend)
        assert body["schema_current"] is True
    assert gateway.get("/readyz").json()["status"] == "ready"
    assert httpx.get(f"http://127.0.0.1:{port}/api/v1/budget/status").status_code == 401
    document = gateway.get("/openapi.json").json()
    assert {"/api/v1/calendar/status", "/api/v1/planner/status"} <= set(document["paths"])

    # a key made with the CLI works at once, with its role's limits
    created = subprocess.run([sys.executable, "-m", "marketplan", "--env-file",
                              str(system["env_file"]), "keys", "create", "--role", "viewer",
                               "--name", "Vera Viewer"],
                             capture_output=True, text=True, check=True, env=system["env"])
    viewer = {"Authorization": f"Bearer {created.stdout.strip()}"}
    assert gateway.get("/api/v1/planner/status", headers=viewer).json()["role"] == "viewer"
    assert gateway.post("/api/v1/calendar/campaigns", headers=viewer,
                        json={}).status_code == 403

    # 4. a service port called directly, without the internal credential
    assert httpx.get(f"http://127.0.0.1:{port + 1}/api/v1/calendar/status").status_code == 401

    # 5. kill calendar: its routes are 503 problems, the others keep answering
    os.kill(pids["calendar"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (status := gateway.get("/api/v1/calendar/status").status_code) != 503:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert gateway.get("/api/v1/calendar/status").headers["content-type"] == \
        "application/problem+json"
    assert gateway.get("/api/v1/budget/status").status_code == 200
    assert gateway.get("/readyz").json()["upstreams"]["calendar"] == "unavailable"

    # ... and `up` starts it again (after a 1 s backoff): it heals without a gateway restart
    deadline = time.monotonic() + 30
    while gateway.get("/api/v1/calendar/status").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert gateway.get("/readyz").status_code == 200

@ONE_BACKEND
def test_sigterm_stops_all_four_and_the_terminal_shows_no_log_lines(module_system):
    # The module's system, stopped for good after the test above killed and healed it (a
    # start of its own per backend, ~12 s on CI, would prove no more): the calendar `up`
    # started again must stop too (its port is free).
    up = module_system["up"]
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=30) == 0
    for name, pid in module_system["pids"].items():
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), name
    assert all(is_free(module_system["port"] + i) for i in range(4))

    # What a person at the terminal saw from start to stop, a restart on the way: the banner
    # and `up`'s own lines, none of the processes' JSON log lines, which went to their files.
    terminal = module_system["output"] + up.stdout.read() + module_system["stderr"].read_text()
    assert not [line for line in terminal.splitlines() if line.startswith("{")], terminal
    logs = module_system["env_file"].parent / "logs"
    assert f"Logs:       {logs}/<process>.log" in terminal
    for name in ("gateway", "calendar", "budget", "planner"):
        records = [json.loads(line) for line in (logs / f"{name}.log").read_text().splitlines()]
        assert records and all(r["process"] == name for r in records)


def _is_zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_a_process_that_dies_is_restarted_with_growing_backoff(capsys):
    child = Child("calendar", [sys.executable, "-c", "import sys; sys.exit(3)"])
    child.start()
    child.process.wait()
    now = time.monotonic()
    child.supervise(now)
    assert "calendar exited with code 3; restarting it in 1 s" in capsys.readouterr().err
    child.supervise(now + 0.5)
    assert not child.running() and child.restart_at == now + 1  # still backing off
    child.supervise(now + 1)
    assert "calendar restarted" in capsys.readouterr().err
    child.process.wait()
    child.supervise(now + 1.1)
    assert "restarting it in 2 s" in capsys.readouterr().err
    assert child.exits == [3, 3]


def test_stop_kills_the_whole_group_of_each_process():
    # A leader and a child of its own (a solver worker, say) that both ignore SIGTERM; the
    # child inherits that disposition.
    script = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              "time.sleep(60)")
    child = Child("budget", [sys.executable, "-c", script])
    child.start()
    time.sleep(1)
    stop([child])
    assert child.process.returncode == -signal.SIGKILL
    assert _live_members(child.process.pid) == []


def _live_members(group: int) -> list[int]:
    """Processes of a process group that are not zombies (an orphan zombie waits for init)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except FileNotFoundError:
            continue
        if int(pgrp) == group and state != "Z":
            members.append(int(stat.parent.name))
    return members
