"""The optimizer through the gateway, as the frontend, a finance system and a viewer call it."""
from decimal import Decimal

import httpx
import pytest

from tests.budget.test_optimize_api import EXAMPLE
from tests.e2e.conftest import ADMIN_KEY, api_key

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("system", ["sqlite"], indirect=True)   # the optimizer stores nothing
def test_optimize_through_the_gateway(system):
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{system['port']}", timeout=60)

    def key(role: str) -> dict:
        return api_key(system, role)

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    response = gateway.post("/api/v1/budget/optimize", json=EXAMPLE, headers=admin
                            | {"X-Request-ID": "plan-1"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "plan-1"
    plan = response.json()
    assert Decimal(plan["spend"]) + Decimal(plan["reserve"]) + Decimal(plan["unspent"]) == \
        Decimal(plan["total"])

    # finance may run what-ifs; a viewer may not
    assert gateway.post("/api/v1/budget/optimize", json=EXAMPLE, headers=key("finance")).json() == \
        plan | {"solver": plan["solver"] | {"seconds": pytest.approx(plan["solver"]["seconds"], abs=30)}}
    refused = gateway.post("/api/v1/budget/optimize", json=EXAMPLE, headers=key("viewer"))
    assert refused.status_code == 403

    # an impossible plan is a problem that says what to change
    impossible = EXAMPLE | {"channels": [
        {"id": "video", "min": "950000", "response": {"type": "linear", "roi": "1"}}], "groups": []}
    response = gateway.post("/api/v1/budget/optimize", json=impossible, headers=admin)
    assert response.status_code == 422
    assert response.json()["conflicts"][0]["change"] == "50000.00"

    # a year of weekly periods over 200 channels, seasonality weighted
    channels = [{"id": f"c{i}", "max": str(20000 + 500 * i),
                 "response": {"type": "hill", "beta": str(50000 + 1000 * i), "k": "8000", "alpha": "0.7"}}
                for i in range(200)]
    periods = [{"id": f"w{w:02d}", "weight": str(1 + (w % 13) / 10)} for w in range(52)]
    body = {"currency": "EUR", "total": "2500000", "reserve": {"percent": "5"},
            "channels": channels, "periods": periods}
    response = gateway.post("/api/v1/budget/optimize", json=body, headers=admin)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["status"] == "optimal" and plan["unspent"] == "0.00"
    assert sum(Decimal(a["amount"]) for a in plan["allocations"]) == Decimal("2375000.00")
    assert all(len(a["periods"]) == 52 for a in plan["allocations"])
