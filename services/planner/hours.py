"""Hours as the API writes them (decimals, two places) and as the engine and the tables keep
them (integer hundredths of an hour, `engine.UNIT`)."""
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from services.planner.engine import UNIT
from shared.types import Number, Ratio

# On the shared exact decimal: a JSON number or a plain decimal string (" 5 " and "1_000" are
# refused, as for amounts), never NaN or infinity.
Hours = Annotated[Number, Field(gt=0, le=100_000, decimal_places=2)]
DayHours = Annotated[Number, Field(gt=0, le=24 * 100, decimal_places=2)]
# Written back as a decimal string ("16.00"), the rule for every exact quantity in the API.
HoursOut = Ratio


def hundredths(hours: Decimal) -> int:
    """Hundredths of an hour in `hours` (validated to two decimal places)."""
    return int(hours * UNIT)


def hours_out(hundredths: int) -> Decimal:
    """Hours with two decimal places from hundredths of an hour."""
    return (Decimal(hundredths) / UNIT).quantize(Decimal("0.01"))
