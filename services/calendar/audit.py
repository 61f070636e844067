"""The calendar's append-only audit log: who changed what, when, under which request id, and
the state before and after (the database refuses UPDATE and DELETE on it)."""
from datetime import datetime
from typing import Any, cast

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Session, select

from services.calendar.models import AuditEntry
from shared.internal_auth import Caller
from shared.pagination import Page, paginate
from shared.requests import current_request_id

AUDIT_ORDER = [cast(InstrumentedAttribute[Any], AuditEntry.id)]


class CampaignAuditEntryPublic(BaseModel):
    id: int
    at: datetime
    principal: str
    principal_name: str | None
    role: str
    request_id: str | None
    action: str
    target: str
    campaign_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def caller_name(caller: Caller) -> str | None:
    """The display name of the caller's key, once the gateway passes one."""
    # `Caller` gains `name` when the gateway sends it (issue 15, item 6); until then, none.
    return getattr(caller, "name", None)


def record(session: Session, *, caller: Caller, action: str, target: str,
           campaign_id: str | None, before: Any = None, after: Any = None) -> None:
    """Stage one audit entry in the caller's transaction: it commits with the change or not
    at all."""
    session.add(AuditEntry(principal=caller.principal, principal_name=caller_name(caller),
                           role=caller.role, request_id=current_request_id(), action=action,
                           target=target, campaign_id=campaign_id,
                           before=jsonable_encoder(before), after=jsonable_encoder(after)))


def list_entries(*, session: Session, campaign_id: str | None, limit: int,
                 cursor: str | None) -> Page[CampaignAuditEntryPublic]:
    """List the audit log, oldest first, optionally for one campaign."""
    statement = select(AuditEntry)
    if campaign_id is not None:
        statement = statement.where(AuditEntry.campaign_id == campaign_id)
    rows, next_cursor = paginate(session, statement, order_by=AUDIT_ORDER, limit=limit,
                                 cursor=cursor)
    items = [CampaignAuditEntryPublic.model_validate(r, from_attributes=True) for r in rows]
    return Page[CampaignAuditEntryPublic](items=items, next_cursor=next_cursor)
