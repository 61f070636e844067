"""The reads people make every day, against a department-year of data, through the gateway.

For each backend asked for (SQLite, and PostgreSQL on a throwaway server as the tests start
one), starts `marketplan up` on free ports, loads `bench/dataset.py`'s department-year
(`--scale`, `--seed`) and times each read `--reads` times, interleaved with a trivial read
(`GET /api/v1/budget/budgets/{id}`), so each figure also comes as a ratio to the trivial read
of the same run and the same moment. Reads (as a frontend or a finance system makes them):

- calendar: a month and a quarter of the calendar (every campaign in one page), the conflicts
  over the same month and quarter, the iCalendar feed of the whole calendar;
- budget: variance of a budget with 52 weeks of actuals, and every CSV export (plan, actuals,
  variance, reserve ledger, audit, review);
- planner: the campaign overview (calendar + budget + planner) of a random campaign.

Then, in this process, the memory a CSV export holds: peak of Python's allocations
(tracemalloc) while the audit export of 1,000, 10,000 and 100,000 rows is streamed.

    .venv/bin/python bench/reads.py [--backend sqlite postgresql] [--scale 1] [--reads 40]

Prints Markdown tables (p50/p95 in ms and p50/p95 as a ratio to the trivial read's p50).
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dataset import Dataset, api_client, generate  # noqa: E402
from tests.postgres import PostgresServer, free_port  # noqa: E402

TRIVIAL = "GET one budget"
MONTH, QUARTER = ("2027-11-01", "2027-11-30"), ("2027-10-01", "2027-12-31")


def start(var_dir: Path, admin_key: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`marketplan up` on free ports; returns the process and the gateway's URL."""
    port = free_port(4)
    env = os.environ | env | {"MARKETPLAN_ADMIN_KEY": admin_key,
                              "MARKETPLAN_LOG_LEVEL": "WARNING"}
    up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--port", str(port),
                           "--var-dir", str(var_dir)], env=env, cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert up.stdout is not None
    for line in up.stdout:
        if line.startswith("Ctrl-C stops all"):
            return up, f"http://127.0.0.1:{port}"
    raise RuntimeError("marketplan up did not start")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def reads(client: httpx.Client, data: Dataset, rng: random.Random) -> dict[str, Callable[[], str]]:
    """Each read by name: a function that picks its target and answers the path to GET."""
    feed = client.post("/calendar/feed-tokens", json={"label": "Bench"},
                       headers={"Idempotency-Key": str(uuid.uuid4())}).json()["path"]
    budget = lambda: f"/budget/budgets/{rng.choice(data.budgets)['id']}"  # noqa: E731
    reported = lambda: f"/budget/budgets/{rng.choice(data.reported)}"  # noqa: E731
    return {
        TRIVIAL: budget,
        "calendar, a month": lambda: f"/calendar/calendar?from={MONTH[0]}&to={MONTH[1]}&limit=500",
        "calendar, a quarter":
            lambda: f"/calendar/calendar?from={QUARTER[0]}&to={QUARTER[1]}&limit=500",
        "conflicts, a month": lambda: f"/calendar/conflicts?from={MONTH[0]}&to={MONTH[1]}",
        "conflicts, a quarter": lambda: f"/calendar/conflicts?from={QUARTER[0]}&to={QUARTER[1]}",
        "variance": lambda: f"{reported()}/variance",
        "campaign overview":
            lambda: f"/planner/campaigns/{rng.choice(data.campaigns)['id']}/overview",
        "CSV plan": lambda: f"{budget()}/plans/1.csv",
        "CSV actuals": lambda: f"{reported()}/actuals.csv",
        "CSV variance": lambda: f"{reported()}/variance.csv",
        "CSV reserve ledger": lambda: f"{budget()}/reserve/entries.csv",
        "CSV audit": lambda: f"{reported()}/audit.csv",
        "CSV review": lambda: f"{reported()}/review.csv",
        "iCalendar feed, whole calendar": lambda: feed.removeprefix("/api/v1"),
    }


def measure(client: httpx.Client, data: Dataset, count: int,
            rng: random.Random) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call of each read, each call followed by a trivial read; bytes answered."""
    paths = reads(client, data, rng)
    times: dict[str, list[float]] = {name: [] for name in paths}
    sizes: dict[str, int] = {}

    def get(name: str) -> None:
        path = paths[name]()
        began = time.perf_counter()
        response = client.get(path)
        times[name].append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        sizes[name] = len(response.content)

    for name in paths:
        get(name)                     # warm up (and check) each read once, untimed
        times[name].clear()
    for _ in range(count):
        for name in paths:
            if name != TRIVIAL:
                get(name)
                get(TRIVIAL)
    return times, sizes


def run_backend(backend: str, *, scale: float, seed: int, count: int) -> tuple[Dataset, dict, dict]:
    admin_key = "bench-" + uuid.uuid4().hex
    server = None
    env: dict[str, str] = {}
    if backend == "postgresql":
        server = PostgresServer()
        server.start()
        for name in ("calendar", "budget", "planner"):
            env[f"{name.upper()}_DATABASE_URL"] = server.create_database(f"reads_{name}")
    try:
        with tempfile.TemporaryDirectory() as var_dir:
            up, url = start(Path(var_dir), admin_key, env)
            try:
                with api_client(url, admin_key) as client:
                    data = generate(client, scale=scale, seed=seed, log=lambda message: print(
                        f"  {backend} {message}", file=sys.stderr))
                    times, sizes = measure(client, data, count, random.Random(seed))
            finally:
                up.terminate()
                up.wait(timeout=30)
    finally:
        if server is not None:
            server.stop()
    return data, times, sizes


def table(backend: str, data: Dataset, times: dict[str, list[float]],
          sizes: dict[str, int]) -> str:
    base = percentile(times[TRIVIAL], 0.5)
    lines = [f"### {backend}", "",
             "Data: " + ", ".join(f"{count:,} {name}" for name, count in data.counts.items())
             + f"; loaded in {sum(data.seconds.values()):.0f} s "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in data.seconds.items())}).", "",
             "| read | answer | p50 ms | p95 ms | p50 / trivial | p95 / trivial |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, values in times.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        lines.append(f"| {name} | {sizes[name] / 1024:,.0f} KiB | {1000 * p50:.1f} | "
                     f"{1000 * p95:.1f} | {p50 / base:.1f} | {p95 / base:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", nargs="+", choices=["sqlite", "postgresql"],
                        default=["sqlite", "postgresql"])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reads", type=int, default=40, help="timed calls of each read")
    args = parser.parse_args()
    for backend in args.backend:
        data, times, sizes = run_backend(backend, scale=args.scale, seed=args.seed,
                                         count=args.reads)
        print(table(backend, data, times, sizes), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
