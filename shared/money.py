"""Money: `Decimal` amounts in an ISO 4217 currency, exact to its minor unit."""
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Annotated

from babel.numbers import get_currency_precision, list_currencies
from pydantic import AfterValidator, Field, PlainSerializer


@cache
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def check_currency(code: str) -> str:
    """Return `code` if it is an ISO 4217 currency, else raise ValueError saying so."""
    if code not in _known_currencies():
        raise ValueError(f"{code!r} is not an ISO 4217 currency code; use e.g. USD, EUR, JPY")
    return code


def minor_units(currency: str) -> int:
    """Return how many decimals the currency uses (USD 2, JPY 0, KWD 3)."""
    return get_currency_precision(check_currency(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round `amount` to the currency's minor unit (half to even, as accounting does)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


def _to_json(amount: Decimal) -> str:
    return format(amount, "f")


Currency = Annotated[str, Field(min_length=3, max_length=3, examples=["USD"]),
                     AfterValidator(check_currency)]
# Accepts a JSON number or a decimal string; always written back as a decimal string.
Money = Annotated[Decimal, Field(allow_inf_nan=False, examples=["1250000.00"]),
                  PlainSerializer(_to_json, return_type=str, when_used="json")]


def to_minor(amount: Decimal, currency: str) -> int:
    """Return `amount` in the currency's minor unit (cents); raise ValueError if it has more
    decimals than the currency allows. Stored money is an integer: exact on every database."""
    scaled = amount.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows "
                         f"({minor_units(currency)})")
    return int(scaled)


def from_minor(units: int, currency: str) -> Decimal:
    """Return an amount stored in minor units as a Decimal with the currency's decimals."""
    decimals = minor_units(currency)
    return Decimal(units).scaleb(-decimals).quantize(Decimal(1).scaleb(-decimals))
