"""API field types every service shares: each rule (length, characters, range) defined once.

Tables take their column lengths from the same constants (`ID_LENGTH`, `NAME_LENGTH`, ...),
so a value the API accepts always fits its column on SQLite and PostgreSQL alike."""
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from shared.money import check_currency

ID_LENGTH = 100
NAME_LENGTH = 200
MAX_AMOUNT = Decimal("1e15")


def _printable(value: str) -> str:
    # PostgreSQL refuses NUL in text; other control characters break CSV and iCalendar output.
    # Refusing them before the database gives both backends the same rule.
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value) or "\x7f" in value:
        raise ValueError("must not contain control characters such as NUL (\\u0000)")
    return value


def text(max_length: int, *, min_length: int = 1) -> object:
    """A text field of at most `max_length` characters, without control characters."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length),
                     AfterValidator(_printable)]


Identifier = Annotated[str, Field(min_length=1, max_length=ID_LENGTH),
                       AfterValidator(_printable)]
Name = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH), AfterValidator(_printable)]


class StrictModel(BaseModel):
    """A request shape that refuses unknown fields, so a typo is a 422, not silently ignored."""
    model_config = ConfigDict(extra="forbid")


def _decimal_string(value: Decimal) -> str:
    return format(value, "f")


Currency = Annotated[str, Field(min_length=3, max_length=3, examples=["USD"]),
                     AfterValidator(check_currency)]
# Accepts a JSON number or a decimal string; always written back as a decimal string.
Money = Annotated[Decimal, Field(allow_inf_nan=False, examples=["1250000.00"]),
                  PlainSerializer(_decimal_string, return_type=str, when_used="json")]
Amount = Annotated[Decimal, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
Rate = Annotated[Decimal, Field(ge=0, le=Decimal("1e6"), allow_inf_nan=False)]
Share = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
# Ratios (ROI, shadow prices) go out as decimal strings, like money.
Ratio = Annotated[Decimal, PlainSerializer(_decimal_string, return_type=str, when_used="json")]
