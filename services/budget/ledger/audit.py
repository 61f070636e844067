"""The append-only audit log: who changed what in a budget, when, under which request id."""
from datetime import datetime
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from services.budget.ledger.loaders import get_budget
from services.budget.ledger.tables import AuditEntry, page_order
from shared.internal_auth import Caller
from shared.pagination import Page, paginate
from shared.requests import current_request_id


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    principal: str
    principal_name: str | None = Field(description="The name of the principal's API key "
                                       "(null for a service, or a key without a name).")
    role: str
    request_id: str | None
    action: str
    target: str
    changes: dict[str, Any]


def record(session: Session, *, budget_id: str, caller: Caller, action: str, target: str,
           changes: dict[str, Any]) -> None:
    """Stage one audit entry in the caller's transaction: it commits with the change or not at all."""
    session.add(AuditEntry(budget_id=budget_id, principal=caller.principal,
                           principal_name=caller.name, role=caller.role,
                           request_id=current_request_id(), action=action, target=target,
                           changes=jsonable_encoder(changes)))


def list_entries(*, session: Session, budget_id: str, limit: int,
                 cursor: str | None) -> Page[AuditEntryPublic]:
    """Return a budget's audit entries, oldest first."""
    get_budget(session, budget_id)
    rows, next_cursor = paginate(session, select(AuditEntry).where(AuditEntry.budget_id == budget_id),
                                 order_by=page_order(AuditEntry.id), limit=limit, cursor=cursor)
    return Page[AuditEntryPublic](items=[AuditEntryPublic.model_validate(r, from_attributes=True)
                                         for r in rows], next_cursor=next_cursor)


def diff(before: BaseModel, after: BaseModel) -> dict[str, Any]:
    """The fields that changed between two versions, for the audit log."""
    old, new = before.model_dump(mode="json", by_alias=True), after.model_dump(mode="json", by_alias=True)
    return {key: {"from": old[key], "to": new[key]} for key in new
            if old[key] != new[key] and key not in ("version", "updated_at")}
