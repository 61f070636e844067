from sqlmodel import SQLModel

from shared.db import service_registry
from shared.idempotency import idempotency_table


class PlannerModel(SQLModel, registry=service_registry()):
    """Base of every planner table: they live on the planner service's own metadata."""


idempotency_record = idempotency_table(PlannerModel.metadata)
