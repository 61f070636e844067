"""Four eyes: actions that wait for a second key holder, and the money they hold.

A budget's `four_eyes_above` makes a reserve draw above it, and the approval of a plan that
spends more than it, a pending action: nothing is effective until a principal other than its
author confirms it (`ledger.approvals`). A pending draw holds its money: the reserve counts it
as taken from the moment it is asked for, so a confirmation never fails for lack of money and
concurrent requests can never promise more than the reserve holds; cancelling frees it."""
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, select

from services.budget.ledger.tables import Budget, PendingAction
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.money import from_minor
from shared.requests import current_request_id
from shared.types import Money

PendingKind = Literal["draw", "approval"]
PendingStatus = Literal["pending", "confirmed", "cancelled"]


class PendingActionPublic(BaseModel):
    id: str
    budget_id: str
    kind: PendingKind = Field(description="A reserve `draw`, or the `approval` of a plan.")
    status: PendingStatus
    amount: Money = Field(description="The draw's amount, or the plan's spend.")
    plan_number: int | None = Field(description="The plan to approve; for a confirmed draw, "
                                    "the plan it was added to.")
    draw: dict[str, Any] | None = Field(description="The draw as it will be entered: "
                                        "channel_id or campaign_id, period, reason.")
    requested_by: str
    requested_by_name: str | None = Field(description="The name of the requester's API key.")
    requested_at: datetime
    decided_by: str | None = Field(description="Who confirmed or cancelled it.")
    decided_by_name: str | None = Field(description="The name of the decider's API key.")
    decided_at: datetime | None
    entry_id: str | None = Field(description="The reserve entry a confirmed draw made.")


def needs_second_key(budget: Budget, amount_minor: int) -> bool:
    """Whether an action of this amount waits for a second key holder."""
    return budget.four_eyes_above_minor is not None and amount_minor > budget.four_eyes_above_minor


def held_minor(session: Session, budget_id: str) -> int:
    """The money pending draws hold, in minor units."""
    held = session.exec(select(func.coalesce(func.sum(PendingAction.amount_minor), 0)).where(
        PendingAction.budget_id == budget_id, PendingAction.kind == "draw",
        PendingAction.status == "pending")).one()
    return int(held)


def stage(session: Session, budget: Budget, *, kind: PendingKind, amount_minor: int,
          caller: Caller, plan_number: int | None = None,
          draw: dict[str, Any] | None = None) -> PendingAction:
    """Stage a pending action in the caller's transaction."""
    action = PendingAction(id=new_id("pend"), budget_id=budget.id, kind=kind,
                           amount_minor=amount_minor, plan_number=plan_number, draw=draw,
                           status="pending", requested_by=caller.principal,
                           requested_by_name=caller.name,
                           request_id=current_request_id())
    session.add(action)
    return action


def pending_public(budget: Budget, action: PendingAction) -> PendingActionPublic:
    return PendingActionPublic(**action.model_dump(exclude={"amount_minor"}),
                               amount=from_minor(action.amount_minor, budget.currency))
