"""`POST /api/v1/budget/optimize` on the budget service (the optimizer stores nothing, so
SQLite is enough — migrated, since every write call records its credential's nonce; the
gateway path is covered end to end in tests/e2e)."""
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from services.budget.app import MIGRATIONS, create_app
from services.budget.config import BudgetSettings
from shared import migrations
from shared.errors import PROBLEM_MEDIA_TYPE
from tests.conftest import TEST_SECRET, signed_as

PATH = "/api/v1/budget/optimize"

EXAMPLE = {
    "currency": "USD", "total": "1000000", "reserve": {"percent": "10"},
    "objective": "max_return",
    "channels": [
        {"id": "search", "max": "400000", "response": {"type": "linear", "roi": "2.1"}},
        {"id": "social", "response": {"type": "points",
                                      "points": [["0", "0"], ["100000", "250000"], ["300000", "420000"]]}},
        {"id": "video", "min": "50000",
         "response": {"type": "hill", "beta": "900000", "k": "250000", "alpha": "2.2"}},
        {"id": "kol-a", "response": {"type": "deal", "cost": "80000", "return": "240000"}}],
    "groups": [{"id": "brand", "channels": ["video", "kol-a"], "min_share": "0.2"}],
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('budget')}/b.db"
    migrations.upgrade(MIGRATIONS, url)
    settings = BudgetSettings(database_url=url, internal_secret=TEST_SECRET, solver_workers=1,
                              events_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield client


def post(client, body, role="planner"):
    return client.post(PATH, json=body, auth=signed_as(role))


def test_optimize_answers_the_issue_example(client):
    response = post(client, EXAMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "optimal"
    assert (body["total"], body["reserve"], body["spend"], body["unspent"]) == \
        ("1000000.00", "100000.00", "900000.00", "0.00")
    amounts = {a["channel"]: Decimal(a["amount"]) for a in body["allocations"]}
    assert sum(amounts.values()) == Decimal(body["spend"])
    assert amounts["search"] == Decimal("400000.00") and amounts["kol-a"] == Decimal("80000.00")
    assert amounts["video"] + amounts["kol-a"] >= Decimal("180000")
    assert "max:search" in body["binding_constraints"] and "budget" in body["binding_constraints"]
    assert Decimal(body["marginal_value_of_budget"]) > 1
    assert 0 <= body["approximation_error"] <= 1e-3
    # Proven: no gap but the noise of the bound, the envelope LP's row prices taken at the
    # LP's tolerance (`first_plan`; 3e-10 here).
    assert body["solver"]["name"] == "HiGHS" and 0 <= body["gap"] <= 1e-6
    assert all(isinstance(a["amount"], str) for a in body["allocations"])


def test_optimize_yen_amounts_have_no_decimals(client):
    response = post(client, {"currency": "JPY", "total": 1250000, "reserve": {"amount": "250000"},
                             "channels": [{"id": "a", "response": {"type": "linear", "roi": 2}}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["reserve"], body["spend"]) == ("1250000", "250000", "1000000")


def test_optimize_with_periods_lists_each_period(client):
    body = EXAMPLE | {"periods": [{"id": "warmup", "weight": "0.6", "cap": "200000"},
                                  {"id": "burst", "weight": "1.4"}]}
    response = post(client, body)
    assert response.status_code == 200, response.text
    for allocation in response.json()["allocations"]:
        assert [p["period"] for p in allocation["periods"]] == ["warmup", "burst"]
        assert sum(Decimal(p["amount"]) for p in allocation["periods"]) == Decimal(allocation["amount"])


def test_optimize_infeasible_minimums_are_a_422_naming_the_conflict(client):
    body = EXAMPLE | {"channels": [
        {"id": "video", "min": "600000", "response": {"type": "linear", "roi": "1"}},
        {"id": "search", "min": "400000", "response": {"type": "linear", "roi": "2"}}], "groups": []}
    response = post(client, body)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["type"] == "urn:marketplan:problem:infeasible-plan"
    conflict, = problem["conflicts"]
    assert conflict["change"] == "100000.00"
    assert conflict["constraint"] in ("min:video", "min:search")
    # The elastic model's slacks are one change; a change of one part is enough by itself.
    assert conflict["alone"] is True
    assert problem["detail"] == \
        f"No allocation meets every constraint. Enough alone: {conflict['detail']}."
    assert "100000.00" in problem["detail"]


def test_the_time_limit_advice_names_only_what_the_request_has():
    from services.budget import optimizer
    from services.budget.whatif import _what_to_cut
    concave = optimizer.Channel("search", optimizer.Hill(Decimal(900), Decimal(200), Decimal("0.8")))
    s_shaped = optimizer.Channel("video", optimizer.Hill(Decimal(900), Decimal(200), Decimal(2)))
    deal = optimizer.Channel("tv", optimizer.Deal(Decimal(100), Decimal(300)))
    weeks = tuple(optimizer.Period(f"w{i}") for i in range(3))
    problem = optimizer.Problem(total=Decimal(1000), decimals=2, channels=(concave,),
                                periods=weeks)
    assert _what_to_cut(problem) == "fewer channels or fewer periods"
    assert _what_to_cut(optimizer.Problem(total=Decimal(1000), decimals=2, periods=weeks,
                                          channels=(concave, s_shaped, deal))) == \
        "fewer channels, fewer periods, fewer deals or fewer S-shaped curves"


@pytest.mark.parametrize("change, field", [
    ({"currency": "XYZ"}, "currency"),
    ({"total": "-5"}, "total"),
    ({"total": "100.001"}, "total"),
    ({"reserve": {"percent": "120"}}, "reserve.percent"),
    ({"reserve": {"percent": "5", "amount": "5"}}, "reserve"),
    ({"objective": "min_spend"}, "target_return"),
    ({"groups": [{"id": "g", "channels": ["nope"]}]}, "groups[0].channels"),
    ({"channels": [{"id": "a", "response": {"type": "points", "points": [["5", "0"], ["10", "3"]]}}]},
     "channels[0].response.points"),
    ({"channels": [{"id": "a", "min": "10", "max": "5", "response": {"type": "linear", "roi": 1}}]},
     "channels[0].min"),
    ({"channels": [{"id": "a", "max": "5", "response": {"type": "deal", "cost": 1, "return": 2}}]},
     "channels[0]"),
    ({"channels": [{"id": "a", "response": {"type": "hill", "beta": 1, "k": 0, "alpha": 1}}]},
     "channels[0].response.hill.k"),
    ({"time_limit_seconds": 600}, "time_limit_seconds"),
])
def test_optimize_bad_input_is_a_422_naming_the_field(client, change, field):
    response = post(client, EXAMPLE | change)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), fields


def test_optimize_input_limits_are_enforced(client):
    channels = [{"id": f"c{i}", "response": {"type": "linear", "roi": 1}} for i in range(2001)]
    response = post(client, EXAMPLE | {"channels": channels, "groups": []})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "channels"
    periods = [{"id": f"p{i}"} for i in range(60)]
    channels = [{"id": f"c{i}", "response": {"type": "linear", "roi": 1}} for i in range(2000)]
    response = post(client, EXAMPLE | {"channels": channels, "groups": [], "periods": periods})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "periods"


def test_optimize_without_the_internal_credential_is_401(client):
    assert client.post(PATH, json=EXAMPLE).status_code == 401


def test_optimize_refuses_a_group_listing_a_channel_twice(client):
    # Listed twice, video would count twice towards brand's share: 2 × video ≥ 20 % of spend.
    body = EXAMPLE | {"groups": [{"id": "brand", "channels": ["video", "kol-a", "video"],
                                  "min_share": "0.2"}]}
    response = post(client, body)
    assert response.status_code == 422, response.text
    error, = response.json()["errors"]
    assert error["field"] == "groups[0].channels"
    assert error["detail"] == "group 'brand' lists channel 'video' twice; list each channel once"


def test_optimize_refuses_periods_that_all_return_nothing(client):
    body = EXAMPLE | {"periods": [{"id": "w1", "weight": "0"}, {"id": "w2", "weight": 0}]}
    response = post(client, body)
    assert response.status_code == 422, response.text
    error, = response.json()["errors"]
    assert error["field"] == "periods" and "weight above 0" in error["detail"]


def test_optimize_refuses_a_return_past_the_largest_amount(client):
    # Trial 18e (`bad_huge`): 1e15 at a return of 1e6 a unit answered 200 with a negative
    # return (the cents wrapped past 2^63). The heaviest week doubles the ceiling.
    def body(roi: str) -> dict:
        return {"currency": "USD", "total": "1000000000", "periods": [
                    {"id": "w1"}, {"id": "w2", "weight": "2"}],
                "channels": [{"id": "a", "response": {"type": "linear", "roi": roi}},
                             {"id": "b", "response": {"type": "hill", "beta": "1000000",
                                                      "k": "1000", "alpha": "1"}}]}
    response = post(client, body("500001"))
    assert response.status_code == 422, response.text
    error, = response.json()["errors"]
    assert error["field"] == "channels"
    assert error["detail"].startswith("a plan could return up to 1000002002000000, past the "
                                      "largest amount stated (1000000000000000)")
    response = post(client, body("499999"))
    assert response.status_code == 200, response.text
    assert Decimal(response.json()["expected_return"]) <= Decimal("1000000000000000")


@pytest.mark.parametrize("limit", ["NaN", "Infinity", "-Infinity", -1, 0, 60.5, 1e300, "soon",
                                   None, [5]])
def test_optimize_time_limit_out_of_range_says_what_is_allowed(client, limit):
    response = post(client, EXAMPLE | {"time_limit_seconds": limit})
    assert response.status_code == 422, response.text
    error, = response.json()["errors"]
    assert error["field"] == "time_limit_seconds"
    assert error["detail"].startswith("time_limit_seconds must be a number of seconds above 0 "
                                      "and at most 60; ")
    assert error["detail"] in response.json()["detail"]


def test_optimize_time_limit_in_range_is_taken(client):
    response = post(client, EXAMPLE | {"time_limit_seconds": "60"})
    assert response.status_code == 200, response.text


ROI_CHANNELS = [
    {"id": "search", "max": "1000", "response": {"type": "linear", "roi": "2"}},
    {"id": "social", "response": {"type": "points",
                                  "points": [["0", "0"], ["100", "300"], ["200", "400"]]}}]


def test_a_curve_steeper_than_the_solver_takes_is_a_422(client):
    # Trial 18f (`L10h`): a target ROI of 1 on a Hill curve of beta 1e15, k 1, alpha 0.1 (its
    # first cent returns some 1e17 a unit) answered 500: HiGHS refused the model. A group's
    # share keeps it on the MILP's route: alone, the greedy's frontier takes the curve
    # (`roi_frontier`), and the whole money returns 8e8 a unit.
    body = {"currency": "USD", "total": "1000000", "objective": "target_roi", "target_roi": "1",
            "channels": [{"id": "h", "response": {"type": "hill", "beta": "999999999999999",
                                                  "k": "1", "alpha": "0.1"}}]}
    response = post(client, body | {"groups": [{"id": "g", "channels": ["h"],
                                                "min_share": "0.5"}]})
    assert response.status_code == 422, response.text
    assert "more per unit near zero spend than the solver can take" in response.json()["detail"]
    response = post(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["spend"] == "1000000.00"


def test_a_target_roi_that_binds_is_claimed_optimal_only_with_the_rows_loosening(client):
    # Trial 18f (`tr5`): one Hill curve at a target of 3 answered `optimal` with a bound of
    # 2e-5 spending 133,014.68, where 133,333.33 returns 399,999.99, 0.14 % more: the curves'
    # rises loosen the target's row, which that bound did not count. The greedy's frontier's
    # bound counts it (`roi_frontier.ceiling`): 133,300.50 for 399,940.89, `optimal`, and the
    # optimum's 399,999.99 within its bound.
    body = {"currency": "USD", "total": "10000000", "objective": "target_roi", "target_roi": "3",
            "channels": [{"id": "h", "response": {"type": "hill", "beta": "1000000",
                                                  "k": "200000", "alpha": "1"}}]}
    answer = post(client, body).json()
    assert answer["status"] == "optimal"
    assert Decimal(answer["expected_return"]) * (1 + Decimal(
        repr(answer["approximation_error"]))) >= Decimal("399999.99")
    assert Decimal(answer["expected_return"]) >= 3 * Decimal(answer["spend"])


def test_optimize_unreachable_target_roi_is_a_422_naming_the_best_reachable(client):
    # No plan returns more than 3 per unit spent: social's first 100 do, everything else less.
    body = {"currency": "USD", "total": "10000", "objective": "target_roi", "target_roi": "5",
            "channels": ROI_CHANNELS}
    response = post(client, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:marketplan:problem:infeasible-plan"
    assert problem["conflicts"] == [{
        "constraint": "target_roi", "change": "2.000000",
        "detail": "lower target_roi to at most 3.000000: no plan that spends anything returns "
                  "more per unit spent (the best is channel social)", "alone": True}]
    # At that target the plan spends social's first 100 and nothing else.
    response = post(client, body | {"target_roi": "3"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["spend"], answer["expected_return"]) == ("100.00", "300.00")
    assert "target_roi" in answer["binding_constraints"]


def test_optimize_unreachable_target_roi_names_the_period_too(client):
    body = {"currency": "USD", "total": "10000", "objective": "target_roi", "target_roi": "5",
            "channels": ROI_CHANNELS, "periods": [{"id": "w1"}, {"id": "w2", "weight": "1.5"}]}
    response = post(client, body)
    assert response.status_code == 422, response.text
    conflict, = response.json()["conflicts"]
    # In w2 social's first 50 (its half of the horizon) return 1.5 · 150: 4.5 per unit.
    assert (conflict["change"], conflict["detail"]) == (
        "0.500000", "lower target_roi to at most 4.500000: no plan that spends anything returns "
                    "more per unit spent (the best is channel social in period w2)")


@pytest.mark.parametrize("change, field, detail", [
    ({"channels": [{"id": "a", "response": {"type": "points", "points": [[5, 0], [10, 3]]}}]},
     "channels[0].response.points", "the first point must be (0, 0): no spend, no return"),
    ({"channels": [{"id": "a", "response": {"type": "points",
                                            "points": [[0, 0], [20, 3], [10, 4]]}}]},
     "channels[0].response.points", "spend must strictly increase from one point to the next"),
    ({"reserve": {"percent": "5", "amount": "5"}}, "reserve",
     "give exactly one of percent or amount"),
])
def test_optimize_shape_errors_read_as_their_rule_alone(client, change, field, detail):
    response = post(client, EXAMPLE | change | {"groups": []})
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"in": "body", "field": field, "detail": detail, "type": "value_error"}]


INCREMENTAL = {
    "currency": "USD", "total": "100000", "time_limit_seconds": 5,
    "channels": [
        {"id": "a", "max": "50000", "response": {"type": "linear", "roi": "1.5"}},
        {"id": "b", "response": {"type": "hill", "beta": "200000", "k": "50000", "alpha": "2"}},
        {"id": "d", "response": {"type": "deal", "cost": "20000", "return": "50000"}}],
    "periods": [{"id": "p1"}, {"id": "p2", "cap": "60000"}],
}


def _conflicts(client, body):
    response = post(client, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:marketplan:problem:infeasible-plan"
    return {c["constraint"]: c for c in problem["conflicts"]}, problem["detail"]


def test_an_incremental_deal_out_of_its_tolerance_names_the_tolerance_not_a_max(client):
    # d may spend 9,000-11,000 (10,000 ± 10 %); its deal costs 20,000: a deal has no max to
    # raise (that is a 422), so the fix is the tolerance, 100 % at least.
    conflicts, detail = _conflicts(client, INCREMENTAL | {"incremental": {
        "previous": {"a": "10000", "b": "10000", "d": "10000"}, "tolerance_percent": "10"}})
    assert set(conflicts) == {"tolerance_percent"}
    assert conflicts["tolerance_percent"]["change"] == "90.00"
    assert "raise tolerance_percent to at least 100.00: channel d" in detail
    assert "10000.00" in conflicts["tolerance_percent"]["detail"]
    assert "maximum" not in detail


def test_an_incremental_floor_over_the_total_names_the_tolerance_and_the_max_set(client):
    # a must spend 500,000 (its previous amount, tolerance 0) of 100,000, and the user capped it
    # at 50,000: the tolerance is named for the floor, the user's max for the cap.
    conflicts, detail = _conflicts(client, INCREMENTAL | {"incremental": {
        "previous": {"a": "500000"}, "tolerance_percent": "0"}})
    assert "min:a" not in conflicts
    tolerance = conflicts["tolerance_percent"]
    assert Decimal(tolerance["change"]) >= Decimal(80)
    assert "channel a must move that far from its previous amount 500000.00" in tolerance["detail"]
    assert set(conflicts) <= {"tolerance_percent", "max:a"}


def test_an_incremental_cap_past_a_doubled_previous_amount_names_the_previous_amount():
    # A cap past 100 % shown on the conflict the elastic model would name: d's deal costs
    # 50,000 and its previous amount 10,000 allows 11,000 at 10 %, 20,000 at 100 %; the
    # previous amount must be 25,000 at least, 15,000 more, and the tolerance 100 % (25,000 at
    # 10 % allows only 27,500).
    from services.budget import optimizer
    from services.budget.optimizer.infeasibility import named_as_set
    from services.budget.optimizer.scaled import ScaledProblem
    incremental = optimizer.Incremental({"d": Decimal(10000)}, Decimal("0.1"))
    problem = optimizer.Problem(Decimal(100000), 2, (
        optimizer.Channel("d", optimizer.Deal(Decimal(50000), Decimal(90000))),),
        incremental=incremental)
    found = [optimizer.Conflict("max:d", Decimal("39000.00"), "raise the maximum of channel d")]
    conflict, tolerance = named_as_set(ScaledProblem(problem), incremental, found)
    assert (conflict.constraint, conflict.change) == ("previous:d", Decimal("15000.00"))
    assert conflict.detail.startswith("raise channel d's previous amount by 15000.00")
    assert (tolerance.constraint, tolerance.change) == ("tolerance_percent", Decimal("90.0"))


def test_min_spend_with_a_target_return_of_0_spends_nothing_and_is_optimal(client):
    # Spending nothing returns 0, which meets the target: no plan spends less, S-curve or not.
    body = {"currency": "USD", "total": "100000", "objective": "min_spend", "target_return": "0",
            "channels": [
                {"id": "a", "response": {"type": "linear", "roi": "2"}},
                {"id": "b", "response": {"type": "hill", "beta": "200000", "k": "50000",
                                         "alpha": "2"}}],
            "periods": [{"id": "p1"}, {"id": "p2", "cap": "100"}]}
    response = post(client, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], answer["spend"], answer["unspent"]) == ("optimal", "0.00", "100000.00")
    assert answer["approximation_error"] == 0


def test_the_api_document_shows_a_hill_curves_alpha_bounds(client):
    # Trial 18d: the README's 0.1-10 was enforced but missing from /openapi.json (the field's
    # own bounds were lost where every decimal is typed a string).
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    alpha = schemas["HillResponse"]["properties"]["alpha"]
    assert (alpha["ge"], alpha["le"]) == ("0.1", 10)


def test_a_change_of_one_part_is_enough_alone_beside_a_floor_lowered(client):
    # More money alone meets the target (1,000 more at 2 a unit), as does the target lowered:
    # two fixes, each enough by itself, where the set of one had said `alone` false.
    body = {"currency": "USD", "total": "1000", "objective": "min_spend",
            "target_return": "5000",
            "channels": [{"id": "search", "response": {"type": "linear", "roi": "2"}}]}
    response = post(client, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [(c["constraint"], c["change"], c["alone"]) for c in problem["conflicts"]] == \
        [("budget", "1500.00", True), ("target_return", "3000.00", True)]
    assert problem["detail"] == (
        "No allocation meets every constraint. Enough alone: raise the money available "
        "(total minus reserve) by 1500.00; or lower target_return by 3000.00.")


def test_an_unreachable_target_return_names_what_is_enough_alone(client):
    # Trial 18d (`obj_min_spend_9000000000`): the budget raised, caps raised and the target
    # lowered were "all of these together", though the target lowered a little more needs
    # none of the rest (the optimizer's own test works the amounts out).
    body = {"currency": "USD", "total": "300000", "objective": "min_spend",
            "target_return": "10000000", "channels": [
                {"id": "search", "max": "100000", "response": {"type": "linear", "roi": "2"}},
                {"id": "video", "response": {"type": "hill", "beta": "1000000", "k": "100000",
                                             "alpha": "1"}}]}
    response = post(client, body)
    assert response.status_code == 422, response.text
    problem = response.json()
    alone = [c for c in problem["conflicts"] if c["alone"]]
    assert [c["constraint"] for c in alone] == ["target_return"]
    assert len(problem["conflicts"]) > 2
    assert problem["detail"].startswith(
        f"No allocation meets every constraint. Enough alone: {alone[0]['detail']}. Or the "
        f"smallest change that makes one possible, all of these together: ")
