"""`marketplan up` starts the real four processes; we talk HTTP to them through the gateway."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, is_free

pytestmark = pytest.mark.e2e


def test_the_system_through_the_gateway(system):
    port, pids = system["port"], system["pids"]
    assert f"http://127.0.0.1:{port}/docs" in system["output"]
    assert ADMIN_KEY in system["output"]
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
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
                              str(system["env_file"]), "keys", "create", "--role", "viewer"],
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

def test_sigterm_stops_all_four(system):
    system["up"].send_signal(signal.SIGTERM)
    assert system["up"].wait(timeout=30) == 0
    for name, pid in system["pids"].items():
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), name
    assert all(is_free(system["port"] + i) for i in range(4))


def _is_zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
