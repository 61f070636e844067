"""Hours as the API writes them (decimals, two places) and as the engine and the tables keep
them (integer hundredths of an hour, `engine.UNIT`)."""
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from services.planner.engine import UNIT
from shared.types import Ratio

Hours = Annotated[Decimal, Field(gt=0, le=100_000, allow_inf_nan=False, decimal_places=2)]
DayHours = Annotated[Decimal, Field(gt=0, le=24 * 100, allow_inf_nan=False, decimal_places=2)]
# Written back as a decimal string ("16.00"), the rule for every exact quantity in the API.
HoursOut = Ratio


def hundredths(hours: Decimal) -> int:
    """Hundredths of an hour in `hours` (validated to two decimal places)."""
    return int(hours * UNIT)


def hours_out(hundredths: int) -> Decimal:
    """Hours with two decimal places from hundredths of an hour."""
    return (Decimal(hundredths) / UNIT).quantize(Decimal("0.01"))
