"""The budget API's own texts, each as long as the column that stores it.

Every number and the other shared fields come from `shared.types`."""
from services.budget.ledger.tables import PERIOD_LENGTH, REASON_LENGTH
from shared.types import text

Reason = text(REASON_LENGTH)
PeriodId = text(PERIOD_LENGTH)
