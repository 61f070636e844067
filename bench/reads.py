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

Then, in this process and on the same backend, the memory a CSV export takes: the audit
export of 1,000, 10,000 and 100,000 rows (written straight into a migrated budget database)
read to its end, with the peak of Python's allocations (tracemalloc) and of the process's
resident memory above where it started (VmHWM, reset before each export). `--exports-from
COMMIT` measures that commit's `services/budget/ledger/exports.py` on the same rows too.

    .venv/bin/python bench/reads.py [--backend sqlite postgresql] [--scale 1] [--reads 40]
                                    [--exports-from COMMIT] [--keep DIR] [--only NAME ...]

Prints Markdown tables (p50/p95 in ms and p50/p95 as a ratio to the trivial read's p50).

To iterate on one read: `--keep DIR` keeps each backend's loaded system in `DIR/<backend>`
(the var directory, the PostgreSQL data directory, the dataset's ids) and a later run with the
same `DIR`, scale and seed starts it again instead of loading for minutes; `--only` times only
the reads whose names contain one of the words given (and the trivial read), without the
export memory.
"""
import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dataset import Dataset, api_client, generate  # noqa: E402
from bench.system import percentile, start  # noqa: E402
from services.budget.app import MIGRATIONS as BUDGET_MIGRATIONS  # noqa: E402
from services.budget.ledger import exports  # noqa: E402
from services.budget.ledger.tables import AuditEntry, Budget  # noqa: E402
from shared import migrations  # noqa: E402
from tests.postgres import PostgresServer, find_bin_dir  # noqa: E402

TRIVIAL = "GET one budget"
EXPORT_ROWS = (1_000, 10_000, 100_000)
FEED, FEED_READS = "iCalendar feed, whole calendar", 5
# A calendar client's poll of the same feed with the ETag it holds: nothing changed, so a 304.
FEED_POLL = "iCalendar feed, whole calendar, unchanged (304)"
# Reads that older commits do not serve (a 404, or a 422 for the query parameter they do not
# take): left out of their tables, with `--keep` runs of such a commit.
ADDED_READS = {"conflicts summary, a month", "conflicts of one campaign, a month"}
# The first read after a change to the calendar (a milestone in the month renamed, untimed,
# before each call): what a planner waits for after an edit, where the calendar keeps answers
# per state of the calendar.
AFTER_CHANGE = ", after a change"
MONTH, QUARTER = ("2027-11-01", "2027-11-30"), ("2027-10-01", "2027-12-31")


def month_campaigns(data: Dataset) -> list[str]:
    return [c["id"] for c in data.campaigns
            if c["start_date"] <= MONTH[1] and c["end_date"] >= MONTH[0]]


def reads(client: httpx.Client, data: Dataset, rng: random.Random) -> dict[str, Callable[[], str]]:
    """Each read by name: a function that picks its target and answers the path to GET."""
    feed = client.post("/calendar/feed-tokens", json={"label": "Bench"},
                       headers={"Idempotency-Key": str(uuid.uuid4())}).json()["path"]
    budget = lambda: f"/budget/budgets/{rng.choice(data.budgets)['id']}"  # noqa: E731
    reported = lambda: f"/budget/budgets/{rng.choice(data.reported)}"  # noqa: E731
    in_month = month_campaigns(data)
    month = f"from={MONTH[0]}&to={MONTH[1]}"
    return {
        TRIVIAL: budget,
        "calendar, a month": lambda: f"/calendar/calendar?from={MONTH[0]}&to={MONTH[1]}&limit=500",
        "calendar, a quarter":
            lambda: f"/calendar/calendar?from={QUARTER[0]}&to={QUARTER[1]}&limit=500",
        "conflicts, a month": lambda: f"/calendar/conflicts?from={MONTH[0]}&to={MONTH[1]}",
        "conflicts, a quarter": lambda: f"/calendar/conflicts?from={QUARTER[0]}&to={QUARTER[1]}",
        # What a frontend reads of a busy month: the counts, then one campaign's conflicts.
        "conflicts summary, a month": lambda: f"/calendar/conflicts/summary?{month}",
        "conflicts of one campaign, a month":
            lambda: f"/calendar/conflicts?{month}&campaign_id={rng.choice(in_month)}",
        "variance": lambda: f"{reported()}/variance",
        "campaign overview":
            lambda: f"/planner/campaigns/{rng.choice(data.campaigns)['id']}/overview",
        "CSV plan": lambda: f"{budget()}/plans/1.csv",
        "CSV actuals": lambda: f"{reported()}/actuals.csv",
        "CSV variance": lambda: f"{reported()}/variance.csv",
        "CSV reserve ledger": lambda: f"{budget()}/reserve/entries.csv",
        "CSV audit": lambda: f"{reported()}/audit.csv",
        "CSV review": lambda: f"{reported()}/review.csv",
        FEED: lambda: feed.removeprefix("/api/v1"),
        FEED_POLL: lambda: feed.removeprefix("/api/v1"),
    } | {name + AFTER_CHANGE: lambda path=path: path for name, path in (
        ("calendar, a month", f"/calendar/calendar?{month}&limit=500"),
        ("conflicts, a month", f"/calendar/conflicts?{month}"),
        ("conflicts summary, a month", f"/calendar/conflicts/summary?{month}"),
        (FEED, feed.removeprefix("/api/v1")))}


def change_calendar(client: httpx.Client, campaign_id: str) -> None:
    """Rename the campaign's first milestone, or rename it back: one change to the calendar
    (untimed)."""
    first = client.get(f"/calendar/campaigns/{campaign_id}/milestones").json()["items"][0]
    path = f"/calendar/campaigns/{campaign_id}/milestones/{first['id']}"
    current = client.get(path)
    name = current.json()["name"]
    renamed = name.removesuffix(" (renamed)") if name.endswith(" (renamed)") else name + " (renamed)"
    response = client.patch(path, json={"name": renamed},
                            headers={"If-Match": current.headers["etag"]})
    if response.status_code != 200:
        raise RuntimeError(f"PATCH {path}: {response.status_code} {response.text[:300]}")


class NotInThisTree(Exception):
    """A read the system measured does not serve (`--keep` runs of an older commit)."""


def measure(client: httpx.Client, data: Dataset, count: int, rng: random.Random,
            only: list[str] | None = None) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call of each read (those whose names contain a word of `only`, if given),
    each call followed by a trivial read; bytes answered."""
    paths = {name: path for name, path in reads(client, data, rng).items()
             if only is None or name == TRIVIAL or any(word in name for word in only)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    sizes: dict[str, int] = {}
    etags: dict[str, str] = {}

    renamed = month_campaigns(data)[0]

    def get(name: str) -> None:
        path = paths[name]()
        poll = name == FEED_POLL
        if name.endswith(AFTER_CHANGE):
            change_calendar(client, renamed)
        if poll and path not in etags:
            etags[path] = client.get(path).headers["etag"]
        began = time.perf_counter()
        response = client.get(path, headers={"If-None-Match": etags[path]} if poll else None)
        times[name].append(time.perf_counter() - began)
        if response.status_code in (404, 422) and name in ADDED_READS:
            raise NotInThisTree(path)
        if response.status_code != (304 if poll else 200):
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        sizes[name] = len(response.content)

    # The reads on an unchanged calendar first (the feed's poll holds its first ETag), then
    # those after a change.
    for after_change in (False, True):
        names = [name for name in paths if name.endswith(AFTER_CHANGE) == after_change]
        for name in list(names):
            try:
                get(name)                 # warm up (and check) each read once, untimed
            except NotInThisTree:
                del paths[name], times[name]   # a read a tree before it does not have
                names.remove(name)
            times.get(name, []).clear()
        for round_ in range(count):
            for name in names:
                # The whole-calendar feed took seconds to render: timed fewer times.
                if name != TRIVIAL and (not name.startswith(FEED) or round_ < FEED_READS):
                    get(name)
                    get(TRIVIAL)
    return times, sizes


def _peak_rss_reset() -> int:
    """Reset the process's peak resident memory to its current one (Linux); return it, bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmHWM") * 1024


def _status_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                if x.startswith(field + ":"))
    return int(line.split()[1])


def module_at(commit: str) -> types.ModuleType:
    """`services/budget/ledger/exports.py` as it was at `commit`."""
    source = subprocess.run(["git", "show", f"{commit}:services/budget/ledger/exports.py"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    module = types.ModuleType(f"exports_{commit}")
    exec(compile(source, f"{commit}:exports.py", "exec"), module.__dict__)
    return module


def export_memory(url: str, modules: dict[str, types.ModuleType]) -> list[tuple]:
    """(module, rows, bytes, peak traced, peak RSS above the start) of the audit export of
    each size in EXPORT_ROWS, rows written directly into a migrated budget database."""
    migrations.upgrade(BUDGET_MIGRATIONS, url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(Budget(id="bud_memory", name="Memory", department="bench", currency="EUR",
                           start_date=date(2027, 1, 1), end_date=date(2027, 12, 31),
                           period_length="week", total_minor=100_000_00,
                           reserve={"percent": "10"}, groups=[], rules={}, campaign_ids=[],
                           created_by="bench", created_at=now, updated_at=now))
        session.commit()
    results, made = [], 0
    for rows in EXPORT_ROWS:
        with Session(engine) as session:
            while made < rows:
                batch = min(10_000, rows - made)
                session.execute(insert(AuditEntry), [{
                    "budget_id": "bud_memory", "at": now, "principal": "key_bench",
                    "principal_name": "Bench", "role": "finance", "request_id": uuid.uuid4().hex,
                    "action": "actuals.import", "target": f"channel-{(made + i) % 50}",
                    "changes": {"after": {"spend": f"{made + i}.00", "period": "2027-W10"}}}
                    for i in range(batch)])
                made += batch
            session.commit()
        for name, module in modules.items():
            with Session(engine) as session:
                start = _peak_rss_reset()
                tracemalloc.start()
                pieces = module.audit_csv(session=session, budget_id="bud_memory")
                written = sum(len(piece.encode()) for piece in
                              ([pieces] if isinstance(pieces, str) else pieces))
                traced = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                results.append((name, rows, written, traced, _status_kib("VmHWM") * 1024 - start))
    engine.dispose()
    return results


class KeptPostgres(PostgresServer):
    """A PostgreSQL server whose data directory is `root`, kept when it stops, so a later run
    starts it again with what was loaded."""

    def __init__(self, root: Path):
        super().__init__()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        if not (self.root / "data").exists():
            super().start()
            return
        result = self._run("pg_ctl", "-D", str(self.root / "data"), "-l",
                           str(self.root / "server.log"), "-w", "-t", "60", "-o",
                           f"-p {self.port} -c listen_addresses=127.0.0.1 -c "
                           f"unix_socket_directories={self.root} -c fsync=off "
                           "-c max_connections=200", "start")
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr.strip()}")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "stop")


def run_backend(backend: str, *, scale: float, seed: int, count: int,
                modules: dict[str, types.ModuleType], keep: Path | None = None,
                only: list[str] | None = None) -> tuple[Dataset, dict, dict, list]:
    """Load (or, with `keep`, reuse) a department-year on `backend`, time its reads and,
    unless `only` narrows them, the exports' memory."""
    with ExitStack() as stack:
        if keep is None:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            home = keep / backend
            home.mkdir(parents=True, exist_ok=True)
        var_dir, saved = home / "var", home / "dataset.json"
        var_dir.mkdir(exist_ok=True)
        kept = json.loads(saved.read_text()) if saved.exists() else None
        if kept is not None and (kept["scale"], kept["seed"]) != (scale, seed):
            raise SystemExit(f"{home} holds scale {kept['scale']}, seed {kept['seed']}: "
                             "pass those or another --keep directory")
        admin_key = kept["admin_key"] if kept else "bench-" + uuid.uuid4().hex
        server = None
        env: dict[str, str] = {}
        if backend == "postgresql":
            server = KeptPostgres(home / "postgresql") if keep else PostgresServer()
            server.start()
            stack.callback(server.stop)
            for name in ("calendar", "budget", "planner"):
                env[f"{name.upper()}_DATABASE_URL"] = (
                    server.url(f"reads_{name}") if kept else
                    server.create_database(f"reads_{name}"))
        up, port = start(var_dir, admin_key, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            with api_client(url, admin_key) as client:
                if kept:
                    data = Dataset(**kept["data"])
                else:
                    data = generate(client, scale=scale, seed=seed, log=lambda message: print(
                        f"  {backend} {message}", file=sys.stderr))
                    if keep is not None:
                        saved.write_text(json.dumps({"scale": scale, "seed": seed,
                                                     "admin_key": admin_key,
                                                     "data": asdict(data)}, default=str))
                times, sizes = measure(client, data, count, random.Random(seed), only)
        finally:
            up.terminate()
            up.wait(timeout=30)
        memory = [] if only else export_memory(
            server.create_database(f"reads_memory_{uuid.uuid4().hex[:8]}") if server else
            f"sqlite:///{home}/memory-{uuid.uuid4().hex[:8]}.db", modules)
    return data, times, sizes, memory


def memory_table(memory: list[tuple]) -> str:
    lines = ["| exports module | rows | CSV | peak traced (Python) | peak RSS above start |",
             "|---|---:|---:|---:|---:|"]
    for name, rows, written, traced, rss in memory:
        lines.append(f"| {name} | {rows:,} | {written / 2**20:,.1f} MiB | "
                     f"{traced / 2**20:,.1f} MiB | {rss / 2**20:,.1f} MiB |")
    return "\n".join(lines)


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
    parser.add_argument("--exports-from", metavar="COMMIT",
                        help="also measure the memory of this commit's CSV exports")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="keep each backend's loaded system in DIR/<backend>; reuse it "
                             "when it is there")
    parser.add_argument("--only", nargs="+", metavar="WORD",
                        help="time only the reads whose names contain one of these words "
                             "(e.g. calendar conflicts feed), without the export memory")
    args = parser.parse_args()
    modules = {"this tree": exports}
    if args.exports_from:
        modules[args.exports_from] = module_at(args.exports_from)
    for backend in args.backend:
        if backend == "postgresql" and find_bin_dir() is None:
            print("### postgresql\n\nSkipped: no PostgreSQL server binaries (initdb). Install "
                  "Debian's `postgresql` as `.ci/run` does, or pass `--backend sqlite`.\n")
            continue
        data, times, sizes, memory = run_backend(backend, scale=args.scale, seed=args.seed,
                                                 count=args.reads, modules=modules,
                                                 keep=args.keep, only=args.only)
        print(table(backend, data, times, sizes), end="\n\n")
        if memory:
            print(memory_table(memory), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
