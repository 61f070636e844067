"""Four eyes: above the budget's `four_eyes_above`, a reserve draw and a plan approval wait for a
second key holder; a pending draw holds its money, so even concurrent draws never promise more
than the reserve holds; the author cannot confirm; cancelling frees the money."""
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.budget.app import create_app
from services.budget.config import BudgetSettings
from tests.budget.conftest import CHANNELS, PREFIX
from tests.conftest import TEST_SECRET, ThreadedServer, signed_as

ANA, BEN, CARA = "key:ana", "key:ben", "key:cara"


def call(api, method: str, path: str, body=None, *, principal: str = ANA,
         role: str = "planner") -> httpx.Response:
    full = PREFIX + path
    return api.client.request(method, full, json=body, auth=signed_as(role, principal))


def test_a_draw_above_the_threshold_waits_for_another_key_holder(api):
    budget, channels = api.budget_with_channels(CHANNELS[:1], four_eyes_above="1000.00")
    assert budget["four_eyes_above"] == "1000.00"
    draws = f"/budgets/{budget['id']}/reserve/draws"
    search = channels["search"]["id"]
    small = call(api, "POST", draws, {"amount": "1000", "reason": "at the line",
                                      "channel_id": search, "period": "2027-02"})
    assert small.status_code == 201 and small.json()["kind"] == "draw"
    held = call(api, "POST", draws, {"amount": "2500.50", "reason": "competitor launch",
                                     "channel_id": search, "period": "2027-03"})
    assert held.status_code == 202, held.text
    pending = held.json()
    assert (pending["kind"], pending["status"], pending["amount"], pending["requested_by"]) == \
        ("draw", "pending", "2500.50", ANA)
    # Held: 100,000 − 1,000 drawn − 2,500.50 pending = 96,499.50 left.
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve")) == {
        "currency": "USD", "amount": "100000.00", "drawn": "1000.00", "pending": "2500.50",
        "remaining": "96499.50"}
    confirm = f"/budgets/{budget['id']}/pending/{pending['id']}/confirm"
    refused = call(api, "POST", confirm, principal=ANA)
    assert refused.status_code == 403 and "another key holder" in refused.json()["detail"]
    assert call(api, "POST", confirm, principal=BEN, role="viewer").status_code == 403
    confirmed = api.ok(call(api, "POST", confirm, principal=BEN))
    assert (confirmed["status"], confirmed["decided_by"]) == ("confirmed", BEN)
    entries = api.ok(api.get(f"/budgets/{budget['id']}/reserve/entries"))["items"]
    assert [(e["id"], e["amount"], e["author"], e["confirmed_by"]) for e in entries][-1] == \
        (confirmed["entry_id"], "2500.50", ANA, BEN)
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve"))["remaining"] == "96499.50"
    again = call(api, "POST", confirm, principal=CARA)
    assert again.status_code == 409 and again.json()["pending_status"] == "confirmed"


def test_a_cancelled_draw_frees_its_money(api):
    budget = api.budget(reserve={"amount": "1000.00"}, four_eyes_above="0",
                        campaign_ids=[api.campaign_id])
    draws = f"/budgets/{budget['id']}/reserve/draws"
    body = {"amount": "800", "reason": "print run", "campaign_id": api.campaign_id}
    pending = api.ok(call(api, "POST", draws, body), 202)
    refused = call(api, "POST", draws, body | {"amount": "200.01"})
    assert refused.status_code == 409 and refused.json()["remaining"] == "200.00"
    cancelled = api.ok(call(api, "POST", f"/budgets/{budget['id']}/pending/{pending['id']}/cancel",
                            principal=ANA))
    assert cancelled["status"] == "cancelled"
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve"))["remaining"] == "1000.00"
    listed = api.ok(api.get(f"/budgets/{budget['id']}/pending?status=cancelled"))["items"]
    assert [p["id"] for p in listed] == [pending["id"]]
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve/entries"))["items"] == []


def test_a_plan_above_the_threshold_is_approved_by_a_second_key_holder(api):
    budget, _ = api.budget_with_channels(CHANNELS[:2], four_eyes_above="500000")
    made = call(api, "POST", f"/budgets/{budget['id']}/plans", {}, principal=ANA)
    assert made.status_code == 201 and made.json()["spend"] == "900000.00"
    approve = f"/budgets/{budget['id']}/plans/1/approve"
    pending = api.ok(call(api, "POST", approve, principal=BEN), 202)
    # Asked again, the same request answers.
    assert api.ok(call(api, "POST", approve, principal=CARA), 202)["id"] == pending["id"]
    assert api.ok(api.get(f"/budgets/{budget['id']}"))["current_plan"] is None
    confirm = f"/budgets/{budget['id']}/pending/{pending['id']}/confirm"
    # Neither who asked (ben) nor who made the plan (ana) is a second key.
    assert call(api, "POST", confirm, principal=BEN).status_code == 403
    assert call(api, "POST", confirm, principal=ANA).status_code == 403
    confirmed = api.ok(call(api, "POST", confirm, principal=CARA))
    assert (confirmed["kind"], confirmed["plan_number"], confirmed["status"]) == \
        ("approval", 1, "confirmed")
    plan = api.ok(api.get(f"/budgets/{budget['id']}/plans/1"))
    assert (plan["status"], plan["current"], plan["approved_by"]) == ("approved", True, CARA)
    # Under the threshold, approval is immediate.
    version = api.ok(api.get(f"/budgets/{budget['id']}"))["version"]
    api.ok(api.patch(f"/budgets/{budget['id']}", {"four_eyes_above": "900000"},
                     headers={"If-Match": f'"{version}"'}))
    api.ok(call(api, "POST", f"/budgets/{budget['id']}/plans", {}), 201)
    assert api.ok(call(api, "POST", f"/budgets/{budget['id']}/plans/2/approve"))["current"] is True


@pytest.fixture
def server(api):
    """A real uvicorn server on the same database, so requests really run at the same time."""
    settings = BudgetSettings(database_url=api.database_url, internal_secret=TEST_SECRET,
                              solver_workers=1, events_poll_seconds=0)
    server = ThreadedServer(create_app(settings)).start()
    yield server
    server.stop()


def test_concurrent_pending_draws_never_hold_more_than_the_reserve(api, server):
    budget = api.budget(reserve={"amount": "1000.00"}, four_eyes_above="100",
                        campaign_ids=[api.campaign_id])
    path = f"{PREFIX}/budgets/{budget['id']}/reserve/draws"

    def draw(i: int) -> httpx.Response:
        body = {"amount": "150", "reason": f"draw {i}", "campaign_id": api.campaign_id}
        return httpx.post(server.url + path, json=body, auth=signed_as(),
                          headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=60)

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(r.status_code for r in pool.map(draw, range(20)))
    # 6 × 150 = 900 fit in 1,000; a seventh would hold 1,050.
    assert statuses == [202] * 6 + [409] * 14
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve")) == {
        "currency": "USD", "amount": "1000.00", "drawn": "0.00", "pending": "900.00",
        "remaining": "100.00"}
