"""Money arithmetic: `Decimal` amounts in an ISO 4217 currency, exact to its minor unit.

Pure (no web or database library), so the optimizer may use it too; the API field types
built on it live in `shared/types.py`."""
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

# The largest amount taken or stated. Written out, so that a 422 says "less than or equal to
# 1000000000000000", not "1E+15".
MAX_AMOUNT = Decimal("1000000000000000")

# ISO 4217 codes that are not money a budget can be kept in: precious metals, the IMF's SDR,
# bond-market units, the test code and "no currency". CLDR lists them beside real currencies.
_NOT_MONEY = frozenset({"XAG", "XAU", "XPD", "XPT", "XDR", "XBA", "XBB", "XBC", "XBD", "XSU",
                        "XUA", "XTS", "XXX", "XEU", "XFO", "XFU", "XRE", "XAD"})


@cache
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies()) - _NOT_MONEY


def check_currency(code: str) -> str:
    """Return `code` if it is an ISO 4217 currency, else raise ValueError saying so."""
    if code not in _known_currencies():
        raise ValueError(f"{code!r} is not an ISO 4217 currency code; use e.g. USD, EUR, JPY")
    return code


@cache   # babel's lookup per amount was a fifth of a year's variance answer (13,000 amounts)
def minor_units(currency: str) -> int:
    """Return how many decimals the currency uses (USD 2, JPY 0, KWD 3)."""
    return get_currency_precision(check_currency(currency))


@cache
def quantum(decimals: int) -> Decimal:
    """The smallest amount with `decimals` decimals: 0.01 for 2, 1 for 0."""
    return Decimal(1).scaleb(-decimals)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round `amount` to the currency's minor unit (half to even, as accounting does)."""
    return amount.quantize(quantum(minor_units(currency)), rounding=ROUND_HALF_EVEN)


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
    return Decimal(units).scaleb(-decimals).quantize(quantum(decimals))


def minor_text(units: int, decimals: int) -> str:
    """Write an amount of `units` minor units with `decimals` decimals as the API writes money
    (`from_minor`'s Decimal in fixed point: "-1250.05"), by integer arithmetic: a year's
    variance writes 13,000 amounts, and a Decimal for each was a fifth of its time."""
    digits = str(units)
    if units >= 0 and 0 < decimals < len(digits):   # most amounts: only a point to put in
        return f"{digits[:-decimals]}.{digits[-decimals:]}"
    if decimals == 0:
        return digits
    whole, part = divmod(-units if units < 0 else units, 10 ** decimals)
    return f"{'-' if units < 0 else ''}{whole}.{part:0{decimals}d}"
