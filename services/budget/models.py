from sqlmodel import SQLModel

from shared.db import service_registry
from shared.idempotency import idempotency_table


class BudgetModel(SQLModel, registry=service_registry()):
    """Base of every budget table: they live on the budget service's own metadata."""


idempotency_record = idempotency_table(BudgetModel.metadata)
