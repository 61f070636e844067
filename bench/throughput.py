"""Write throughput through the gateway with 1 and with 2 processes per service, on PostgreSQL,
as a ratio measured in the same run.

Each system is the real `marketplan up --replicas N` on its own fresh databases of one
throwaway PostgreSQL server (tests/postgres.py). wrk drives `POST /api/v1/budget/budgets`
(a budget creation: validated, stored, audited, committed) with 32 connections through the
gateway. The two systems run one after the other (each measured in interleaved rounds of its
own), so neither's idle pollers weigh on the other's figure.

    python bench/throughput.py [--rounds 3] [--seconds 8] [--connections 32]

Needs `wrk` and PostgreSQL's server binaries (initdb); prints a Markdown table for
docs/benchmarks.md. On a 2-core machine little gain is expected: gateway, wrk, PostgreSQL and
every process share the same cores.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres import PostgresServer, free_port  # noqa: E402

ADMIN_KEY = "bench-admin-key-" + uuid.uuid4().hex
BUDGET = {"name": "Bench", "department": "bench", "currency": "USD",
          "start_date": "2027-01-01", "end_date": "2027-12-31", "total": "1000000.00",
          "reserve": {"percent": "10"}}


@contextmanager
def running_system(*, replicas: int, env: dict[str, str]) -> Iterator[dict]:
    """`marketplan up --replicas N` until the block ends; yields its port and admin header."""
    work = Path(tempfile.mkdtemp(prefix="marketplan-bench-"))
    port = free_port(1 + 3 * replicas)
    errors = work / "up.err"
    with errors.open("w") as stderr:
        up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--replicas",
                               str(replicas), "--port", str(port), "--var-dir", str(work / "var")],
                              env=os.environ | env | {"MARKETPLAN_ADMIN_KEY": ADMIN_KEY},
                              stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if line.startswith("Ctrl-C stops all"):
                break
        else:
            raise RuntimeError(f"marketplan up failed: {errors.read_text()}")
        yield {"url": f"http://127.0.0.1:{port}",
               "headers": {"Authorization": f"Bearer {ADMIN_KEY}"}}
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def postgres_env(server: PostgresServer, tag: str) -> dict[str, str]:
    """Fresh databases, one per service."""
    return {f"{name.upper()}_DATABASE_URL": server.create_database(f"bench_{tag}_{name}")
            for name in ("calendar", "budget", "planner")}


def wrk_post(url: str, headers: dict[str, str], body: dict, seconds: int,
             connections: int) -> dict:
    """Requests/s and latency of one wrk run POSTing `body`; fails on any non-2xx answer."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
            "-s", str(script), url]
    for key, value in headers.items():
        args[1:1] = ["-H", f"{key}: {value}"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    finally:
        script.unlink()
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": latency["50"], "p99": latency["99"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench/throughput.py needs wrk: apt-get install wrk")

    server = PostgresServer()
    server.start()
    results: dict[int, list[dict]] = {}
    try:
        for replicas in (1, 2):
            env = postgres_env(server, f"r{replicas}") | {"MARKETPLAN_LOG_LEVEL": "WARNING"}
            with running_system(replicas=replicas, env=env) as system:
                url = system["url"] + "/api/v1/budget/budgets"
                wrk_post(url, system["headers"], BUDGET, 2, args.connections)  # warm-up
                results[replicas] = [wrk_post(url, system["headers"], BUDGET, args.seconds,
                                              args.connections) for _ in range(args.rounds)]
    finally:
        server.stop()

    one = statistics.median(r["rps"] for r in results[1])
    print(f"\n`POST /api/v1/budget/budgets` through the gateway, {args.connections} connections, "
          f"{args.rounds} rounds of {args.seconds} s, median; PostgreSQL; {os.cpu_count()} "
          "cores shared by wrk, PostgreSQL and every process\n")
    print("| processes per service | writes/s | ratio to 1 | p50 | p99 |")
    print("|---|---|---|---|---|")
    for replicas, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        middle = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        print(f"| {replicas} | {rps:,.0f} | {rps / one:.2f} | {middle['p50']} | "
              f"{middle['p99']} |")


if __name__ == "__main__":
    main()
