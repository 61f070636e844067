"""The variance writes its figures as text by integer arithmetic: each must be the text the
API's Decimal types wrote (`from_minor` money, 4-place ratios, no "-0"), and its JSON exactly
what `VariancePublic` writes."""
from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from services.budget.ledger.variance import RATIO_PLACES, VariancePublic, _ratio_text
from shared.money import from_minor, minor_text, minor_units
from shared.types import Money, Ratio
from tests.budget.test_actuals import LINEAR, rows

MONEY = TypeAdapter(Money)
RATIO = TypeAdapter(Ratio | None)
# Beyond any budget (1e15 of a currency in its minor units, times 100 for a percent) and
# across the point where `_ratio_text` hands over to Decimal division.
UNITS = st.integers(min_value=-10**24, max_value=10**24)


@given(UNITS, st.sampled_from(["USD", "JPY", "KWD", "CLF"]))
@example(0, "USD")
@example(-5, "USD")
@example(7, "KWD")
@example(-10**18, "JPY")
def test_money_text_is_the_decimal_the_api_wrote(units, currency):
    written = MONEY.dump_python(MONEY.validate_python(from_minor(units, currency)), mode="json")
    assert minor_text(units, minor_units(currency)) == written


def _decimal_ratio(numerator: int, denominator: int) -> str | None:
    """What the variance wrote before: a Decimal quotient quantized, through the Ratio type
    (validated, as a model field is, then written)."""
    value = (None if denominator == 0
             else (Decimal(numerator) / Decimal(denominator)).quantize(RATIO_PLACES))
    return RATIO.dump_python(RATIO.validate_python(value), mode="json")


@given(UNITS, UNITS)
@example(-1, 30000_00)          # -0.0000333…: "0.0000", never "-0.0000"
@example(1, 20000)              # a tie at 0.00005: half to even, down
@example(3, 20000)              # 0.00015: up
@example(-3, 20000)
@example(5, 0)
@example(10**22 + 1, 3)         # the Decimal path
def test_ratio_text_is_the_decimal_the_api_wrote(numerator, denominator):
    assert _ratio_text(numerator, denominator) == _decimal_ratio(numerator, denominator)


@given(st.integers(min_value=1, max_value=10**17), st.integers(min_value=-10**6, max_value=10**6))
def test_ratio_ties_round_as_decimal_does(denominator, k):
    # numerator / denominator lands exactly on a tie k/10000 + 0.00005 whenever 20000 divides
    # (2k + 1) × denominator: the cases where rounding could differ.
    numerator = (2 * k + 1) * denominator
    assert _ratio_text(numerator, 20000 * denominator) == _decimal_ratio(numerator,
                                                                         20000 * denominator)


def test_the_variance_json_is_what_its_model_writes(api):
    budget, channels = api.budget_with_channels(
        [LINEAR[0], LINEAR[1] | {"name": "Télé \"prime\" — -x"}], total="2400",
        reserve={"amount": "400"}, end_date="2027-03-31", rules={"alert_percent": "12.5"})
    api.approved_plan(budget["id"])
    api.ok(api.post(f"/budgets/{budget['id']}/reserve/draws",
                    {"amount": "100", "reason": "x", "channel_id": channels["alpha"]["id"],
                     "period": "2027-02"}), 201)
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(channels, {
        "alpha": [("300", "600"), ("480", "700")],
        "Télé \"prime\" — -x": [("430", "900"), ("0", "0")]})}, role="finance"))
    response = api.get(f"/budgets/{budget['id']}/variance")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    report = VariancePublic.model_validate_json(response.content)
    assert report.alerts and report.burn[0].burn_rate is not None   # every part has content
    assert response.content == report.model_dump_json(by_alias=True).encode()
