"""Campaign funding: a linked campaign funded from the current plan per channel, phased over its
phases and the budget's periods to the cent, its spend and ROI from actuals that carry it,
re-phased when the calendar moves its phases, dropped when the calendar deletes it; and the
what-if that optimises a campaign's funding on curves cut to its phases."""
from decimal import Decimal

import httpx
from sqlalchemy import update

from services.budget.ledger.tables import event_consumer
from tests.budget.conftest import CHANNELS, read_csv
from tests.budget.test_propagation import consumer, database
from tests.conftest import signed_as

# 2027-01-04 (Monday) to 2027-05-21 (Friday): 20 weeks, 100 working days.
FISCAL = {"start_date": "2027-01-04", "end_date": "2027-05-21"}
WARMUP = {"kind": "warmup", "start_date": "2027-03-01", "end_date": "2027-03-12"}  # 10 working days
BURST = {"kind": "burst", "start_date": "2027-03-15", "end_date": "2027-04-09"}    # 20 working days


def funded_budget(api) -> tuple[dict, dict[str, dict]]:
    """search (ROI 2.1, max 400,000) and social (2.5 up to 100,000, then 1.3): with 900,000 to
    spend the plan gives search 400,000 and social 500,000."""
    budget, channels = api.budget_with_channels(CHANNELS[:2], **FISCAL)
    plan = api.approved_plan(budget["id"])
    assert {c["channel"]: c["amount"] for c in plan["channels"]} == {
        "search": "400000.00", "social": "500000.00"}
    return budget, channels


def phased_campaign(api, **changes) -> dict:
    campaign = api.campaign(start_date="2027-03-01", end_date="2027-04-09",
                            objective={"kpi": "revenue", "target": "150000", "unit": "USD",
                                       "deadline": "2027-04-30"}, **changes)
    for phase in (WARMUP, BURST):
        version = api.calendar("GET", f"/campaigns/{campaign['id']}")["version"]
        api.calendar("POST", f"/campaigns/{campaign['id']}/phases", phase, 201,
                     headers={"If-Match": f'"{version}"'})
    return api.calendar("GET", f"/campaigns/{campaign['id']}")


def put(api, budget_id: str, campaign_id: str, body: dict, **kwargs) -> httpx.Response:
    return api.call("PUT", f"/budgets/{budget_id}/campaigns/{campaign_id}", json=body, **kwargs)


def lines(channels: dict, **amounts: str) -> list[dict]:
    return [{"channel_id": channels[name]["id"], "amount": amount}
            for name, amount in amounts.items()]


def test_a_campaign_is_funded_phased_and_tracked_to_the_cent(api):
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    response = put(api, budget["id"], campaign["id"],
                   {"lines": lines(channels, search="12000.00", social="30000.00")})
    funding = api.ok(response, 201)
    # Default weights warmup 0.1, burst 0.5 (no sustain or wrap-up phase): 1/6 and 5/6.
    # search 12,000: warmup 2,000 (all in March); burst 10,000 over 17 March and 9 April
    # days: 6,538.46 and 3,461.54 (1,000,000 cents × 17/26 = 653,846.15, the last cent to the
    # larger remainder, April's .85). social 30,000: 5,000 + 25,000 → 16,346.15 / 8,653.85.
    by_channel = {line["channel_kind"]: line for line in funding["lines"]}
    assert [(p["kind"], p["start_date"], p["end_date"], p["amount"])
            for p in by_channel["search"]["per_phase"]] == [
        ("warmup", "2027-03-01", "2027-03-12", "2000.00"),
        ("burst", "2027-03-15", "2027-04-09", "10000.00")]
    assert by_channel["search"]["per_period"] == [{"period": "2027-03", "amount": "8538.46"},
                                                  {"period": "2027-04", "amount": "3461.54"}]
    assert by_channel["social"]["per_period"] == [{"period": "2027-03", "amount": "21346.15"},
                                                  {"period": "2027-04", "amount": "8653.85"}]
    assert (funding["committed"], funding["spent"], funding["roi"]) == ("42000.00", "0.00", None)
    assert funding["kpi"] == {"kpi": "revenue", "target": "150000", "actual": "0.00",
                              "progress": "0.0000"}
    # Funding links the campaign; the same PUT again is a 200 that changes nothing.
    assert campaign["id"] in api.ok(api.get(f"/budgets/{budget['id']}"))["campaign_ids"]
    audit = api.ok(api.get(f"/budgets/{budget['id']}/audit"))["items"]
    assert api.ok(put(api, budget["id"], campaign["id"], {
        "lines": lines(channels, search="12000.00", social="30000.00")})) == funding
    assert api.ok(api.get(f"/budgets/{budget['id']}/audit"))["items"] == audit

    # Actuals carrying the campaign, and one that does not.
    social = channels["social"]["id"]
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": [
        {"channel_id": social, "period": "2027-03", "spend": "10000", "return": "30000",
         "campaign_id": campaign["id"]},
        {"channel_id": social, "period": "2027-03", "spend": "5000", "return": "5000"}]},
        role="finance"))
    funding = api.ok(api.get(f"/budgets/{budget['id']}/campaigns/{campaign['id']}",
                             role="viewer"))
    social_line = next(line for line in funding["lines"] if line["channel_id"] == social)
    # 30,000 returned on 10,000: ROI 3; revenue 30,000 of 150,000: progress 0.2.
    assert (social_line["spent"], social_line["return"], social_line["roi"]) == \
        ("10000.00", "30000.00", "3.0000")
    assert (funding["spent"], funding["return"], funding["roi"]) == \
        ("10000.00", "30000.00", "3.0000")
    assert funding["kpi"] == {"kpi": "revenue", "target": "150000", "actual": "30000.00",
                              "progress": "0.2000"}
    assert api.ok(api.get(f"/campaigns/{campaign['id']}/funding"))["items"] == [funding]

    # Cut by campaign: the campaign's funding is the plan, its actuals the spend.
    cut = api.ok(api.get(f"/budgets/{budget['id']}/variance?campaign_id={campaign['id']}"))
    rows = {(r["channel"], r["period"]): (r["planned"], r["spend"]) for r in cut["rows"]}
    assert rows == {("search", "2027-03"): ("8538.46", "0.00"),
                    ("search", "2027-04"): ("3461.54", "0.00"),
                    ("social", "2027-03"): ("21346.15", "10000.00"),
                    ("social", "2027-04"): ("8653.85", "0.00")}
    whole = api.ok(api.get(f"/budgets/{budget['id']}/variance"))
    march = next(r for r in whole["rows"] if (r["channel"], r["period"]) == ("social", "2027-03"))
    assert (march["spend"], march["return"]) == ("15000.00", "35000.00")   # both rows summed
    csv_rows = read_csv(api.get(f"/budgets/{budget['id']}/actuals.csv?campaign_id={campaign['id']}"))
    assert [(r["channel"], r["campaign_id"], r["spend"]) for r in csv_rows] == [
        ("social", campaign["id"], "10000.00")]
    variance_csv = read_csv(api.get(
        f"/budgets/{budget['id']}/variance.csv?campaign_id={campaign['id']}"))
    assert {(r["campaign_id"], r["channel"], r["period"], r["planned"]) for r in variance_csv} \
        >= {(campaign["id"], "social", "2027-04", "8653.85")}
    listed = api.ok(api.get(f"/budgets/{budget['id']}/actuals?campaign_id={campaign['id']}"))
    assert [(a["campaign_id"], a["spend"]) for a in listed["items"]] == [
        (campaign["id"], "10000.00")]


def test_funding_beyond_what_a_channel_has_left_is_a_409_naming_it(api):
    budget, channels = funded_budget(api)
    first, second = phased_campaign(api), phased_campaign(api)
    api.ok(put(api, budget["id"], first["id"], {"lines": lines(channels, search="12000")}), 201)
    refused = put(api, budget["id"], second["id"], {"lines": lines(channels, search="388000.01")})
    assert refused.status_code == 409, refused.text
    # 400,000 planned for search − 12,000 funded for the first campaign = 388,000 left.
    assert (refused.json()["channel_id"], refused.json()["remaining"]) == \
        (channels["search"]["id"], "388000.00")
    assert "'search'" in refused.json()["detail"] and "388000.00" in refused.json()["detail"]
    api.ok(put(api, budget["id"], second["id"], {"lines": lines(channels, search="388000")}), 201)
    # A reserve draw for the channel grows what it can give.
    api.ok(api.post(f"/budgets/{budget['id']}/reserve/draws", {
        "amount": "500", "reason": "extra search", "channel_id": channels["search"]["id"],
        "period": "2027-03"}), 201)
    api.ok(put(api, budget["id"], first["id"], {"lines": lines(channels, search="12500")}))


def test_bad_funding_is_named(api):
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    response = put(api, budget["id"], campaign["id"], {"lines": [
        {"channel_id": "ch_nope", "amount": "1"},
        {"channel_id": channels["search"]["id"], "amount": "1.001"}]})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"lines[0].channel_id",
                                                               "lines[1].amount"}
    assert put(api, budget["id"], "no-such-campaign", {"lines": []}).status_code == 404
    unplanned = api.budget(**FISCAL)
    assert put(api, unplanned["id"], campaign["id"], {"lines": []}).status_code == 409
    assert put(api, budget["id"], campaign["id"], {"lines": []}, role="finance").status_code == 403
    assert api.get(f"/budgets/{budget['id']}/campaigns/{campaign['id']}").status_code == 404


def test_the_money_follows_the_phases_and_a_delete_undoes_the_funding(api):
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    api.ok(put(api, budget["id"], campaign["id"], {"lines": lines(channels, search="12000"),
                                                   "phase_weights": {"warmup": "1", "burst": "5",
                                                                     "sustain": "0",
                                                                     "wrapup": "0"}}), 201)
    burst = next(p for p in campaign["phases"] if p["kind"] == "burst")
    api.change_campaign(campaign["id"], "PATCH", "", {"end_date": "2027-04-30"})
    api.calendar("PATCH", f"/campaigns/{campaign['id']}/phases/{burst['id']}",
                 {"end_date": "2027-04-30"}, headers={"If-Match": f'"{burst["version"]}"'})
    consumer(api).poll_once()
    path = f"/budgets/{budget['id']}/campaigns/{campaign['id']}"
    funding = api.ok(api.get(path))
    # Burst 10,000 over 17 March and 30 April days: 361,702.13 cents → 3,617.02 in March,
    # 6,382.98 in April (the cent to April's .87 remainder); warmup's 2,000 stays in March.
    [line] = funding["lines"]
    assert [p["end_date"] for p in line["per_phase"]] == ["2027-03-12", "2027-04-30"]
    assert line["per_period"] == [{"period": "2027-03", "amount": "5617.02"},
                                  {"period": "2027-04", "amount": "6382.98"}]
    # Every event delivered again changes nothing.
    with database(api) as engine, engine.begin() as connection:
        connection.execute(update(event_consumer).values(cursor=None))
    consumer(api).poll_once()
    assert api.ok(api.get(path)) == funding

    assert api.call("DELETE", path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.call("DELETE", path).status_code == 404
    assert api.ok(api.get(f"/campaigns/{campaign['id']}/funding")) == {"items": []}


def test_a_campaign_the_calendar_deletes_is_dropped_with_its_funding(api):
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    api.ok(put(api, budget["id"], campaign["id"], {"lines": lines(channels, social="1000")}), 201)
    version = api.calendar("GET", f"/campaigns/{campaign['id']}")["version"]
    path = f"/api/v1/calendar/campaigns/{campaign['id']}"
    deleted = httpx.delete(api.calendar_url + path, auth=signed_as(),
                           headers={"If-Match": f'"{version}"'})
    assert deleted.status_code == 204, deleted.text
    consumer(api).poll_once()
    assert api.get(f"/budgets/{budget['id']}/campaigns/{campaign['id']}").status_code == 404
    assert api.ok(api.get(f"/campaigns/{campaign['id']}/funding")) == {"items": []}
    assert campaign["id"] not in api.ok(api.get(f"/budgets/{budget['id']}"))["campaign_ids"]
    entries = api.ok(api.get(f"/budgets/{budget['id']}/audit"))["items"]
    assert [(e["principal"], e["target"]) for e in entries if e["action"] == "campaign.deleted"] \
        == [("service:calendar", campaign["id"])]
    # The feed delivered again: nothing left to drop, no second entry.
    with database(api) as engine, engine.begin() as connection:
        connection.execute(update(event_consumer).values(cursor=None))
    consumer(api).poll_once()
    assert api.ok(api.get(f"/budgets/{budget['id']}/audit"))["items"] == entries


def optimize(api, budget_id: str, **changes) -> dict:
    body = {"start_date": "2027-03-01", "end_date": "2027-04-09", "phases": [WARMUP, BURST],
            "channels": ["search", "social"], "ceiling": "50000.00",
            "target_return": "100000"} | changes
    return api.ok(api.post(f"/budgets/{budget_id}/campaign-funding/optimize", body,
                           role="finance"))


def test_the_funding_what_if_cuts_each_curve_to_the_campaigns_phases(api):
    budget, channels = funded_budget(api)
    answer = optimize(api, budget["id"])
    # The phases are 10 and 20 of the fiscal period's 100 working days: social's first slope
    # (2.5, up to 100,000 over the year) reaches 10,000 in warm-up and 20,000 in burst, then
    # falls to 1.3, under search's 2.1: social 30,000, search the other 20,000.
    # Return 2.5 × 30,000 + 2.1 × 20,000 = 117,000.
    by_kind = {line["channel_kind"]: line for line in answer["lines"]}
    assert (by_kind["social"]["amount"], by_kind["search"]["amount"]) == ("30000.00", "20000.00")
    assert by_kind["social"]["per_phase"] == [{"kind": "warmup", "amount": "10000.00"},
                                              {"kind": "burst", "amount": "20000.00"}]
    assert (answer["total"], answer["expected_return"], answer["target_reached"]) == \
        ("50000.00", "117000.00", True)
    assert {(u["channel_id"], u["amount"]) for u in answer["uncommitted"]} == {
        (channels["search"]["id"], "400000.00"), (channels["social"]["id"], "500000.00")}
    # Weights 0.1 / 0.9 cap warm-up at 5,000: social gets 5,000 there and 20,000 in burst,
    # search 25,000. Return 2.5 × 25,000 + 2.1 × 25,000 = 115,000.
    capped = optimize(api, budget["id"], phase_weights={"warmup": "0.1", "burst": "0.9",
                                                        "sustain": "0", "wrapup": "0"})
    by_kind = {line["channel_kind"]: line for line in capped["lines"]}
    assert by_kind["social"]["per_phase"] == [{"kind": "warmup", "amount": "5000.00"},
                                              {"kind": "burst", "amount": "20000.00"}]
    assert (by_kind["search"]["amount"], capped["expected_return"]) == ("25000.00", "115000.00")
    # What campaigns already hold is not offered again: social has 499,990 left.
    campaign = phased_campaign(api)
    api.ok(put(api, budget["id"], campaign["id"], {"lines": lines(channels, social="10")}), 201)
    after = optimize(api, budget["id"], target_return="117000.01")
    assert {u["channel_id"]: u["amount"] for u in after["uncommitted"]}[
        channels["social"]["id"]] == "499990.00"
    assert after["target_reached"] is False
    assert Decimal(after["expected_return"]) == Decimal("117000.00")


def test_the_funding_what_if_names_what_it_cannot_use(api):
    budget, _ = funded_budget(api)
    response = api.post(f"/budgets/{budget['id']}/campaign-funding/optimize", {
        "start_date": "2027-03-01", "end_date": "2027-04-09", "channels": ["kol"],
        "ceiling": "100"})
    assert response.status_code == 422 and "search, social" in response.text
    weekend = {"kind": "burst", "start_date": "2027-03-06", "end_date": "2027-03-07"}
    response = api.post(f"/budgets/{budget['id']}/campaign-funding/optimize", {
        "start_date": "2027-03-01", "end_date": "2027-04-09", "channels": ["search"],
        "phases": [weekend], "ceiling": "100"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["phases[0]"]
