"""Budgets and channels: create, validate, read with ETags, update under If-Match, list."""
import uuid

import pytest
from fastapi.testclient import TestClient

from services.budget.app import create_app
from services.budget.config import BudgetSettings
from shared.errors import PROBLEM_MEDIA_TYPE
from tests.budget.conftest import BUDGET, CHANNELS
from tests.conftest import TEST_SECRET, signed_as
from tests.postgres import free_port


def test_create_budget_holds_back_the_reserve_and_lists_its_periods(api):
    budget = api.budget(reserve={"percent": "12.5"}, total="1000000.01")
    assert (budget["total"], budget["reserve_amount"], budget["reserve_remaining"]) == \
        ("1000000.01", "125000.00", "125000.00")
    assert [p["id"] for p in budget["periods"]] == [f"2027-0{m}" for m in range(1, 7)]
    assert budget["version"] == 1 and budget["current_plan"] is None
    assert budget["rules"]["admit_ratio"] == "1.15" and budget["created_by"] == "key:test"


def test_weekly_and_quarterly_periods_are_clipped_to_the_fiscal_period(api):
    weekly = api.budget(start_date="2027-01-06", end_date="2027-01-20", period_length="week")
    assert [(p["id"], p["start_date"], p["end_date"]) for p in weekly["periods"]] == [
        ("2027-W01", "2027-01-06", "2027-01-10"), ("2027-W02", "2027-01-11", "2027-01-17"),
        ("2027-W03", "2027-01-18", "2027-01-20")]
    quarterly = api.budget(start_date="2027-02-15", end_date="2027-12-31", period_length="quarter")
    assert [p["id"] for p in quarterly["periods"]] == ["2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4"]


@pytest.mark.parametrize("change, field", [
    ({"end_date": "2026-12-31"}, "end_date"),
    ({"start_date": "2027-02-30"}, "start_date"),
    ({"total": "-1"}, "total"),
    ({"total": "10.001"}, "total"),
    ({"currency": "ABC"}, "currency"),
    ({"reserve": {"percent": "101"}}, "reserve.percent"),
    ({"reserve": {"amount": "2000000"}}, "reserve.amount"),
    ({"reserve": {"percent": "1", "amount": "1"}}, "reserve"),
    ({"groups": [{"id": "g", "min_share": "0.5", "max_share": "0.2"}]}, "groups[0].min_share"),
    ({"start_date": "2020-01-01", "period_length": "week"}, "period_length"),
    ({"rules": {"admit_ratio": "0"}}, "rules.admit_ratio"),
])
def test_create_budget_rejects_bad_input_naming_the_field(api, change, field):
    response = api.post("/budgets", BUDGET | change)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert field in problem["detail"]


def test_read_budget_answers_304_to_its_own_etag(api):
    budget = api.budget()
    first = api.get(f"/budgets/{budget['id']}")
    assert first.headers["etag"] == '"1"' and first.json() == budget
    again = api.get(f"/budgets/{budget['id']}", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_unknown_budget_is_a_404_problem(api):
    response = api.get("/budgets/bud_nope")
    assert response.status_code == 404 and "bud_nope" in response.json()["detail"]


def test_two_writers_with_the_same_version_one_gets_412(api):
    budget = api.budget()
    path = f"/budgets/{budget['id']}"
    first = api.patch(path, {"name": "first"}, headers={"If-Match": '"1"'})
    second = api.patch(path, {"total": "2000000"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    assert second.status_code == 412 and second.json()["current_version"] == 2
    stored = api.ok(api.get(path))
    assert (stored["name"], stored["total"], stored["version"]) == ("first", "1000000.00", 2)


def test_update_without_if_match_is_428(api):
    budget = api.budget()
    response = api.patch(f"/budgets/{budget['id']}", {"name": "x"})
    assert response.status_code == 428 and "If-Match" in response.json()["detail"]
    assert api.ok(api.get(f"/budgets/{budget['id']}"))["name"] == BUDGET["name"]


def test_update_checks_the_merged_budget(api):
    budget = api.budget()
    response = api.patch(f"/budgets/{budget['id']}", {"end_date": "2026-01-01"},
                         headers={"If-Match": '"1"'})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "end_date"
    response = api.patch(f"/budgets/{budget['id']}", {"currency": "EUR"}, headers={"If-Match": '"1"'})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "currency"


def test_idempotent_create_replays_and_creates_nothing_new(api):
    department = f"dept-{uuid.uuid4().hex[:8]}"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/budgets", BUDGET | {"department": department}, headers=key)
    again = api.post("/budgets", BUDGET | {"department": department}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    listed = api.ok(api.get("/budgets", params={"department": department}))
    assert [b["id"] for b in listed["items"]] == [first.json()["id"]]
    different = api.post("/budgets", BUDGET | {"department": department, "name": "other"}, headers=key)
    assert different.status_code == 422 and "Idempotency-Key" in different.json()["detail"]


def test_list_budgets_filters_and_pages(api):
    department = f"dept-{uuid.uuid4().hex[:8]}"
    made = [api.budget(department=department, start_date=start, end_date=end, currency=currency)
            for start, end, currency in [("2027-01-01", "2027-03-31", "USD"),
                                         ("2027-04-01", "2027-06-30", "USD"),
                                         ("2027-01-01", "2027-12-31", "EUR"),
                                         ("2028-01-01", "2028-03-31", "USD")]]
    pages, cursor = [], None
    while True:
        page = api.ok(api.get("/budgets", params={"department": department, "limit": 3}
                              | ({"cursor": cursor} if cursor else {})))
        pages.append([b["id"] for b in page["items"]])
        if not (cursor := page["next_cursor"]):
            break
    assert pages == [[b["id"] for b in made[:3]], [made[3]["id"]]]
    overlap = api.ok(api.get("/budgets", params={"department": department, "currency": "USD",
                                                 "active_from": "2027-03-15", "active_to": "2027-04-15"}))
    assert [b["id"] for b in overlap["items"]] == [made[0]["id"], made[1]["id"]]
    bad = api.get("/budgets", params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


def test_channels_are_created_validated_and_listed(api):
    budget, channels = api.budget_with_channels(groups=[{"id": "brand", "min_share": "0.2"}])
    listed = api.ok(api.get(f"/budgets/{budget['id']}/channels"))
    assert [c["name"] for c in listed] == [c["name"] for c in CHANNELS]
    assert channels["search"]["max"] == "400000.00" and channels["search"]["state"] == "active"
    path = f"/budgets/{budget['id']}/channels"
    duplicate = api.post(path, CHANNELS[0])
    assert duplicate.status_code == 409 and "search" in duplicate.json()["detail"]
    for change, field in [({"min": "5", "max": "1"}, "min"), ({"group": "nope"}, "group"),
                          ({"min": "-1"}, "min"), ({"min": "1.234"}, "min"),
                          ({"kind": "radio"}, "kind"),
                          ({"response": {"type": "deal", "cost": "10", "return": "20"}, "min": "1"},
                           "response")]:
        response = api.post(path, CHANNELS[0] | {"name": "new"} | change)
        assert response.status_code == 422, (change, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], (change, response.json())
    deal = api.ok(api.post(path, {"name": "kol-a", "kind": "kol", "group": "brand",
                                  "response": {"type": "deal", "cost": "80000", "return": "240000"}}), 201)
    assert deal["response"] == {"type": "deal", "cost": "80000", "return": "240000"}


@pytest.mark.parametrize("start, moves", [
    ("testing", [("scaling", 409), ("active", 200), ("testing", 409), ("scaling", 200),
                 ("active", 200), ("exited", 200), ("active", 409), ("testing", 200),
                 ("exited", 200)]),
])
def test_channel_lifecycle_follows_the_playbook(api, start, moves):
    budget = api.budget()
    channel = api.ok(api.post(f"/budgets/{budget['id']}/channels", CHANNELS[0] | {"state": start}), 201)
    path = f"/budgets/{budget['id']}/channels/{channel['id']}"
    etag = api.get(path).headers["etag"]
    for state, status in moves:
        response = api.patch(path, {"state": state}, headers={"If-Match": etag})
        assert response.status_code == status, (state, response.text)
        if status == 409:
            assert response.json()["allowed"] and state in response.json()["detail"]
        else:
            etag = response.headers["etag"]
            assert response.json()["state"] == state
    stale = api.patch(path, {"name": "renamed"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412


def test_a_finance_or_viewer_key_cannot_change_budgets(api):
    assert api.post("/budgets", BUDGET, role="finance").status_code == 403
    assert api.post("/budgets", BUDGET, role="viewer").status_code == 403
    budget = api.budget()
    assert api.get(f"/budgets/{budget['id']}", role="viewer").status_code == 200


def test_linked_campaigns_must_exist_in_the_calendar(api):
    budget = api.budget(campaign_ids=[api.campaign_id])
    assert budget["campaign_ids"] == [api.campaign_id]
    response = api.post("/budgets", BUDGET | {"campaign_ids": [api.campaign_id, "cmp_missing"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "campaign_ids[1]"
    update = api.patch(f"/budgets/{budget['id']}", {"campaign_ids": ["cmp_missing"]},
                       headers={"If-Match": '"1"'})
    assert update.status_code == 422
    assert api.ok(api.get(f"/budgets/{budget['id']}"))["campaign_ids"] == [api.campaign_id]


def test_an_unreachable_calendar_is_a_503_and_nothing_is_stored(api):
    settings = BudgetSettings(database_url=api.database_url, internal_secret=TEST_SECRET,
                              solver_workers=1, calendar_url=f"http://127.0.0.1:{free_port()}")
    department = f"dept-{uuid.uuid4().hex[:8]}"
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/budget/budgets", json=BUDGET | {
            "department": department, "campaign_ids": [api.campaign_id]},
            auth=signed_as())
    assert response.status_code == 503 and "calendar" in response.json()["detail"]
    assert api.ok(api.get("/budgets", params={"department": department}))["items"] == []
