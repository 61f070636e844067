"""Actuals imports, variance against the current plan, the playbook review, CSV and audit."""
import uuid
from decimal import Decimal

import pytest

from tests.budget.conftest import CHANNELS, read_csv

LINEAR = [{"name": name, "kind": "search", "response": {"type": "linear", "roi": "2"},
           "min": "1000", "max": "1000", "state": state}
          for name, state in [("alpha", "active"), ("beta", "active"), ("trial", "testing"),
                              ("weak", "active")]]


def rows(channels: dict, figures: dict[str, list[tuple[str, str]]], first_month: int = 1) -> list[dict]:
    return [{"channel_id": channels[name]["id"], "period": f"2027-0{first_month + i}",
             "spend": spend, "return": earned}
            for name, series in figures.items() for i, (spend, earned) in enumerate(series)]


def test_import_is_idempotent_by_key_and_by_channel_and_period(api):
    budget, channels = api.budget_with_channels(CHANNELS[:2])
    path = f"/budgets/{budget['id']}/actuals"
    body = {"rows": rows(channels, {"search": [("100.10", "250"), ("200", "380.55")],
                                    "social": [("50", "60")]})}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(path, body, role="finance", headers=key)
    assert first.status_code == 200 and first.json() == {"created": 3, "updated": 0, "unchanged": 0}
    replay = api.post(path, body, role="finance", headers=key)
    assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
    same_file = api.ok(api.post(path, body, role="admin"))
    assert same_file == {"created": 0, "updated": 0, "unchanged": 3}
    body["rows"][0]["spend"] = "110.10"
    assert api.ok(api.post(path, body, role="finance")) == {"created": 0, "updated": 1, "unchanged": 2}
    listed = api.ok(api.get(path, role="viewer"))["items"]
    assert [(a["period"], a["spend"], a["return"]) for a in listed] == [
        ("2027-01", "110.10", "250.00"), ("2027-01", "50.00", "60.00"), ("2027-02", "200.00", "380.55")]
    restated = [e for e in api.ok(api.get(f"/budgets/{budget['id']}/audit"))["items"]
                if e["action"] == "actuals.import" and e["changes"]["updated"]]
    assert restated[0]["changes"]["restated"][0]["from"] == {"spend": "100.10", "return": "250.00"}


def test_a_bad_row_rejects_the_whole_file_listing_every_bad_row(api):
    budget, channels = api.budget_with_channels(CHANNELS[:1])
    good = rows(channels, {"search": [("1", "2")]})[0]
    body = {"rows": [good, good | {"channel_id": "ch_nope"}, good | {"period": "2031-01"},
                     good | {"spend": "1.001", "period": "2027-02"}, good]}
    response = api.post(f"/budgets/{budget['id']}/actuals", body, role="finance")
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [
        "rows[1].channel_id", "rows[2].period", "rows[3].spend", "rows[4]"]
    assert api.ok(api.get(f"/budgets/{budget['id']}/actuals"))["items"] == []
    negative = api.post(f"/budgets/{budget['id']}/actuals", {"rows": [good | {"spend": "-1"}]},
                        role="finance")
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "rows[0].spend"


def test_only_finance_and_admin_write_actuals(api):
    budget, channels = api.budget_with_channels(CHANNELS[:1])
    body = {"rows": rows(channels, {"search": [("1", "2")]})}
    assert api.post(f"/budgets/{budget['id']}/actuals", body, role="planner").status_code == 403
    assert api.post(f"/budgets/{budget['id']}/actuals", body, role="viewer").status_code == 403


def test_variance_compares_plan_with_draws_against_actuals_and_alerts(api):
    budget, channels = api.budget_with_channels(
        [LINEAR[0], LINEAR[1]], total="2400", reserve={"amount": "400"}, end_date="2027-03-31",
        rules={"alert_percent": "20"})
    # 1000 each over Jan-Mar by days (31, 28, 31 of 90): 344.45 (the tied cent goes to the
    # first), 311.11, 344.44.
    api.approved_plan(budget["id"])
    api.ok(api.post(f"/budgets/{budget['id']}/reserve/draws",
                    {"amount": "100", "reason": "x", "channel_id": channels["beta"]["id"],
                     "period": "2027-01"}), 201)
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(channels, {
        "alpha": [("300", "600"), ("400", "700")], "beta": [("430", "900"), ("100", "100")]})},
        role="finance"))
    variance = api.ok(api.get(f"/budgets/{budget['id']}/variance", role="finance"))
    assert (variance["plan"], variance["through_period"]) == (1, "2027-02")
    cells = {(r["channel"], r["period"]): r for r in variance["rows"]}
    alpha = cells["alpha", "2027-01"]
    assert (alpha["planned"], alpha["variance"]) == ("344.45", "-44.45")
    assert cells["beta", "2027-01"]["planned"] == "444.45"   # 344.45 + the 100.00 draw
    assert cells["alpha", "2027-02"]["variance_percent"] == "28.5719"   # 88.89 / 311.11
    assert cells["alpha", "2027-03"]["spend"] == "0.00" and cells["alpha", "2027-03"]["roi"] is None
    total = next(b for b in variance["burn"] if b["channel_id"] is None)
    assert (total["planned_total"], total["planned_to_date"], total["spend_to_date"]) == \
        ("2100.00", "1411.12", "1230.00")
    assert total["burn_rate"] == "0.8716"
    assert [(a["channel"], a["period"]) for a in variance["alerts"]] == [("alpha", "2027-02")]
    assert sum(Decimal(r["planned"]) for r in variance["rows"]) == Decimal(total["planned_total"])



def test_a_share_too_small_to_show_is_zero_without_a_sign(api):
    budget, channels = api.budget_with_channels(
        [LINEAR[0] | {"min": "30000", "max": "30000"}], total="30000",
        reserve={"amount": "0"}, end_date="2027-01-31")
    api.approved_plan(budget["id"])
    # One cent under 30000.00 planned: 100 × -0.01 / 30000 = -0.0000333…, which rounds to
    # -0.0000 and is written 0.0000, as every ratio of the API; the ROI is 2 exactly.
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(
        channels, {"alpha": [("29999.99", "59999.98")]})}, role="finance"))
    [row] = api.ok(api.get(f"/budgets/{budget['id']}/variance"))["rows"]
    assert (row["planned"], row["variance"], row["variance_percent"], row["roi"]) == (
        "30000.00", "-0.01", "0.0000", "2.0000")
    [line] = read_csv(api.get(f"/budgets/{budget['id']}/variance.csv"))
    assert (line["variance"], line["variance_percent"]) == ("-0.01", "0.0000")

def test_review_applies_admit_scale_and_exit_rules(api):
    budget, channels = api.budget_with_channels(
        LINEAR, total="4000", reserve={"amount": "0"},
        rules={"target_roi": "2", "exit_periods": 3})
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(channels, {
        "alpha": [("100", "300"), ("100", "300"), ("100", "300"), ("100", "300")],   # ROI 3
        "beta": [("100", "200"), ("100", "200"), ("100", "200"), ("100", "200")],    # ROI 2
        "weak": [("100", "200"), ("100", "90"), ("100", "90"), ("100", "90")],       # < 1 for 3
        "trial": [("100", "270"), ("100", "270")]})}, role="finance"))                # ROI 2.7
    review = api.ok(api.get(f"/budgets/{budget['id']}/review"))
    # Active average: (1200 + 800 + 470) / 1200.
    assert review["active_average_roi"] == "2.0583" and review["target_source"] == "rules"
    verdicts = {c["channel"]: c for c in review["channels"]}
    assert verdicts["alpha"]["recommendation"] == "scale_up"      # 3 / 2.0583 = 1.46 ≥ 1.30
    assert verdicts["beta"]["recommendation"] == "keep"
    assert verdicts["trial"]["recommendation"] == "admit"         # 2.7 / 2.0583 = 1.31 ≥ 1.15
    assert verdicts["weak"]["recommendation"] == "exit"
    assert verdicts["weak"]["periods_below_exit"] == ["2027-02", "2027-03", "2027-04"]
    assert (verdicts["alpha"]["roi"], verdicts["alpha"]["spend"]) == ("3.0000", "400.00")


@pytest.mark.parametrize("trial_return, verdict", [("235", "keep_testing"), ("236", "admit")])
def test_review_admits_at_exactly_the_configured_ratio(api, trial_return, verdict):
    budget, channels = api.budget_with_channels(LINEAR[:3], total="3000", reserve={"amount": "0"})
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(channels, {
        "alpha": [("100", "200")], "beta": [("100", "210")], "trial": [("100", trial_return)]})},
        role="finance"))
    verdicts = {c["channel"]: c for c in api.ok(api.get(f"/budgets/{budget['id']}/review"))["channels"]}
    assert verdicts["trial"]["recommendation"] == verdict   # average 2.05: 1.15 × 2.05 = 2.3575
    assert verdicts["trial"]["ratio_to_average"] is not None


def test_actuals_csv_sums_equal_the_variance_to_the_cent(api):
    budget, channels = api.budget_with_channels(CHANNELS[:2], currency="JPY", total="1000000",
                                                reserve={"percent": "7"})
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(channels, {
        "search": [("1001", "2003"), ("999", "1")], "social": [("7", "0")]})}, role="finance"))
    table = read_csv(api.get(f"/budgets/{budget['id']}/actuals.csv", role="finance"))
    assert list(table[0]) == ["budget_id", "channel_id", "channel", "period", "campaign_id",
                              "spend", "return", "currency"]
    variance = api.ok(api.get(f"/budgets/{budget['id']}/variance"))
    total = next(b for b in variance["burn"] if b["channel_id"] is None)
    assert sum(Decimal(r["spend"]) for r in table) == Decimal(total["spend_to_date"]) == Decimal(2007)
    assert {r["spend"] for r in table} == {"1001", "999", "7"}


def test_audit_log_records_every_change_with_who_and_request_id(api):
    budget, channels = api.budget_with_channels(CHANNELS[:1])
    api.ok(api.patch(f"/budgets/{budget['id']}", {"name": "renamed"},
                     headers={"If-Match": '"1"', "X-Request-ID": "req-audit-1"}))
    api.approved_plan(budget["id"])
    api.ok(api.post(f"/budgets/{budget['id']}/reserve/draws",
                    {"amount": "5", "reason": "x", "channel_id": channels["search"]["id"]}), 201)
    log = api.ok(api.get(f"/budgets/{budget['id']}/audit", role="viewer"))["items"]
    assert [e["action"] for e in log] == ["budget.create", "channel.create", "budget.update",
                                          "plan.create", "plan.approve", "reserve.draw"]
    update = log[2]
    assert update["changes"]["name"] == {"from": "FY27 growth", "to": "renamed"}
    assert (update["principal"], update["role"], update["request_id"]) == \
        ("key:test", "planner", "req-audit-1")
    assert log[4]["changes"]["current_plan"] == {"from": None, "to": 1}
