"""`marketplan up`: migrate, start the four processes, keep them running, stop them together.

`--replicas N` runs N processes of each service (PostgreSQL only) on consecutive ports after
the gateway's; the gateway balances over them (gateway/upstreams.py). Migrations run once,
before any process starts; every process runs its service's job runner, as jobs are claimed
through the database.

`up` owns what it starts: each process runs in its own process group (with its solver
workers), is restarted with backoff when it dies, dies with `up` (PR_SET_PDEATHSIG, see
`die_with_supervisor`), and is stopped with its whole group when `up` stops. SIGINT, SIGTERM
or SIGHUP to `up` (or to its process group, as Ctrl-C does) stops everything within
`STOP_SECONDS`: a graceful SIGTERM first, then SIGKILL to whatever group is left.
"""
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.auth import KeyStore
from marketplan.processes import GATEWAY, SERVICES
from shared import migrations

UP_KEY_LABEL = "development admin (marketplan up)"
# Per replica: N processes of each service start at once and share the machine's cores. A
# loaded 2-core machine (load average ~20) took over 60 s to start the four on PostgreSQL.
READY_TIMEOUT_SECONDS = 120
# Uvicorn's graceful shutdown is capped at 1 s (`marketplan serve`); what is left after this
# is killed, so a stop never takes longer.
STOP_SECONDS = 2.0
# Restart backoff: 1, 2, 4 … 30 s between tries; a process that ran this long starts over at 1.
BACKOFF_FIRST, BACKOFF_MAX, HEALTHY_AFTER_SECONDS = 1.0, 30.0, 30.0
SUPERVISOR_ENV = "MARKETPLAN_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def service_ports(port: int, replicas: int) -> dict[str, list[int]]:
    """Each service's ports: `replicas` consecutive ones per service after the gateway's, in
    the order calendar, budget, planner (one each: port+1, port+2, port+3 as always)."""
    return {service.name: [port + 1 + index * replicas + replica
                           for replica in range(replicas)]
            for index, service in enumerate(SERVICES)}


def run_environment(*, host: str, port: int, var_dir: Path,
                    replicas: int = 1) -> dict[str, str]:
    """The settings every process gets; the caller's own environment wins where it is set.

    The gateway gets every address of each service, comma-separated, and balances over them."""
    ports = service_ports(port, replicas)
    env = {"MARKETPLAN_ENV": "development",
           "MARKETPLAN_INTERNAL_SECRET": secrets.token_urlsafe(32),
           "GATEWAY_KEYS_FILE": str(var_dir / "api_keys.json"),
           "GATEWAY_HOST": host, "GATEWAY_PORT": str(port)}
    for service in SERVICES:
        prefix = service.env_prefix
        env[prefix + "HOST"] = host
        env[f"GATEWAY_{prefix}URL"] = ",".join(f"http://{host}:{p}" for p in ports[service.name])
        env[prefix + "DATABASE_URL"] = f"sqlite:///{var_dir / service.name}.db"
    env.update({k: v for k, v in os.environ.items() if k in env})
    return env


def replica_environment(*, host: str, port: int, replicas: int, replica: int
                        ) -> dict[str, str]:
    """What differs between the processes of one service: replica i of budget and planner
    calls replica i of the services it needs first, so the calls spread like the processes
    do, and the others after it when it cannot be reached (shared/client.py).
    Set by `up` for each process, never written to the shared env file (`serve` loads that
    file over its environment); the caller's own environment wins here too."""
    ports = service_ports(port, replicas)
    calendar, budget = (",".join(f"http://{host}:{p}" for p in
                                 ports[name][replica:] + ports[name][:replica])
                        for name in ("calendar", "budget"))
    env = {"BUDGET_CALENDAR_URL": calendar, "PLANNER_CALENDAR_URL": calendar,
           "PLANNER_BUDGET_URL": budget}
    return env | {k: v for k, v in os.environ.items() if k in env}


def sqlite_services(env: dict[str, str]) -> list[str]:
    """The services whose database is SQLite: one process each, as SQLite takes one writer at
    a time and would only serialize several processes behind the balancer."""
    return [s.name for s in SERVICES
            if env[s.env_prefix + "DATABASE_URL"].startswith("sqlite")]


def write_env_file(path: Path, env: dict[str, str]) -> None:
    path.write_text("".join(f"{k}='{v}'\n" for k, v in sorted(env.items())))
    path.chmod(0o600)  # it holds the internal secret


def seed_admin_key(keys: KeyStore, admin_key: str | None) -> str:
    """Store the given admin key, or make a new one and revoke the last run's."""
    if admin_key:
        return keys.create("admin", name="Development admin", label="MARKETPLAN_ADMIN_KEY",
                           key=admin_key)[1]
    for record in keys.list():
        if record["label"] == UP_KEY_LABEL:
            keys.revoke(record["id"])
    return keys.create("admin", name="Development admin", label=UP_KEY_LABEL)[1]


def die_with_supervisor() -> None:
    """In a process `up` started: end (SIGTERM) when `up` ends, even if `up` is SIGKILLed."""
    supervisor = os.environ.pop(SUPERVISOR_ENV, None)
    if supervisor is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(supervisor):  # `up` died before the line above took effect
        sys.exit(0)


def log(message: str) -> None:
    print(f"marketplan up: {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    name: str
    command: list[str]
    # Where its JSON log lines go (appended), so the terminal keeps the banner readable;
    # None leaves them on the terminal.
    log_path: Path | None = None
    # What this process alone gets on top of `up`'s environment, and where it answers.
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    ready_url: str | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        env = os.environ | self.env | {SUPERVISOR_ENV: str(os.getpid())}
        # Its own process group: `up` stops it with its solver workers in one killpg, and a
        # Ctrl-C to the terminal reaches `up` alone, which stops everything in order.
        if self.log_path is None:
            self.process = subprocess.Popen(self.command, env=env, process_group=0)
        else:
            with open(self.log_path, "ab") as log_file:  # the child keeps its own descriptor
                self.process = subprocess.Popen(self.command, env=env, process_group=0,
                                                stdout=log_file, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()
        self.restart_at = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def supervise(self, now: float) -> None:
        """Restart the process with backoff if it died."""
        if self.process is None or self.running():
            return
        if self.restart_at is None:
            code = self.process.returncode
            self.exits.append(code)
            _kill_group(self.process.pid, signal.SIGKILL)  # workers it may have left
            if now - self.started_at >= HEALTHY_AFTER_SECONDS:
                self.backoff = BACKOFF_FIRST
            self.restart_at = now + self.backoff
            log(f"{self.name} exited with code {code}; restarting it in {self.backoff:g} s")
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        elif now >= self.restart_at:
            self.start()
            log(f"{self.name} restarted (pid {self.process.pid})")


def _kill_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def stop(children: list[Child]) -> None:
    """SIGTERM every group, wait up to STOP_SECONDS, SIGKILL what is left, reap."""
    groups = [c.process.pid for c in children if c.process is not None]
    for pgid in groups:
        _kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        if child.process is not None:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{child.name} did not stop in {STOP_SECONDS:g} s; killed")
    for pgid in groups:
        _kill_group(pgid, signal.SIGKILL)  # the leader's workers too, if any outlived it
    for child in children:
        if child.process is not None:
            child.process.wait()


def _wait_ready(children: list[Child], stopping: list, timeout: float) -> str | None:
    """Return None when every process answers /readyz, else why not."""
    deadline = time.monotonic() + timeout
    pending = {c.name: c for c in children}
    with httpx.Client(timeout=1) as client:
        while pending:
            if stopping:
                return "stopped while starting"
            for name, child in sorted(pending.items()):
                if not child.running():
                    assert child.process is not None
                    return f"{name} exited with code {child.process.returncode} while starting"
                try:
                    if client.get(f"{child.ready_url}").status_code == 200:
                        del pending[name]
                except httpx.TransportError:
                    pass
            if time.monotonic() > deadline:
                return f"not ready after {timeout:g} s: {', '.join(sorted(pending))}"
            time.sleep(0.1)
    return None


def children_for(*, host: str, port: int, replicas: int, env_file: Path, logs: Path
                 ) -> list[Child]:
    """The processes `up` runs: `replicas` of each service, then the gateway. With one
    replica each keeps its plain name (`budget`); with more they are `budget-1`, `budget-2`…"""
    children = []
    ports = service_ports(port, replicas)
    for service in SERVICES:
        for replica, service_port in enumerate(ports[service.name]):
            name = service.name if replicas == 1 else f"{service.name}-{replica + 1}"
            children.append(Child(
                name, [sys.executable, "-m", "marketplan", "serve", service.name, "--port",
                       str(service_port), "--env-file", str(env_file)],
                log_path=logs / f"{name}.log", port=service_port,
                env=replica_environment(host=host, port=port, replicas=replicas,
                                        replica=replica),
                ready_url=f"http://{host}:{service_port}/readyz"))
    children.append(Child(GATEWAY.name, [sys.executable, "-m", "marketplan", "serve",
                                         GATEWAY.name, "--env-file", str(env_file)],
                          log_path=logs / f"{GATEWAY.name}.log", port=port,
                          ready_url=f"http://{host}:{port}/readyz"))
    return children


def up(*, host: str, port: int, var_dir: Path, replicas: int = 1) -> int:
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: stopping.append(number))
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = run_environment(host=host, port=port, var_dir=var_dir, replicas=replicas)
    if replicas > 1 and (on_sqlite := sqlite_services(env)):
        log(f"--replicas {replicas} needs PostgreSQL, and {', '.join(on_sqlite)} "
            "would run on SQLite. Set CALENDAR_DATABASE_URL, BUDGET_DATABASE_URL and "
            "PLANNER_DATABASE_URL to one database each, e.g. "
            "postgresql+psycopg://user:password@host:5432/marketplan_budget "
            "(or run without --replicas: SQLite runs one process per service).")
        return 2
    env_file = var_dir / "up.env"
    write_env_file(env_file, env)
    os.environ.update(env)
    # Once, before any process starts: replicas never race each other's migrations.
    for service in SERVICES:
        migrations.upgrade(service.migrations, service.database_url())
    admin_key = seed_admin_key(KeyStore(env["GATEWAY_KEYS_FILE"]),
                               os.environ.get("MARKETPLAN_ADMIN_KEY"))
    if stopping:
        return 0

    logs = var_dir / "logs"
    logs.mkdir(exist_ok=True)
    children = children_for(host=host, port=port, replicas=replicas, env_file=env_file,
                            logs=logs)
    for child in children:
        child.start()
    try:
        if problem := _wait_ready(children, stopping, READY_TIMEOUT_SECONDS * replicas):
            if not stopping:
                log(f"failed: {problem}")
                return 1
            return 0
        gateway = f"http://{host}:{port}"
        print(f"\nMarketplan is up.\n  API:        {gateway}/api/v1/\n  Docs:       {gateway}/docs\n"
              f"  Admin key:  {admin_key}\n  Processes:  " + ", ".join(
                  f"{c.name} pid {c.process.pid} port {c.port}"
                  for c in children if c.process is not None)
              + f"\n  Logs:       {logs}/<process>.log (JSON lines)"
              + "\nA process that stops is restarted.\nCtrl-C stops all.\n", flush=True)
        while not stopping:
            now = time.monotonic()
            for child in children:
                child.supervise(now)
            time.sleep(0.1)
        return 0
    finally:
        stop(children)
