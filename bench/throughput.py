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
import os
import shutil
import signal
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.system import start, wrk  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

ADMIN_KEY = "bench-admin-key-" + uuid.uuid4().hex
BUDGET = {"name": "Bench", "department": "bench", "currency": "USD",
          "start_date": "2027-01-01", "end_date": "2027-12-31", "total": "1000000.00",
          "reserve": {"percent": "10"}}


@contextmanager
def running_system(*, replicas: int, env: dict[str, str]) -> Iterator[dict]:
    """`marketplan up --replicas N` until the block ends; yields its URL and admin header."""
    work = Path(tempfile.mkdtemp(prefix="marketplan-bench-"))
    up, port = start(work / "var", ADMIN_KEY, env=env, replicas=replicas)
    try:
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
            env = postgres_env(server, f"r{replicas}")
            with running_system(replicas=replicas, env=env) as system:
                url = system["url"] + "/api/v1/budget/budgets"
                wrk(url, system["headers"], 2, args.connections, body=BUDGET)  # warm-up
                results[replicas] = [wrk(url, system["headers"], args.seconds, args.connections,
                                         body=BUDGET) for _ in range(args.rounds)]
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
