"""How long a calendar change takes to reach the planner (and the budget) through the feed.

Starts `marketplan up` on free ports (SQLite, default settings: consumers poll every 0.5 s), makes
a template campaign the planner follows (its tasks generated, a schedule stored) and a budget
linked to it, then moves the campaign's launch N times, one change at a time. For each change
it measures, from just before the calendar request, the time until the planner's (and the
budget's) `GET …/sync` cursor has reached the change's last event — what a client polling the
sync status would see. A random pause before each change spreads the changes over the
consumers' poll cycle. A trivial read through the gateway (`GET /api/v1/planner/status`) is
measured in the same run, interleaved, so the figures read as a ratio to it as well.

    python bench/propagation.py [--changes 40] [--seed 1]

Prints a Markdown table for docs/benchmarks.md. Issue 15 asks for p95 under 5 s.
"""
import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.system import client as gateway_client  # noqa: E402
from bench.system import percentile, start  # noqa: E402
from tests.budget.conftest import BUDGET  # noqa: E402
from tests.calendar.conftest import CAMPAIGN  # noqa: E402

POLL_SECONDS = 0.01       # how often this client reads a sync status while it waits
TIMEOUT_SECONDS = 60


class Run:
    def __init__(self, client: httpx.Client):
        self.http = client

    def ok(self, method: str, path: str, body=None, status: int = 200, **kwargs) -> dict:
        response = self.http.request(method, path, json=body, **kwargs)
        assert response.status_code == status, response.text
        return response.json()

    def newest_event(self, after: str | None) -> str | None:
        newest = after
        while True:
            page = self.ok("GET", "/calendar/events", params={"limit": 500}
                           | ({"after": newest} if newest else {}))
            if page["items"]:
                newest = page["items"][-1]["id"]
            if page["next_cursor"] is None:
                return newest

    def reached(self, service: str, event_id: str) -> bool:
        # The calendar's event ids are decimal positions in commit order (services/calendar/
        # outbox.py), so "at or past" is a number comparison.
        cursor = self.ok("GET", f"/{service}/sync")["cursor"]
        return cursor is not None and int(cursor) >= int(event_id)

    def has_sync(self, service: str) -> bool:
        return self.http.get(f"/{service}/sync").status_code == 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    admin_key = "bench-admin-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as var:
        up, port = start(Path(var), admin_key)
        try:
            run = Run(gateway_client(port, admin_key))
            figures = measure(run, args.changes, rng)
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=30)
    report(figures, args.changes)


def measure(run: Run, changes: int, rng: random.Random) -> dict[str, list[float]]:
    body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")} \
        | {"template": "standard", "launch_date": "2027-03-15"}
    campaign = run.ok("POST", "/calendar/campaigns", body, 201)
    for name, skills in [("design", ["design"]), ("studio", ["copy", "strategy"]),
                         ("performance", ["media", "tech"])]:
        run.ok("POST", "/planner/resources", {"name": name, "skills": skills,
                                              "hours_per_day": "8", "market": "US"}, 201)
    run.ok("POST", f"/planner/campaigns/{campaign['id']}/tasks")
    run.ok("POST", "/planner/schedules", {"start": "2027-02-01", "horizon_days": 90,
                                          "campaign_ids": [campaign["id"]]}, 201)
    run.ok("POST", "/budget/budgets", BUDGET | {"campaign_ids": [campaign["id"]]}, 201)
    services = [s for s in ("planner", "budget") if run.has_sync(s)]
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    path = f"/calendar/campaigns/{campaign['id']}/milestones/{launch['id']}"
    figures: dict[str, list[float]] = {s: [] for s in services} | {"read": []}
    newest = run.newest_event(None)
    for i in range(changes):
        time.sleep(rng.uniform(0, 0.5))
        for _ in range(5):
            began = time.perf_counter()
            run.ok("GET", "/planner/status")
            figures["read"].append(time.perf_counter() - began)
        etag = run.http.get(path).headers["etag"]
        began = time.perf_counter()
        run.ok("POST", path + "/move", {"due_date": "2027-03-18" if i % 2 == 0 else "2027-03-15"},
               headers={"If-Match": etag})
        newest = run.newest_event(newest)
        assert newest is not None
        waiting = set(services)
        while waiting:
            for service in sorted(waiting):
                if run.reached(service, newest):
                    figures[service].append(time.perf_counter() - began)
                    waiting.discard(service)
            assert time.perf_counter() - began < TIMEOUT_SECONDS, waiting
            time.sleep(POLL_SECONDS)
    return figures


def report(figures: dict[str, list[float]], changes: int) -> None:
    read = statistics.median(figures["read"])
    print(f"\nCalendar change → visible in each service's sync status ({changes} launch moves, "
          "one at a time; SQLite, `marketplan up`, consumers polling every 0.5 s)\n")
    print("| measured | samples | p50 ms | p95 ms | p50 / trivial read | p95 / trivial read |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in figures.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        label = "trivial read (GET /planner/status)" if name == "read" else f"{name} sync"
        print(f"| {label} | {len(values)} | {p50 * 1000:.1f} | {p95 * 1000:.1f} | "
              f"{p50 / read:.1f} | {p95 / read:.1f} |")
    if "budget" not in figures:
        print("\nThe budget has no `GET /api/v1/budget/sync` yet: not measured.")


if __name__ == "__main__":
    main()
