"""Through the gateway, the budget's polled reads keep their ETag and `private, no-cache`
(the gateway's `no-store` is only for answers that say nothing), and `If-None-Match` reaches
the budget: 304 while the answer is the same, the new answer once it changed."""
import httpx
import pytest

from tests.budget.conftest import BUDGET, CHANNELS
from tests.e2e.conftest import api_key

pytestmark = pytest.mark.e2e


def test_polled_reads_answer_304_through_the_gateway(system):
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{system['port']}/api/v1/budget",
                           timeout=60)
    planner, finance = api_key(system, "planner"), api_key(system, "finance")
    budget = gateway.post("/budgets", json=BUDGET, headers=planner).json()
    base = f"/budgets/{budget['id']}"
    channels = [gateway.post(f"{base}/channels", json=c, headers=planner).json()
                for c in CHANNELS]
    assert gateway.post(f"{base}/plans", json={}, headers=planner).status_code == 201
    assert gateway.post(f"{base}/plans/1/approve", headers=planner).status_code == 200
    reads = ("/variance", "/review", "/variance.csv", "/review.csv", "/reserve")
    held = {}
    for read in reads:
        first = gateway.get(base + read, headers=finance)
        assert first.status_code == 200, first.text
        assert first.headers["cache-control"] == "private, no-cache"
        again = gateway.get(base + read, headers=finance | {"If-None-Match": first.headers["etag"]})
        assert (again.status_code, again.content, again.headers["etag"],
                again.headers["cache-control"]) == (
            304, b"", first.headers["etag"], "private, no-cache"), read
        held[read] = first
    draw = {"amount": "100.00", "reason": "x", "channel_id": channels[0]["id"],
            "period": "2027-01"}
    assert gateway.post(f"{base}/reserve/draws", json=draw, headers=planner).status_code == 201
    for read in ("/variance", "/variance.csv", "/reserve"):
        polled = gateway.get(base + read,
                             headers=finance | {"If-None-Match": held[read].headers["etag"]})
        assert polled.status_code == 200 and polled.content != held[read].content, read
        assert polled.headers["etag"] != held[read].headers["etag"]
