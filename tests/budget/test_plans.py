"""Plans: optimize a budget's channels, store numbered immutable versions, approve one."""
from decimal import Decimal

from tests.budget.conftest import CHANNELS, read_csv


def amounts(plan: dict) -> dict[str, Decimal]:
    return {c["channel"]: Decimal(c["amount"]) for c in plan["channels"]}


def test_plan_allocates_the_money_left_after_the_reserve_phased_by_days(api):
    budget, _ = api.budget_with_channels()
    plan = api.ok(api.post(f"/budgets/{budget['id']}/plans", {}), 201)
    assert (plan["number"], plan["status"], plan["current"]) == (1, "draft", False)
    assert plan["optimizer"]["status"] == "optimal"
    assert (plan["reserve"], plan["spend"]) == ("100000.00", "900000.00")
    assert sum(amounts(plan).values()) == Decimal(plan["spend"])
    assert amounts(plan)["search"] == Decimal("400000.00")   # its max: the best linear ROI
    for channel in plan["channels"]:
        assert [p["period"] for p in channel["periods"]] == [p["id"] for p in budget["periods"]]
        assert sum(Decimal(p["amount"]) for p in channel["periods"]) == Decimal(channel["amount"])
    search = next(c for c in plan["channels"] if c["channel"] == "search")
    # January has 31 days of 181 in the half year, February 28.
    assert [p["amount"] for p in search["periods"]][:2] == ["68508.29", "61878.45"]
    assert plan["request"]["reserve"] == {"percent": None, "amount": "100000.00"}


def test_plans_are_numbered_and_stay_readable_after_another_is_approved(api):
    budget, _ = api.budget_with_channels()
    path = f"/budgets/{budget['id']}/plans"
    first = api.ok(api.post(path, {}), 201)
    second = api.ok(api.post(path, {"phasing": {"2027-01": "1"}}), 201)
    assert second["number"] == 2
    assert all(Decimal(p["amount"]) == 0 for c in second["channels"] for p in c["periods"][1:])
    approved = api.ok(api.post(f"{path}/2/approve"))
    assert (approved["status"], approved["current"]) == ("approved", True)
    assert api.ok(api.get(f"/budgets/{budget['id']}"))["current_plan"] == 2
    again = api.ok(api.get(f"{path}/1"))
    assert again["channels"] == first["channels"] and again["current"] is False
    listed = api.ok(api.get(path))
    assert [(p["number"], p["current"]) for p in listed["items"]] == [(1, False), (2, True)]
    etag = api.get(f"{path}/1").headers["etag"]
    assert api.get(f"{path}/1", headers={"If-None-Match": etag}).status_code == 304
    assert api.get(f"{path}/9").status_code == 404


def test_incremental_plan_keeps_each_channel_near_the_current_plan(api):
    budget, _ = api.budget_with_channels()
    path = f"/budgets/{budget['id']}/plans"
    missing = api.post(path, {"method": "incremental", "tolerance_percent": "10"})
    assert missing.status_code == 422 and "approve" in missing.json()["detail"]
    current = amounts(api.approved_plan(budget["id"], phasing={"2027-01": "1"}))
    plan = api.ok(api.post(path, {"method": "incremental", "tolerance_percent": "10",
                                  "objective": "max_profit"}), 201)
    for name, amount in amounts(plan).items():
        assert current[name] * Decimal("0.9") - Decimal("0.01") <= amount \
            <= current[name] * Decimal("1.1") + Decimal("0.01"), name
    assert plan["request"]["incremental"]["previous"] == {k: format(v, "f") for k, v in current.items()}


def test_exited_channels_get_nothing_and_an_infeasible_plan_is_a_422(api):
    budget, channels = api.budget_with_channels()
    video = channels["video"]
    api.ok(api.patch(f"/budgets/{budget['id']}/channels/{video['id']}", {"state": "exited"},
                     headers={"If-Match": '"1"'}))
    plan = api.ok(api.post(f"/budgets/{budget['id']}/plans", {}), 201)
    assert "video" not in amounts(plan)
    search = channels["search"]
    api.ok(api.patch(f"/budgets/{budget['id']}/channels/{search['id']}", {"min": "950000", "max": None},
                     headers={"If-Match": '"1"'}))
    response = api.post(f"/budgets/{budget['id']}/plans", {})
    assert response.status_code == 422
    assert response.json()["type"].endswith("infeasible-plan") and "search" in response.json()["detail"]


def test_plan_request_errors_name_the_field(api):
    budget, _ = api.budget_with_channels()
    path = f"/budgets/{budget['id']}/plans"
    assert api.post(path, {"phasing": {"2031-01": "1"}}).json()["errors"][0]["field"] == "phasing.2031-01"
    assert api.post(path, {"method": "sideways"}).json()["errors"][0]["field"] == "method"
    # Weights that are all 0 (given or left out) spread nothing, as /optimize refuses them.
    for phasing in ({"2027-01": "0", "2027-02": "0"}, {"2027-03": "0"}):
        response = api.post(path, {"phasing": phasing})
        assert response.status_code == 422
        error, = response.json()["errors"]
        assert error["field"] == "phasing" and "weight 0" in error["detail"]
    assert api.post(path, {"phasing": {"2027-03": "0", "2027-04": "2"}}).status_code == 201
    empty = api.budget()
    response = api.post(f"/budgets/{empty['id']}/plans", {})
    assert response.status_code == 409 and "channel" in response.json()["detail"]


def test_plan_csv_sums_equal_the_api_to_the_cent(api):
    budget, _ = api.budget_with_channels(currency="EUR", total="777777.77")
    plan = api.ok(api.post(f"/budgets/{budget['id']}/plans", {}), 201)
    rows = read_csv(api.get(f"/budgets/{budget['id']}/plans/1.csv", role="finance"))
    assert list(rows[0]) == ["budget_id", "plan", "channel_id", "channel", "period", "amount",
                             "expected_return", "currency"]
    assert len(rows) == len(plan["channels"]) * len(budget["periods"])
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal(plan["spend"])
    for channel in plan["channels"]:
        mine = [r for r in rows if r["channel_id"] == channel["channel_id"]]
        assert sum(Decimal(r["amount"]) for r in mine) == Decimal(channel["amount"])
        assert sum(Decimal(r["expected_return"]) for r in mine) == Decimal(channel["expected_return"])
    assert all(len(r["amount"].split(".")[1]) == 2 for r in rows)


def test_only_planners_and_admins_make_or_approve_plans(api):
    budget, _ = api.budget_with_channels(CHANNELS[:1])
    path = f"/budgets/{budget['id']}/plans"
    assert api.post(path, {}, role="finance").status_code == 403
    api.ok(api.post(path, {}, role="admin"), 201)
    assert api.post(f"{path}/1/approve", role="finance").status_code == 403
    assert api.post(f"{path}/1/approve", role="viewer").status_code == 403


def test_a_plan_made_before_the_money_changed_cannot_be_approved(api):
    budget, channels = api.budget_with_channels(CHANNELS[:1], campaign_ids=[api.campaign_id])
    path = f"/budgets/{budget['id']}/plans"
    api.ok(api.post(path, {}), 201)
    api.ok(api.post(f"/budgets/{budget['id']}/reserve/draws",
                    {"amount": "10", "reason": "x", "campaign_id": api.campaign_id}), 201)
    stale = api.post(f"{path}/1/approve")
    assert stale.status_code == 409 and "new plan" in stale.json()["detail"]
    fresh = api.ok(api.post(path, {}), 201)
    assert fresh["reserve"] == "99990.00"
    api.ok(api.post(f"{path}/2/approve"))
    api.ok(api.patch(f"/budgets/{budget['id']}", {"total": "2000000"}, headers={"If-Match": '"3"'}))
    assert api.post(f"{path}/2/approve").status_code == 200   # already current: nothing changes
    assert api.post(f"{path}/1/approve").status_code == 409


def test_removing_a_group_that_channels_use_is_a_409(api):
    budget, _ = api.budget_with_channels([CHANNELS[0] | {"group": "brand"}],
                                         groups=[{"id": "brand", "min_share": "0.1"}])
    response = api.patch(f"/budgets/{budget['id']}", {"groups": []}, headers={"If-Match": '"1"'})
    assert response.status_code == 409 and "search" in response.json()["detail"]
