"""End-to-end fixtures: `marketplan up` starts the real four processes on free ports.

Starting them takes seconds, so the e2e and fuzz tests share one running system per backend
(`system`, in tests/conftest.py); each test makes its own data under names of its own, so
none depends on a fresh database, and a process a test kills is started again by `up`. A module
whose tests stop the system for good, hang a process for long or schedule every campaign has
one of its own (`module_system`); a test that needs settings of its own starts its own
(`own_system`)."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from gateway.auth import KeyStore
from marketplan.processes import SERVICES
from tests.conftest import migrated_database
from tests.postgres import free_port

ADMIN_KEY = "e2e-admin-key-" + uuid.uuid4().hex


def is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def api_key(system: dict, role: str) -> dict[str, str]:
    """Create a key for `role` in the running system's keys file, as `marketplan keys create`
    does (here in process: a CLI run took ~1.4 s of CPU, ~30 times a run; the CLI's key
    working at once is tests/e2e/test_up.py's); return its auth header."""
    keys = KeyStore(dotenv_values(system["env_file"])["GATEWAY_KEYS_FILE"])
    return {"Authorization": f"Bearer {keys.create(role, name=f'Test {role}')[1]}"}


def unique(name: str) -> str:
    """`name` made unique, for things the system keeps unique (a planner resource's name)."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def migrated_databases(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """`<SERVICE>_DATABASE_URL` of a fresh database per service already at the newest revision
    (a copy of the run's migrated template: `up`'s migrations then have nothing to do, where
    running them took 2-4 s of each start on CI). `up`'s own migrating is proven on the
    shared system, which starts on empty databases (tests/e2e/test_up.py)."""
    factory = request.getfixturevalue("tmp_path_factory")
    return {f"{service.name.upper()}_DATABASE_URL":
            migrated_database(request, factory, service.migrations, backend)
            for service in SERVICES}


@contextlib.contextmanager
def running(request: pytest.FixtureRequest, backend: str, root: Path,
            env: dict[str, str] | None = None, *, migrated: bool = True) -> Iterator[dict]:
    """Run `marketplan up` on `backend` with `env` added (on fresh databases that are
    `migrated` already, or empty); stop it after."""
    env = os.environ | {"MARKETPLAN_ADMIN_KEY": ADMIN_KEY} | (env or {})
    if migrated:
        env |= migrated_databases(request, backend)
    elif backend == "postgresql":
        server = request.getfixturevalue("postgres")
        for name in ("calendar", "budget", "planner"):
            env[f"{name.upper()}_DATABASE_URL"] = server.create_database(
                f"e2e_{name}_{uuid.uuid4().hex[:8]}")
    port = free_port(4)
    # Its own lines (restarts, stopping) kept for the tests of what a terminal shows.
    with (root / "up.err").open("w") as stderr:
        up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--port", str(port),
                               "--var-dir", str(root / "var")], env=env,
                              stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        lines = []
        for line in up.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops all"):
                break
        assert up.poll() is None, "".join(lines)
        output = "".join(lines)
        pids = {part.split()[0]: int(part.split()[2])
                for part in output.split("Processes:")[1].splitlines()[0].split(", ")}
        yield {"backend": backend, "port": port, "up": up, "pids": pids, "output": output,
               "env": env, "env_file": root / "var" / "up.env", "stderr": root / "up.err"}
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=30)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_system(request, tmp_path_factory):
    """A running system for one module's tests alone, with the module's `SYSTEM_ENV` settings
    if it has any; parametrize with indirect=True to pick one backend."""
    with running(request, request.param, tmp_path_factory.mktemp("module-system"),
                 getattr(request.module, "SYSTEM_ENV", None)) as started:
        yield started


@pytest.fixture(params=["sqlite", "postgresql"])
def own_system(request, tmp_path):
    """A running system for one test alone, started with the environment as the test set it."""
    with running(request, request.param, tmp_path) as started:
        yield started
