"""End-to-end fixtures: `marketplan up` starts the real four processes on free ports."""
import os
import signal
import socket
import subprocess
import sys
import uuid

import pytest

from tests.postgres import free_port

ADMIN_KEY = "e2e-admin-key-" + uuid.uuid4().hex


def is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def api_key(system: dict, role: str) -> dict[str, str]:
    """Create a key for `role` with the CLI, as an admin would; return its auth header."""
    created = subprocess.run([sys.executable, "-m", "marketplan", "--env-file",
                              str(system["env_file"]), "keys", "create", "--role", role,
                              "--name", f"Test {role}"],
                             capture_output=True, text=True, check=True, env=system["env"])
    return {"Authorization": f"Bearer {created.stdout.strip()}"}


def marketplan(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "marketplan", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def system(request, tmp_path):
    """The running system; parametrize with indirect=True to pick one backend."""
    env = os.environ | {"MARKETPLAN_ADMIN_KEY": ADMIN_KEY}
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        for name in ("calendar", "budget", "planner"):
            env[f"{name.upper()}_DATABASE_URL"] = server.create_database(
                f"e2e_{name}_{uuid.uuid4().hex[:8]}")
    port = free_port(4)
    up = marketplan("up", "--port", str(port), "--var-dir", str(tmp_path / "var"), env=env)
    lines = []
    for line in up.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C stops all"):
            break
    assert up.poll() is None, "".join(lines)
    output = "".join(lines)
    pids = {part.split()[0]: int(part.split()[2])
            for part in output.split("Processes:")[1].splitlines()[0].split(", ")}
    yield {"port": port, "up": up, "pids": pids, "output": output, "env": env,
           "env_file": tmp_path / "var" / "up.env"}
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
