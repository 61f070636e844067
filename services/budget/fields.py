"""The budget API's number and text fields, on top of `shared.types`.

Money and ratios arrive as JSON numbers or decimal strings. A string must be a plain decimal
(`"1250000.00"`, `"2.1"`, `"1e6"`): Python's `Decimal` would also take `" 5 "` or `"1_000"`,
which a finance system should hear about, not have guessed. Zero has no sign: `"-0"` is 0 and
is written back as `"0.00"`, never `"-0.00"`. (These rules belong in `shared.types` once the
other services want them too.)"""
import re
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from services.budget.ledger.tables import PERIOD_LENGTH, REASON_LENGTH
from shared import types
from shared.types import text

_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _plain_decimal(value: object) -> object:
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("must be a decimal number such as 1250000.00: digits, one point, "
                         "no spaces or separators")
    return value


def _unsigned_zero(value: Decimal) -> Decimal:
    return abs(value) if value == 0 else value


_EXACT = (BeforeValidator(_plain_decimal), AfterValidator(_unsigned_zero))

Number = Annotated[Decimal, Field(allow_inf_nan=False), *_EXACT]
Amount = Annotated[types.Amount, *_EXACT]
Rate = Annotated[types.Rate, *_EXACT]
Share = Annotated[types.Share, *_EXACT]
Ratio = Annotated[types.Ratio, Field(allow_inf_nan=False), *_EXACT]
Percent = Annotated[Number, Field(ge=0, le=100)]

# The API's texts, each as long as its column.
Reason = text(REASON_LENGTH)
PeriodId = text(PERIOD_LENGTH)
