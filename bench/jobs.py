"""What a job costs: the same budget solve as a synchronous call and as a job (`Prefer:
respond-async`, then polling the job every 10 ms until it ends), through the gateway of the real
`marketplan up` (SQLite, the one-command default), interleaved, as a ratio of medians.

Two calls: a small what-if (milliseconds: the job's fixed cost shows) and 100 S-curves with 20
deals over 8 capped periods under a brand group, stopped at a 3 s time limit (a solve jobs are
made for; without the caps and the group it is proven in under a second).

    python bench/jobs.py [--small-runs 20] [--long-runs 3]

Prints a Markdown table for docs/benchmarks.md.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import running_system  # noqa: E402
from tests.budget.test_jobs import ASYNC, WHATIF, s_curves  # noqa: E402

POLL_SECONDS = 0.01
FINAL = ("succeeded", "failed", "cancelled")


def synchronous(client: httpx.Client, body: dict) -> float:
    started = time.perf_counter()
    response = client.post("/api/v1/budget/optimize", json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"synchronous call failed: {response.text}")
    return elapsed


def as_job(client: httpx.Client, body: dict) -> float:
    """Seconds from the POST to seeing the job succeeded."""
    started = time.perf_counter()
    response = client.post("/api/v1/budget/optimize", json=body, headers=ASYNC)
    if response.status_code != 202:
        raise RuntimeError(f"job not accepted: {response.text}")
    location = response.headers["Location"]
    while (job := client.get(location).json())["status"] not in FINAL:
        time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"job ended {job['status']}: {job['error']}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-runs", type=int, default=20)
    parser.add_argument("--long-runs", type=int, default=3)
    args = parser.parse_args()
    calls = [("small what-if", WHATIF, args.small_runs),
             ("100 S-curves, 3 s limit", s_curves(time_limit=3, crowded=True), args.long_runs)]
    rows = []
    with running_system(replicas=1, env={"MARKETPLAN_LOG_LEVEL": "WARNING"}) as system, \
            httpx.Client(base_url=system["url"], headers=system["headers"],
                         timeout=120) as client:
        synchronous(client, WHATIF)  # warm-up: solver workers, pools
        as_job(client, WHATIF)
        for label, body, runs in calls:
            timings: dict[str, list[float]] = {"sync": [], "job": []}
            for _ in range(runs):
                timings["sync"].append(synchronous(client, body))
                timings["job"].append(as_job(client, body))
            sync, job = (statistics.median(timings[k]) for k in ("sync", "job"))
            rows.append((label, sync, job, runs))

    print(f"\nThrough the gateway, SQLite, polling every {POLL_SECONDS * 1000:g} ms; medians\n")
    print("| call | synchronous p50 | as a job p50 | ratio | job's extra | runs |")
    print("|---|---|---|---|---|---|")
    for label, sync, job, runs in rows:
        print(f"| {label} | {sync * 1000:,.0f} ms | {job * 1000:,.0f} ms | {job / sync:.2f} | "
              f"{(job - sync) * 1000:,.0f} ms | {runs} |")


if __name__ == "__main__":
    main()
