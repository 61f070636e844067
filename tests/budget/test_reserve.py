"""The emergency reserve: draws, the 409 when it runs short, reversals, and 50 writers at once."""
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from services.budget.app import create_app
from services.budget.config import BudgetSettings
from tests.budget.conftest import CHANNELS, PREFIX
from tests.conftest import TEST_SECRET, ThreadedServer, signed_as


def test_a_draw_grows_the_current_plans_channel_and_shrinks_the_reserve(api):
    budget, channels = api.budget_with_channels()
    plan = api.approved_plan(budget["id"])
    search = channels["search"]
    entry = api.ok(api.post(f"/budgets/{budget['id']}/reserve/draws",
                            {"amount": "2500.50", "reason": "competitor launch",
                             "channel_id": search["id"], "period": "2027-03"}), 201)
    assert (entry["kind"], entry["amount"], entry["plan_number"], entry["author"]) == \
        ("draw", "2500.50", 1, "key:test")
    reserve = api.ok(api.get(f"/budgets/{budget['id']}/reserve"))
    assert reserve == {"currency": "USD", "amount": "100000.00", "drawn": "2500.50",
                       "pending": "0.00", "remaining": "97499.50"}
    after = api.ok(api.get(f"/budgets/{budget['id']}/plans/1"))
    row = next(c for c in after["channels"] if c["channel_id"] == search["id"])
    before = next(c for c in plan["channels"] if c["channel_id"] == search["id"])
    assert (row["amount"], row["drawn"]) == (before["amount"], "2500.50")
    assert Decimal(row["current_amount"]) == Decimal(before["amount"]) + Decimal("2500.50")
    march = next(p for p in row["periods"] if p["period"] == "2027-03")
    assert march["drawn"] == "2500.50"


def test_a_draw_beyond_the_reserve_is_a_409_saying_what_is_left(api):
    budget = api.budget(reserve={"amount": "1000.00"}, campaign_ids=[api.campaign_id])
    path = f"/budgets/{budget['id']}/reserve/draws"
    api.ok(api.post(path, {"amount": "999.99", "reason": "a", "campaign_id": api.campaign_id}), 201)
    response = api.post(path, {"amount": "0.02", "reason": "b", "campaign_id": api.campaign_id})
    assert response.status_code == 409
    assert response.json()["remaining"] == "0.01" and "0.01" in response.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"amount": "0", "reason": "x", "campaign_id": "c"}, "amount"),
    ({"amount": "1.001", "reason": "x", "campaign_id": "c"}, "amount"),
    ({"amount": "1", "reason": "", "campaign_id": "c"}, "reason"),
    ({"amount": "1", "reason": "x"}, ""),
    ({"amount": "1", "reason": "x", "campaign_id": "c", "period": "2030-01"}, "period"),
    ({"amount": "1", "reason": "x", "campaign_id": "unlinked"}, "campaign_id"),
])
def test_bad_draws_are_422_naming_the_field(api, body, field):
    budget = api.budget(campaign_ids=[api.campaign_id])
    body = {k: api.campaign_id if v == "c" else v for k, v in body.items()}
    response = api.post(f"/budgets/{budget['id']}/reserve/draws", body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve"))["drawn"] == "0.00"


def test_a_draw_is_reversed_once_by_a_compensating_entry(api):
    budget, channels = api.budget_with_channels(CHANNELS[:1])
    draws = f"/budgets/{budget['id']}/reserve/draws"
    draw = api.ok(api.post(draws, {"amount": "300", "reason": "x",
                                   "channel_id": channels["search"]["id"]}), 201)
    reversal = api.ok(api.post(f"{draws}/{draw['id']}/reversal", {"reason": "not needed"}), 201)
    assert (reversal["kind"], reversal["amount"], reversal["reverses_id"]) == \
        ("reversal", "-300.00", draw["id"])
    again = api.post(f"{draws}/{draw['id']}/reversal", {"reason": "twice"})
    assert again.status_code == 409 and again.json()["reversal_id"] == reversal["id"]
    assert api.post(f"{draws}/{reversal['id']}/reversal", {"reason": "x"}).status_code == 404
    entries = api.ok(api.get(f"/budgets/{budget['id']}/reserve/entries"))["items"]
    assert [(e["kind"], e["amount"]) for e in entries] == [("draw", "300.00"), ("reversal", "-300.00")]
    assert api.ok(api.get(f"/budgets/{budget['id']}/reserve"))["remaining"] == "100000.00"


def test_the_ledger_and_the_audit_log_refuse_updates_and_deletes_in_the_database(api):
    budget = api.budget(campaign_ids=[api.campaign_id])
    api.ok(api.post(f"/budgets/{budget['id']}/reserve/draws",
                    {"amount": "1", "reason": "x", "campaign_id": api.campaign_id}), 201)
    engine = create_engine(api.database_url)
    try:
        for statement in ("UPDATE reserve_entry SET amount_minor = 0", "DELETE FROM reserve_entry",
                          "UPDATE audit_entry SET action = 'x'", "DELETE FROM audit_entry"):
            with engine.begin() as connection, pytest.raises(DBAPIError, match="append-only"):
                connection.execute(text(statement))
    finally:
        engine.dispose()


def test_finance_and_viewers_cannot_draw(api):
    budget = api.budget(campaign_ids=[api.campaign_id])
    body = {"amount": "1", "reason": "x", "campaign_id": api.campaign_id}
    assert api.post(f"/budgets/{budget['id']}/reserve/draws", body, role="finance").status_code == 403
    assert api.post(f"/budgets/{budget['id']}/reserve/draws", body, role="viewer").status_code == 403


@pytest.fixture
def server(api):
    """A real uvicorn server on the same database, so requests really run at the same time."""
    settings = BudgetSettings(database_url=api.database_url, internal_secret=TEST_SECRET,
                              solver_workers=1, events_poll_seconds=0)
    server = ThreadedServer(create_app(settings)).start()
    yield server
    server.stop()


def test_fifty_concurrent_draws_never_overdraw_the_reserve(api, server):
    budget, channels = api.budget_with_channels(CHANNELS[:2], reserve={"amount": "10000.00"})
    api.approved_plan(budget["id"])
    rng = random.Random(7)
    amounts = [Decimal(rng.randint(10_000, 60_000)) / 100 for _ in range(50)]  # 100.00-600.00
    path = f"{PREFIX}/budgets/{budget['id']}/reserve/draws"
    names = list(channels)

    def draw(i: int) -> httpx.Response:
        body = {"amount": str(amounts[i]), "reason": f"draw {i}",
                "channel_id": channels[names[i % 2]]["id"]}
        return httpx.post(server.url + path, json=body, auth=signed_as(),
                          headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=60)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(draw, range(50)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code not in (201, 409)]
    accepted = [amounts[i] for i, r in enumerate(responses) if r.status_code == 201]
    assert sum(amounts) > Decimal("10000") and 0 < len(accepted) < 50   # some had to be refused
    reserve = api.ok(api.get(f"/budgets/{budget['id']}/reserve"))
    assert Decimal(reserve["drawn"]) == sum(accepted)
    assert Decimal(reserve["remaining"]) == Decimal("10000.00") - sum(accepted) >= 0
    for i, response in enumerate(responses):
        if response.status_code == 409:   # refused only because too little was left for it
            assert Decimal(response.json()["remaining"]) < amounts[i]
    plan = api.ok(api.get(f"/budgets/{budget['id']}/plans/1"))
    assert sum(Decimal(c["drawn"]) for c in plan["channels"]) == sum(accepted)
    assert api.ok(api.get(f"/budgets/{budget['id']}"))["version"] == 2 + len(accepted)
