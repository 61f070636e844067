"""`marketplan up`: migrate, start the four processes, wait until ready, stop them together."""
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.auth import KeyStore
from marketplan.processes import GATEWAY, PROCESSES, SERVICES
from shared import migrations

UP_KEY_LABEL = "development admin (marketplan up)"
READY_TIMEOUT_SECONDS = 60


def run_environment(*, host: str, port: int, var_dir: Path) -> dict[str, str]:
    """The settings every process gets; the caller's own environment wins where it is set."""
    env = {"MARKETPLAN_ENV": "development",
           "MARKETPLAN_INTERNAL_SECRET": secrets.token_urlsafe(32),
           "GATEWAY_KEYS_FILE": str(var_dir / "api_keys.json")}
    for process in PROCESSES.values():
        prefix = process.env_prefix
        env[prefix + "HOST"] = host
        env[prefix + "PORT"] = str(port + process.port_offset)
        if process is not GATEWAY:
            env[f"GATEWAY_{prefix}URL"] = f"http://{host}:{port + process.port_offset}"
            env[prefix + "DATABASE_URL"] = f"sqlite:///{var_dir / process.name}.db"
    env["BUDGET_CALENDAR_URL"] = env["PLANNER_CALENDAR_URL"] = env["GATEWAY_CALENDAR_URL"]
    env.update({k: v for k, v in os.environ.items() if k in env})
    return env


def write_env_file(path: Path, env: dict[str, str]) -> None:
    path.write_text("".join(f"{k}='{v}'\n" for k, v in sorted(env.items())))
    path.chmod(0o600)  # it holds the internal secret


def seed_admin_key(keys: KeyStore, admin_key: str | None) -> str:
    """Store the given admin key, or make a new one and revoke the last run's."""
    if admin_key:
        return keys.create("admin", label="MARKETPLAN_ADMIN_KEY", key=admin_key)[1]
    for record in keys.list():
        if record["label"] == UP_KEY_LABEL:
            keys.revoke(record["id"])
    return keys.create("admin", label=UP_KEY_LABEL)[1]


def _wait_ready(children: dict[str, subprocess.Popen], env: dict[str, str],
                stopping: list) -> str | None:
    """Return None when every process answers /readyz, else why not."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    pending = set(children)
    while pending:
        if stopping:
            return "stopped while starting"
        for name in sorted(pending):
            if children[name].poll() is not None:
                return f"{name} exited with code {children[name].returncode} while starting"
            prefix = PROCESSES[name].env_prefix
            url = f"http://{env[prefix + 'HOST']}:{env[prefix + 'PORT']}/readyz"
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    pending.discard(name)
            except httpx.TransportError:
                pass
        if time.monotonic() > deadline:
            return f"not ready after {READY_TIMEOUT_SECONDS} s: {', '.join(sorted(pending))}"
        time.sleep(0.1)
    return None


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 10
    for child in children.values():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def up(*, host: str, port: int, var_dir: Path) -> int:
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = run_environment(host=host, port=port, var_dir=var_dir)
    env_file = var_dir / "up.env"
    write_env_file(env_file, env)
    os.environ.update(env)
    for service in SERVICES:
        migrations.upgrade(service.migrations, service.settings().database_url)
    admin_key = seed_admin_key(KeyStore(env["GATEWAY_KEYS_FILE"]),
                               os.environ.get("MARKETPLAN_ADMIN_KEY"))

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    children = {name: subprocess.Popen([sys.executable, "-m", "marketplan", "serve", name,
                                        "--env-file", str(env_file)])
                for name in (*(s.name for s in SERVICES), GATEWAY.name)}
    if problem := _wait_ready(children, env, stopping):
        print(f"marketplan up failed: {problem}", file=sys.stderr)
        _stop(children)
        return 1
    gateway = f"http://{host}:{port}"
    print(f"\nMarketplan is up.\n  API:        {gateway}/api/v1/\n  Docs:       {gateway}/docs\n"
          f"  Admin key:  {admin_key}\n  Processes:  " + ", ".join(
              f"{name} pid {child.pid} port {env[PROCESSES[name].env_prefix + 'PORT']}"
              for name, child in children.items())
          + "\nCtrl-C stops all.\n", flush=True)

    reported = set()
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None and name not in reported:
                reported.add(name)
                print(f"{name} stopped (exit code {child.returncode}); the others keep "
                      f"running. Start it again with: marketplan serve {name} --env-file "
                      f"{env_file}", file=sys.stderr, flush=True)
        time.sleep(0.2)
    _stop(children)
    return 0
