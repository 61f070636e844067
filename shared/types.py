"""API field types every service shares: each rule (length, characters, range) defined once.

Tables take their column lengths from the same constants (`ID_LENGTH`, `NAME_LENGTH`, ...),
so a value the API accepts always fits its column on SQLite and PostgreSQL alike."""
import math
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from shared.money import MAX_AMOUNT, check_currency

ID_LENGTH = 100
NAME_LENGTH = 200


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


_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _plain_decimal(value: object) -> object:
    # Python's Decimal would also take " 5 " or "1_000": a finance system should hear about
    # those, not have them guessed.
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("must be a decimal number such as 1250000.00: digits, one point, "
                         "no spaces or separators")
    return value


def _unsigned_zero(value: Decimal) -> Decimal:
    # "-0" is 0, written back as "0.00", never "-0.00".
    return abs(value) if value == 0 else value


# Every decimal the API takes: a JSON number or a plain decimal string, never NaN or infinity.
_EXACT = (Field(allow_inf_nan=False), BeforeValidator(_plain_decimal),
          AfterValidator(_unsigned_zero))

Currency = Annotated[str, Field(min_length=3, max_length=3, examples=["USD"]),
                     AfterValidator(check_currency)]
# Accepts a JSON number or a decimal string; always written back as a decimal string.
Money = Annotated[Decimal, *_EXACT, Field(examples=["1250000.00"]),
                  PlainSerializer(_decimal_string, return_type=str, when_used="json")]
Number = Annotated[Decimal, *_EXACT]
Amount = Annotated[Decimal, *_EXACT, Field(ge=0, le=MAX_AMOUNT)]
Rate = Annotated[Decimal, *_EXACT, Field(ge=0, le=Decimal("1000000"))]
Share = Annotated[Decimal, *_EXACT, Field(ge=0, le=1)]
Percent = Annotated[Decimal, *_EXACT, Field(ge=0, le=100)]


MAX_SOLVE_SECONDS = 60


def _seconds(value: Any, handler: ValidatorFunctionWrapHandler) -> float:
    """One message for every time limit out of range or not a number: pydantic's own said
    "less than or equal to 60" for "NaN", and nothing of seconds."""
    try:
        seconds = handler(value)
    except ValidationError:
        seconds = math.nan
    if not isinstance(seconds, float) or not 0 < seconds <= MAX_SOLVE_SECONDS:
        raise PydanticCustomError(
            "time_limit", "time_limit_seconds must be a number of seconds above 0 and at most "
            "{most}; {value} is not", {"most": MAX_SOLVE_SECONDS, "value": repr(value)[:40]})
    return seconds


# A solve's time limit, in seconds (every long call takes one).
TimeLimit = Annotated[float, Field(gt=0, le=MAX_SOLVE_SECONDS, allow_inf_nan=False),
                      WrapValidator(_seconds)]
# Ratios (ROI, shadow prices) go out as decimal strings, like money.
Ratio = Annotated[Decimal, *_EXACT,
                  PlainSerializer(_decimal_string, return_type=str, when_used="json")]
