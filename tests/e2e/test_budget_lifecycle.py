"""A budget's life through the gateway, as planners, finance and a viewer live it."""
import csv
import io
import uuid
from decimal import Decimal

import httpx
import pytest

from tests.budget.conftest import BUDGET, CHANNELS
from tests.e2e.conftest import ADMIN_KEY, api_key

pytestmark = pytest.mark.e2e


def test_budget_lifecycle_through_the_gateway(system):
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{system['port']}/api/v1/budget", timeout=60)
    planner, finance, viewer = (api_key(system, role) for role in ("planner", "finance", "viewer"))
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    # roles: finance and viewers cannot create budgets
    assert gateway.post("/budgets", json=BUDGET, headers=finance).status_code == 403
    assert gateway.post("/budgets", json=BUDGET, headers=viewer).status_code == 403
    response = gateway.post("/budgets", json=BUDGET, headers=planner)
    assert response.status_code == 201, response.text
    budget = response.json()
    base = f"/budgets/{budget['id']}"
    channels = {c["name"]: gateway.post(f"{base}/channels", json=c, headers=planner).json()
                for c in CHANNELS}
    assert all(c["id"].startswith("ch_") for c in channels.values())

    # optimize, then approve the plan
    response = gateway.post(f"{base}/plans", json={}, headers=planner)
    assert response.status_code == 201, response.text
    plan = response.json()
    assert plan["spend"] == "900000.00"
    assert gateway.post(f"{base}/plans/1/approve", headers=finance).status_code == 403
    assert gateway.post(f"{base}/plans/1/approve", headers=planner).json()["current"] is True

    # draw from the reserve: finance may not
    draw = {"amount": "25000.00", "reason": "competitor push", "channel_id": channels["social"]["id"],
            "period": "2027-02"}
    assert gateway.post(f"{base}/reserve/draws", json=draw, headers=finance).status_code == 403
    response = gateway.post(f"{base}/reserve/draws", json=draw, headers=planner)
    assert response.status_code == 201, response.text
    assert gateway.get(f"{base}/reserve", headers=viewer).json()["remaining"] == "75000.00"

    # finance posts actuals twice with the same key: the second changes nothing
    rows = [{"channel_id": channels[name]["id"], "period": period, "spend": spend, "return": earned}
            for name, period, spend, earned in [
                ("search", "2027-01", "70000.00", "150000.00"), ("social", "2027-01", "40000", "61000"),
                ("video", "2027-01", "9000", "4000"), ("social", "2027-02", "60000.10", "80000")]]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = gateway.post(f"{base}/actuals", json={"rows": rows}, headers=finance | key)
    second = gateway.post(f"{base}/actuals", json={"rows": rows}, headers=finance | key)
    assert first.status_code == second.status_code == 200, first.text
    assert second.json() == first.json() == {"created": 4, "updated": 0, "unchanged": 0}
    assert gateway.post(f"{base}/actuals", json={"rows": rows}, headers=viewer).status_code == 403

    variance = gateway.get(f"{base}/variance", headers=finance).json()
    total = next(b for b in variance["burn"] if b["channel_id"] is None)
    assert total["spend_to_date"] == "179000.10"
    assert total["planned_total"] == "925000.00"          # the plan plus the draw
    review = gateway.get(f"{base}/review", headers=viewer).json()
    assert {c["channel"] for c in review["channels"]} == set(channels)

    # CSV exports add up to what the API says
    plan_csv = gateway.get(f"{base}/plans/1.csv", headers=finance)
    assert plan_csv.status_code == 200, plan_csv.text
    plan_rows = csv.DictReader(io.StringIO(plan_csv.text))
    assert sum(Decimal(r["amount"]) for r in plan_rows) == Decimal("900000.00")
    actuals_csv = gateway.get(f"{base}/actuals.csv", headers=finance)
    assert sum(Decimal(r["spend"]) for r in csv.DictReader(io.StringIO(actuals_csv.text))) == \
        Decimal(total["spend_to_date"])

    # stale writes are refused; the audit log tells the story
    assert gateway.patch(base, json={"name": "x"}, headers=admin | {"If-Match": '"1"'}).status_code == 412
    log = gateway.get(f"{base}/audit", headers=finance).json()["items"]
    assert [e["action"] for e in log][-4:] == ["plan.create", "plan.approve", "reserve.draw",
                                               "actuals.import"]
    assert gateway.get("/budgets", params={"department": "growth", "currency": "USD"},
                       headers=finance).status_code == 200
