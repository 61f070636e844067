from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from shared.money import check_currency, minor_units, quantize
from shared.types import Currency, Money


class Amount(BaseModel):
    currency: Currency
    total: Money


def test_minor_units_follow_iso_4217():
    assert (minor_units("USD"), minor_units("JPY"), minor_units("KWD")) == (2, 0, 3)


def test_check_currency_rejects_unknown_code():
    with pytest.raises(ValueError, match="not an ISO 4217 currency"):
        check_currency("XYZ")


@pytest.mark.parametrize("code", ["XXX", "XTS", "XAU", "XDR"])
def test_codes_that_are_not_money_are_not_currencies(code):
    with pytest.raises(ValueError, match="not an ISO 4217 currency"):
        check_currency(code)


@pytest.mark.parametrize("code", ["XOF", "XAF", "XCD", "XPF"])
def test_the_franc_zones_and_the_east_caribbean_dollar_are_currencies(code):
    assert check_currency(code) == code


def test_quantize_rounds_half_to_even_at_the_minor_unit():
    assert quantize(Decimal("10.005"), "USD") == Decimal("10.00")
    assert quantize(Decimal("10.015"), "USD") == Decimal("10.02")
    assert str(quantize(Decimal("1250000.4"), "JPY")) == "1250000"


def test_money_accepts_numbers_and_strings_and_writes_strings():
    from_number = Amount.model_validate_json('{"currency": "USD", "total": 1250000.5}')
    from_string = Amount.model_validate_json('{"currency": "USD", "total": "1250000.50"}')
    assert from_number.total == from_string.total == Decimal("1250000.5")
    assert from_string.model_dump(mode="json") == {"currency": "USD", "total": "1250000.50"}


@pytest.mark.parametrize("bad", ['"NaN"', '"Infinity"', '"ten"', "null"])
def test_money_rejects_non_finite_and_non_numeric(bad):
    with pytest.raises(ValidationError):
        Amount.model_validate_json(f'{{"currency": "USD", "total": {bad}}}')


def test_unknown_currency_is_a_field_error():
    with pytest.raises(ValidationError, match="currency"):
        Amount.model_validate_json('{"currency": "ABC", "total": "1"}')
