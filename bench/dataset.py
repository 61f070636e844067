"""A department-year of data, loaded into a running system through the public API.

At `--scale 1` (the default):
- calendar: 500 template campaigns over 2027 (phases, milestones, contingency windows and
  reviews from the templates), through the bulk endpoint. Launches spread over the year with
  peaks before Valentine's day, Mother's day, back to school and Black Friday/Christmas; a few
  big `brand` campaigns on many channels, more `standard` ones, many small `flash_sale` ones;
- budget: 20 weekly budgets of 50 channels each with an approved plan; every campaign funded
  by one budget on up to three of its channels; 10 reserve draws per budget; 52 weeks of
  actuals on all 50 channels of 4 budgets (200 channels × 52 weeks);
- planner: 30 resources (skills in proportion to what the templates ask for), each campaign's
  generated tasks topped up with small analysis tasks to 3,000, and one stored schedule of it all.

Every choice comes from `--seed`, so the same seed gives the same department (ids are the
services' own). `--scale 0.1` makes a tenth of it, for a quick try.

    .venv/bin/marketplan up &      # or any running system; prints the admin key
    .venv/bin/python bench/dataset.py --url http://127.0.0.1:8000 --key KEY [--scale 1] [--seed 1]
"""
import argparse
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import httpx

YEAR = 2027
KINDS = ["search", "social", "video", "kol", "email", "display", "affiliate", "offline"]
# (first day, last day, weight): launches cluster in the weeks before the department's big dates;
# the rest fall anywhere between February and early December.
LAUNCH_SEASONS = [
    (date(YEAR, 1, 18), date(YEAR, 2, 10), 0.10),    # Valentine's day
    (date(YEAR, 4, 19), date(YEAR, 5, 7), 0.08),     # Mother's day
    (date(YEAR, 7, 26), date(YEAR, 8, 20), 0.10),    # back to school
    (date(YEAR, 10, 25), date(YEAR, 11, 24), 0.17),  # Black Friday and Christmas
    (date(YEAR, 2, 1), date(YEAR, 12, 3), 0.55),     # everything else
]
# (template, share, channels per campaign, priority): a few big ones, many small ones.
SIZES = [("brand", 0.05, (5, 7), 5), ("standard", 0.30, (2, 4), 3),
         ("flash_sale", 0.65, (1, 2), 1)]
# Thirty people, skills roughly in proportion to the hours the task templates ask for.
TEAM = ([(["design"], "8")] * 10 + [(["design", "copy"], "8")] * 2 + [(["copy"], "8")] * 2
        + [(["strategy"], "8")] * 3 + [(["media"], "8")] * 5 + [(["tech"], "8")] * 5
        + [(["analysis"], "8")] * 2 + [(["analysis", "strategy"], "6")])
BATCH = 100          # campaigns per bulk call (the API takes up to 500)
ACTUALS_BATCH = 5000  # actual rows per import (the API takes up to 10,000)


@dataclass(frozen=True)
class Size:
    campaigns: int = 500
    tasks: int = 3000
    resources: int = 30
    budgets: int = 20
    channels: int = 50
    reported_budgets: int = 4     # with 52 weeks of actuals on all their channels
    draws: int = 10               # reserve draws per budget

    @classmethod
    def scaled(cls, scale: float) -> "Size":
        full = cls()
        return cls(campaigns=max(5, round(full.campaigns * scale)),
                   tasks=max(50, round(full.tasks * scale)),
                   # Ten people still cover every skill (see `load_work`).
                   resources=max(10, round(full.resources * scale)),
                   budgets=max(1, round(full.budgets * scale)),
                   channels=max(10, round(full.channels * scale)),
                   reported_budgets=max(1, round(full.reported_budgets * scale)),
                   draws=full.draws)


@dataclass
class Dataset:
    """The ids the read benchmark needs, as the services made them."""
    campaigns: list[dict] = field(default_factory=list)
    budgets: list[dict] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)     # budget ids with actuals
    schedule_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def call(client: httpx.Client, method: str, path: str, body=None, status: int = 200,
         headers: dict | None = None):
    response = client.request(method, path, json=body, headers=headers)
    if response.status_code != status:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return response.json() if response.content else None


def launch_date(rng: random.Random) -> date:
    first, last, _ = rng.choices(LAUNCH_SEASONS, weights=[w for *_, w in LAUNCH_SEASONS])[0]
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def campaign_body(i: int, rng: random.Random) -> dict:
    template, _, (fewest, most), priority = rng.choices(SIZES, weights=[s[1] for s in SIZES])[0]
    channels = rng.sample(KINDS, rng.randint(fewest, most))
    market, zone = rng.choice([("US", "America/New_York"), ("US", "America/Los_Angeles"),
                               ("GB", "Europe/London"), ("DE", "Europe/Berlin"),
                               ("FR", "Europe/Paris")])
    target = rng.choice([50_000, 100_000, 250_000]) * (10 if template == "brand" else 1)
    return {"name": f"{template.replace('_', ' ').title()} {i:03d}",
            "owner": f"owner-{rng.randrange(12):02d}", "channels": channels, "market": market,
            "time_zone": zone, "priority": priority, "template": template,
            "launch_date": launch_date(rng).isoformat(), "adjust": "next_working_day",
            "objective": {"kpi": "revenue", "target": str(target), "unit": "EUR",
                          "deadline": f"{YEAR}-12-31"}}


def load_calendar(client: httpx.Client, size: Size, rng: random.Random, data: Dataset) -> None:
    bodies = [campaign_body(i, rng) for i in range(size.campaigns)]
    for first in range(0, len(bodies), BATCH):
        key = str(uuid.UUID(int=rng.getrandbits(128)))
        data.campaigns += call(client, "POST", "/calendar/campaigns/bulk",
                               {"campaigns": bodies[first:first + BATCH]}, 201,
                               headers={"Idempotency-Key": key})["created"]
    data.counts["campaigns"] = len(data.campaigns)
    data.counts["milestones"] = sum(len(c["milestones"]) for c in data.campaigns)
    data.counts["phases"] = sum(len(c["phases"]) for c in data.campaigns)


def channel_body(i: int, rng: random.Random) -> dict:
    """A concave response curve (points), worth between 1.2 and 3 times its spend at first."""
    knee = rng.choice([200_000, 500_000, 1_000_000])
    first = Decimal(knee) * Decimal(rng.randint(120, 300)) / 100
    return {"name": f"channel-{i:02d}", "kind": KINDS[i % len(KINDS)], "max": str(4 * knee),
            "response": {"type": "points", "points": [
                ["0", "0"], [str(knee), str(first)],
                [str(4 * knee), str(first * Decimal(rng.randint(180, 260)) / 100)]]}}


def load_budgets(client: httpx.Client, size: Size, rng: random.Random, data: Dataset) -> None:
    for b in range(size.budgets):
        budget = call(client, "POST", "/budget/budgets", {
            "name": f"Budget {b:02d}", "department": f"dept-{b % 5}", "currency": "EUR",
            "start_date": f"{YEAR}-01-01", "end_date": f"{YEAR}-12-31", "period_length": "week",
            "total": f"{size.channels * rng.randint(400_000, 900_000)}.00",
            "reserve": {"percent": "10"}}, 201)
        path = f"/budget/budgets/{budget['id']}"
        budget["channels"] = [call(client, "POST", f"{path}/channels", channel_body(i, rng), 201)
                              for i in range(size.channels)]
        plan = call(client, "POST", f"{path}/plans", {}, 201)
        call(client, "POST", f"{path}/plans/1/approve")
        budget["plan_lines"] = [p | {"channel_id": c["channel_id"]}
                                for c in plan["channels"] for p in c["periods"]]
        # What each channel can still give campaigns (funding stays within the plan).
        budget["free"] = {c["channel_id"]: Decimal(c["amount"]) for c in plan["channels"]}
        data.budgets.append(budget)
    data.counts["budgets"] = len(data.budgets)
    data.counts["channels"] = sum(len(b["channels"]) for b in data.budgets)


def load_money(client: httpx.Client, size: Size, rng: random.Random, data: Dataset) -> None:
    """Fund each campaign from one budget, draw from the reserves, report actuals."""
    for i, campaign in enumerate(data.campaigns):
        budget = data.budgets[i % len(data.budgets)]
        amounts = {c["id"]: Decimal(rng.randint(20, 400) * 100) for c in budget["channels"]
                   if c["kind"] in campaign["channels"]}
        fits = sorted(c for c, amount in amounts.items() if budget["free"][c] >= amount)
        lines = [{"channel_id": c, "amount": f"{amounts[c]}.00"}
                 for c in rng.sample(fits, min(3, len(fits)))]
        for line in lines:
            budget["free"][line["channel_id"]] -= amounts[line["channel_id"]]
        call(client, "PUT", f"/budget/budgets/{budget['id']}/campaigns/{campaign['id']}",
             {"lines": lines}, 201)
    weeks = sorted({line["period"] for line in data.budgets[0]["plan_lines"]})
    for budget in data.budgets:
        path = f"/budget/budgets/{budget['id']}"
        for d in range(size.draws):
            channel = rng.choice(budget["channels"])
            call(client, "POST", f"{path}/reserve/draws", {
                "amount": f"{rng.randint(5, 50) * 100}.00", "channel_id": channel["id"],
                "period": rng.choice(weeks), "reason": f"Draw {d}: competitor push on "
                f"{channel['kind']}"}, 201, headers={"Idempotency-Key": str(uuid.UUID(
                    int=rng.getrandbits(128)))})
    for budget in data.budgets[:size.reported_budgets]:
        path = f"/budget/budgets/{budget['id']}"
        rows = []
        for line in budget["plan_lines"]:
            if line["period"] not in weeks[-52:]:
                continue
            # Spend around plan (±25 %), return around the plan's expectation (±40 %).
            spend = Decimal(line["amount"]) * Decimal(rng.randint(75, 125)) / 100
            earned = Decimal(line["expected_return"]) * Decimal(rng.randint(60, 140)) / 100
            rows.append({"channel_id": line["channel_id"], "period": line["period"],
                         "spend": str(spend.quantize(Decimal("0.01"))),
                         "return": str(earned.quantize(Decimal("0.01")))})
        for first in range(0, len(rows), ACTUALS_BATCH):
            call(client, "POST", f"{path}/actuals", {"rows": rows[first:first + ACTUALS_BATCH]})
        data.reported.append(budget["id"])
        data.counts["actuals"] = data.counts.get("actuals", 0) + len(rows)


def load_work(client: httpx.Client, size: Size, rng: random.Random, data: Dataset) -> None:
    for r in range(size.resources):
        skills, hours = TEAM[r * len(TEAM) // size.resources]
        call(client, "POST", "/planner/resources", {
            "name": f"{'-'.join(skills)} {r:02d}", "skills": skills, "hours_per_day": hours,
            "market": "US"}, 201)
    made = 0
    for campaign in data.campaigns:
        if made >= size.tasks:
            break
        made += len(call(client, "POST", f"/planner/campaigns/{campaign['id']}/tasks"))
    for i in range(size.tasks - made):
        campaign = rng.choice(data.campaigns)
        call(client, "POST", "/planner/tasks", {
            "id": f"analysis-{i:04d}", "name": f"Weekly numbers {i}",
            "campaign_id": campaign["id"], "skill": "analysis",
            "effort_hours": str(rng.choice([1, 2, 4])), "priority": campaign["priority"],
            "earliest_start": campaign["start_date"], "deadline": campaign["end_date"]}, 201)
    data.counts["tasks"] = max(made, size.tasks)
    data.counts["resources"] = size.resources
    schedule = call(client, "POST", "/planner/schedules", {
        "start": f"{YEAR - 1}-12-01", "horizon_days": 440, "time_limit_seconds": 30}, 201)
    data.schedule_id = schedule["id"]


def generate(client: httpx.Client, *, scale: float = 1.0, seed: int = 1,
             log=lambda message: None) -> Dataset:
    """Load a department-year (times `scale`) into the system `client` talks to."""
    size = Size.scaled(scale)
    data = Dataset()
    # One stream per service, so changing one part's shape leaves the others' draws alone.
    for name, step in (("calendar", load_calendar), ("budgets", load_budgets),
                       ("money", load_money), ("work", load_work)):
        began = time.perf_counter()
        step(client, size, random.Random(f"{seed}-{name}"), data)
        data.seconds[name] = time.perf_counter() - began
        log(f"{name}: {data.seconds[name]:.1f} s")
    return data


def api_client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url.rstrip("/") + "/api/v1", timeout=300,
                        headers={"Authorization": f"Bearer {key}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway")
    parser.add_argument("--key", required=True, help="an admin API key")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with api_client(args.url, args.key) as client:
        data = generate(client, scale=args.scale, seed=args.seed,
                        log=lambda message: print(message, file=sys.stderr))
    print(", ".join(f"{count} {name}" for name, count in data.counts.items()))
    print(f"loaded in {sum(data.seconds.values()):.0f} s")


if __name__ == "__main__":
    main()
