"""Stopping: a signal that reaches `marketplan up` (Ctrl-C to the `make up` process group,
SIGTERM to `make` or to `marketplan up`) stops every process of the run, solver workers
included, with no traceback."""
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.budget.test_optimize_api import EXAMPLE
from tests.e2e.conftest import migrated_databases
from tests.postgres import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "e2e-stop-admin-key-" + uuid.uuid4().hex
# Enough work that both solves are still running when the signal comes.
SCHEDULE = {"start": "2026-12-01", "horizon_days": 120, "time_limit_seconds": 30,
            "resources": [{"id": f"r{i}", "skills": ["design"], "hours_per_day": "8"}
                          for i in range(3)],
            "tasks": [{"id": f"t{i}", "campaign": "c1", "skill": "design", "effort_hours": "40",
                       "earliest_start": "2026-12-01", "deadline": "2026-12-15",
                       "priority": 3, "predecessors": []} for i in range(60)]}


def run_processes(session: int) -> list[str]:
    """The command lines of every live process in `session` (what the run started)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields: state ppid pgrp session …; the supervised groups keep the session.
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(cmdline)
    return found


def start(how: str, tmp_path: Path, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port(4)
    if how == "up":
        command = [sys.executable, "-m", "marketplan", "up", "--port", str(port)]
    else:
        # -o: never reinstall the shared .venv from a test.
        command = ["make", "-o", ".venv/.installed", "up", f"PORT={port}"]
    process = subprocess.Popen(command, cwd=ROOT, env=env | {"MARKETPLAN_VAR_DIR": str(
        tmp_path / "var")}, stdout=subprocess.PIPE, stderr=(tmp_path / "err").open("w"),
        text=True, start_new_session=True)
    for line in process.stdout:
        if line.startswith("Ctrl-C stops all"):
            return process, port
    pytest.fail("the system did not start: " + (tmp_path / "err").read_text()[-2000:])


def solve_in_each_service(port: int) -> list[threading.Thread]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def post(path: str, body: dict) -> None:
        with contextlib.suppress(httpx.TransportError):  # the system stops under it
            httpx.post(f"http://127.0.0.1:{port}{path}", json=body, headers=admin, timeout=60)

    threads = [threading.Thread(target=post, args=args) for args in
               (("/api/v1/budget/optimize", EXAMPLE), ("/api/v1/planner/solve", SCHEDULE))]
    for thread in threads:
        thread.start()
    return threads


# Each way a signal reaches `marketplan up` once (a start is most of a case's ~9 s): Ctrl-C in
# a terminal (SIGINT to the group: `up` gets it from the kernel; make does not pass SIGINT on,
# and waits), SIGTERM to make (make passes it on to `up`) and SIGTERM to a `marketplan up`
# run without make. SIGINT to `up` alone is the first case's delivery without make's idle
# wait, and SIGTERM to the group is the second and third at once; `up` takes SIGINT and SIGTERM
# in one handler. The way down is the same code whatever the database, so Ctrl-C runs on
# PostgreSQL, where it also proves that the run's connections close, and the others on SQLite.
CASES = [("postgresql", "group", signal.SIGINT), ("sqlite", "make", signal.SIGTERM),
         ("sqlite", "up", signal.SIGTERM)]


def connections(server, databases: list[str]) -> int:
    """How many sessions the PostgreSQL server holds open on `databases`."""
    with psycopg.connect(server.url().replace("+psycopg", ""), autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)",
                                  (databases,)).fetchone()[0]


@pytest.mark.parametrize(("backend", "target", "sig"), CASES,
                         ids=[f"{backend}-{target}-{sig.name}" for backend, target, sig in CASES])
def test_a_signal_stops_every_process_of_the_run(request, tmp_path, backend, target, sig):
    urls = migrated_databases(request, backend)
    env = os.environ | {"MARKETPLAN_ADMIN_KEY": ADMIN_KEY} | urls
    databases = []
    if backend == "postgresql":
        server = request.getfixturevalue("postgres")
        databases = [url.rsplit("/", 1)[1] for url in urls.values()]
    how = "up" if target == "up" else "make"
    process, port = start(how, tmp_path, env)
    session = process.pid  # start_new_session: the first process leads the session
    threads = solve_in_each_service(port)
    time.sleep(1.0)  # both solves reach their workers
    assert any("shared.workers" in p for p in run_processes(session))
    if databases:
        assert connections(server, databases) > 0   # the run holds sessions: the check can fail

    started = time.monotonic()
    if target == "group":
        os.killpg(process.pid, sig)
    else:  # `make` or `marketplan up` alone
        os.kill(process.pid, sig)
    process.wait(timeout=30)
    while run_processes(session) and time.monotonic() - started < 30:
        time.sleep(0.05)
    took = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=30)
    print(f"{backend} {sig.name} to {target}: stopped in {took:.2f} s")
    assert run_processes(session) == []
    assert "Traceback" not in (tmp_path / "err").read_text()
    if databases:
        # A server session ends a moment after its client's socket closes: wait for that.
        while connections(server, databases) and time.monotonic() - started < 30:
            time.sleep(0.05)
        assert connections(server, databases) == 0
