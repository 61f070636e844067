"""CSV exports as a spreadsheet opens them (issue 14): a UTF-8 byte order mark, text that
could run as a formula written with an apostrophe in front, numbers left as numbers."""
from decimal import Decimal

from tests.budget.conftest import read_csv

LINEAR = {"kind": "search", "response": {"type": "linear", "roi": "2"}}
HOSTILE = '=HYPERLINK("http://x","y")'


def test_text_that_a_spreadsheet_would_run_is_written_as_text(api):
    budget, channels = api.budget_with_channels([
        LINEAR | {"name": HOSTILE, "max": "300000"},
        LINEAR | {"name": "Télé — Prime", "max": "300000"},
        LINEAR | {"name": "@SUM(A1)", "max": "300000"}])
    api.approved_plan(budget["id"])
    rows = read_csv(api.get(f"/budgets/{budget['id']}/plans/1.csv", role="finance"))
    names = {r["channel"] for r in rows}
    # Decoded as UTF-8 with its BOM, the accents and the dash survive; the formulas do not run.
    assert names == {"'" + HOSTILE, "Télé — Prime", "'@SUM(A1)"}
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("900000.00")

    path = f"/budgets/{budget['id']}/reserve/draws"
    draw = api.ok(api.post(path, {"amount": "5", "reason": "-1+1 promo, =cmd|' /C calc'!A0",
                                  "channel_id": channels[HOSTILE]["id"]}), 201)
    api.ok(api.post(f"{path}/{draw['id']}/reversal", {"reason": "\tundo"}), 201)
    entries = read_csv(api.get(f"/budgets/{budget['id']}/reserve/entries.csv", role="finance"))
    assert [(e["kind"], e["amount"], e["reason"]) for e in entries] == [
        ("draw", "5.00", "'-1+1 promo, =cmd|' /C calc'!A0"),
        ("reversal", "-5.00", "'\tundo")]             # a negative amount stays a number
    assert entries[0]["currency"] == "USD" and entries[0]["plan"] == "1"


def test_variance_review_and_audit_have_their_own_csv(api):
    budget, channels = api.budget_with_channels([LINEAR | {"name": "search", "max": "900000"}])
    api.approved_plan(budget["id"])
    search = channels["search"]["id"]
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": [
        {"channel_id": search, "period": "2027-01", "spend": "200000", "return": "150000"}]},
        role="finance"))
    variance = api.ok(api.get(f"/budgets/{budget['id']}/variance"))
    rows = read_csv(api.get(f"/budgets/{budget['id']}/variance.csv", role="finance"))
    assert [(r["period"], r["planned"], r["spend"], r["variance"], r["return"], r["roi"])
            for r in rows] == [(v["period"], v["planned"], v["spend"], v["variance"],
                                v["return"], v["roi"] or "") for v in variance["rows"]]
    # January: 900000.00 × 31/181 = 154143.65 planned; 200000.00 spent, 45856.35 over.
    assert (rows[0]["planned"], rows[0]["variance"], rows[0]["roi"]) == \
        ("154143.65", "45856.35", "0.7500")

    review = read_csv(api.get(f"/budgets/{budget['id']}/review.csv", role="viewer"))
    assert [(r["channel"], r["state"], r["spend"], r["return"], r["roi"]) for r in review] == \
        [("search", "active", "200000.00", "150000.00", "0.7500")]

    audit = read_csv(api.get(f"/budgets/{budget['id']}/audit.csv", role="viewer"))
    assert [a["action"] for a in audit] == ["budget.create", "channel.create", "plan.create",
                                            "plan.approve", "actuals.import"]
    assert audit[0]["changes"].startswith('{"after": {')


def test_currency_filter_ignores_case(api):
    euro = api.budget(currency="EUR", department="emea-finance")
    found = api.ok(api.get("/budgets", params={"currency": "eur", "department": "emea-finance"}))
    assert euro["id"] in [b["id"] for b in found["items"]]
    assert all(b["currency"] == "EUR" for b in found["items"])
