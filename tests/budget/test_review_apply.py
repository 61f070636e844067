"""Applying the playbook review: the recommendations the caller confirms move their channels in
one transaction, with audit entries; a confirmation the review no longer gives is a 409 naming
the channel and what the review says now, and nothing moves."""
from tests.budget.conftest import CHANNELS


def reviewed_budget(api) -> tuple[dict, dict[str, dict]]:
    """search (active) returned 20,000 on 10,000 (ROI 2); social (testing) 3,000 on 1,000
    (ROI 3). The active average is search's 2, so social's ratio is 1.5 ≥ 1.15: admit; search
    is at 1: keep."""
    social = CHANNELS[1] | {"state": "testing"}
    budget, channels = api.budget_with_channels([CHANNELS[0], social])
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": [
        {"channel_id": channels["search"]["id"], "period": "2027-01", "spend": "10000",
         "return": "20000"},
        {"channel_id": channels["social"]["id"], "period": "2027-01", "spend": "1000",
         "return": "3000"}]}, role="finance"))
    review = api.ok(api.get(f"/budgets/{budget['id']}/review"))
    assert {c["channel"]: c["recommendation"] for c in review["channels"]} == {
        "search": "keep", "social": "admit"}
    return budget, channels


def test_confirmed_recommendations_are_applied_together(api):
    budget, channels = reviewed_budget(api)
    social = channels["social"]
    applied = api.ok(api.post(f"/budgets/{budget['id']}/review/apply", {
        "actions": [{"channel_id": social["id"], "action": "admit"}]}))
    assert applied == {"applied": [{"channel_id": social["id"], "channel": "social",
                                    "action": "admit", "from_state": "testing",
                                    "to_state": "active", "version": 2}]}
    assert api.ok(api.get(f"/budgets/{budget['id']}/channels/{social['id']}"))["state"] == "active"
    entry = api.ok(api.get(f"/budgets/{budget['id']}/audit"))["items"][-1]
    assert (entry["action"], entry["target"], entry["changes"]) == (
        "channel.update", social["id"],
        {"state": {"from": "testing", "to": "active"}, "review": "admit"})
    # Now active at 3 against an average of 23,000 / 11,000 = 2.0909: ratio 1.43 ≥ 1.30.
    review = api.ok(api.get(f"/budgets/{budget['id']}/review"))
    assert {c["channel"]: c["recommendation"] for c in review["channels"]}["social"] == "scale_up"


def test_a_confirmation_the_review_no_longer_gives_is_a_409_and_nothing_moves(api):
    budget, channels = reviewed_budget(api)
    response = api.post(f"/budgets/{budget['id']}/review/apply", {"actions": [
        {"channel_id": channels["social"]["id"], "action": "admit"},
        {"channel_id": channels["search"]["id"], "action": "scale_up"}]})
    assert response.status_code == 409, response.text
    assert response.json()["channels"] == [{"channel_id": channels["search"]["id"],
                                            "confirmed": "scale_up", "recommendation": "keep"}]
    assert "'search'" in response.json()["detail"]
    states = {c["name"]: c["state"] for c in api.ok(api.get(f"/budgets/{budget['id']}/channels"))}
    assert states == {"search": "active", "social": "testing"}


def test_bad_confirmations_are_422_naming_the_field(api):
    budget, channels = reviewed_budget(api)
    response = api.post(f"/budgets/{budget['id']}/review/apply", {"actions": [
        {"channel_id": "ch_nope", "action": "exit"},
        {"channel_id": channels["social"]["id"], "action": "admit"},
        {"channel_id": channels["social"]["id"], "action": "admit"}]})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["actions[0].channel_id",
                                                               "actions[2].channel_id"]
    assert api.post(f"/budgets/{budget['id']}/review/apply", {"actions": [
        {"channel_id": channels["social"]["id"], "action": "keep"}]}).status_code == 422
    assert api.post(f"/budgets/{budget['id']}/review/apply", {"actions": [
        {"channel_id": channels["social"]["id"], "action": "admit"}]},
        role="finance").status_code == 403
