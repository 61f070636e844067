from sqlmodel import SQLModel

from shared.db import service_registry
from shared.idempotency import idempotency_table


class CalendarModel(SQLModel, registry=service_registry()):
    """Base of every calendar table: they live on the calendar service's own metadata."""


idempotency_record = idempotency_table(CalendarModel.metadata)
