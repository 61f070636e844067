"""The emergency reserve: a ledger of draws and their reversals, never edited or deleted.

Every draw locks its budget's row first, so concurrent draws are checked one after another
against what is really left, and the reserve never goes below zero. A draw above the budget's
four-eyes threshold is a pending action that holds its money until a second key holder
confirms it (`ledger.pending`, `ledger.approvals`): what is left counts it as taken.
"""
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func
from sqlmodel import Session, select

from services.budget import optimizer
from services.budget.fields import PeriodId, Reason
from services.budget.ledger import audit, campaigns, pending
from services.budget.ledger.loaders import budget_periods, get_budget, get_channel
from services.budget.ledger.pending import PendingActionPublic
from services.budget.ledger.periods import period_of
from services.budget.ledger.tables import Budget, PendingAction, ReserveEntry, page_order, utcnow
from shared.errors import Conflict, NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.money import from_minor, minor_units, quantum, to_minor
from shared.pagination import Page, paginate
from shared.requests import current_request_id
from shared.types import Amount, Identifier, Money, StrictModel

WHY = "Why: it is kept with the entry."


class DrawCreate(StrictModel):
    amount: Amount = Field(gt=0)
    reason: Reason = Field(description=WHY)  # type: ignore[valid-type]
    channel_id: Identifier | None = Field(None, description="The channel that gets the money "
                                          "(its amount in the current plan grows by it) ...")
    campaign_id: Identifier | None = Field(None, description="... or the campaign.")
    period: PeriodId | None = Field(  # type: ignore[valid-type]
        None, description="Reporting period the money is for; default: the period of today "
                          "(the first or last when outside).")

    @model_validator(mode="after")
    def _one_target(self) -> "DrawCreate":
        if (self.channel_id is None) == (self.campaign_id is None):
            raise ValueError("give exactly one of channel_id or campaign_id")
        return self


class ReversalCreate(StrictModel):
    reason: Reason = Field(description=WHY)  # type: ignore[valid-type]


class ReserveEntryPublic(BaseModel):
    id: str
    budget_id: str
    kind: str = Field(description="`draw`, or `reversal` of the draw in `reverses_id`.")
    amount: Money = Field(description="Taken from the reserve; negative for a reversal.")
    channel_id: str | None
    campaign_id: str | None
    plan_number: int | None = Field(description="The plan in force when the entry was made.")
    period: str | None
    reason: str
    reverses_id: str | None
    author: str
    author_name: str | None = Field(description="The name of the author's API key.")
    confirmed_by: str | None = Field(description="The second key holder who confirmed a "
                                     "four-eyes draw.")
    confirmed_by_name: str | None = Field(description="The name of the confirmer's API key.")
    request_id: str | None
    created_at: datetime


class ReservePublic(BaseModel):
    currency: str
    amount: Money
    drawn: Money
    pending: Money = Field(description="Held by draws waiting for a second key holder.")
    remaining: Money = Field(description="amount − drawn − pending.")


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def reserve_amount(budget: Budget) -> Decimal:
    """What the budget's reserve policy holds back (the optimizer's rule, applied to its total)."""
    policy = optimizer.Reserve(percent=_decimal(budget.reserve.get("percent")),
                               amount=_decimal(budget.reserve.get("amount")))
    decimals = minor_units(budget.currency)
    # A fixed amount is kept as the caller wrote it ("150000"); it is shown with the
    # currency's decimals like every other amount.
    return policy.of(from_minor(budget.total_minor, budget.currency), decimals) \
        .quantize(quantum(decimals))


def reserve_drawn_minor(session: Session, budget_id: str) -> int:
    """Net of draws and reversals so far, in minor units."""
    drawn = session.exec(select(func.coalesce(func.sum(ReserveEntry.amount_minor), 0))
                         .where(ReserveEntry.budget_id == budget_id)).one()
    return int(drawn)


def reserve_left_minor(session: Session, budget: Budget) -> int:
    """What the reserve still holds, pending draws counted as taken, in minor units (negative
    only mid-change, never stored)."""
    return (to_minor(reserve_amount(budget), budget.currency)
            - reserve_drawn_minor(session, budget.id) - pending.held_minor(session, budget.id))


def _public(budget: Budget, entry: ReserveEntry) -> ReserveEntryPublic:
    return ReserveEntryPublic(**entry.model_dump(exclude={"amount_minor"}),
                              amount=from_minor(entry.amount_minor, budget.currency))


def read_reserve(*, session: Session, budget_id: str) -> ReservePublic:
    """Return how much the reserve holds, how much was drawn and what is left."""
    budget = get_budget(session, budget_id)
    amount = reserve_amount(budget)
    drawn = from_minor(reserve_drawn_minor(session, budget.id), budget.currency)
    held = from_minor(pending.held_minor(session, budget.id), budget.currency)
    return ReservePublic(currency=budget.currency, amount=amount, drawn=drawn, pending=held,
                         remaining=amount - drawn - held)


def draw(*, session: Session, idempotency: Idempotency, budget_id: str, draw_in: DrawCreate,
         caller: Caller) -> ReserveEntryPublic | PendingActionPublic:
    """Move money from the reserve to a channel or campaign, or hold it for a second key
    holder when the draw is above the budget's four-eyes threshold."""
    budget = get_budget(session, budget_id, lock=True)
    try:
        amount = to_minor(draw_in.amount, budget.currency)
    except ValueError as error:
        raise invalid_fields([("amount", str(error))]) from None
    periods = budget_periods(budget)
    if draw_in.period is None:
        period = period_of(date.today(), periods).id
    elif draw_in.period in {p.id for p in periods}:
        period = draw_in.period
    else:
        raise invalid_fields([("period", f"{draw_in.period!r} is not a period of this budget; "
                                         f"its periods run {periods[0].id} to {periods[-1].id}")])
    if draw_in.campaign_id is not None and draw_in.campaign_id not in budget.campaign_ids:
        raise invalid_fields([("campaign_id", f"campaign {draw_in.campaign_id!r} is not linked to "
                                              "this budget; add it to the budget's campaign_ids")])
    _check_target(session, budget, draw_in.channel_id, draw_in.campaign_id)
    left = reserve_left_minor(session, budget)
    if amount > left:
        remaining = from_minor(left, budget.currency)
        raise Conflict(f"The reserve has only {remaining} {budget.currency} left; draw at most "
                       "that, or raise the budget's reserve.", remaining=format(remaining, "f"))
    target: dict[str, Any] = {"channel_id": draw_in.channel_id,
                              "campaign_id": draw_in.campaign_id, "period": period,
                              "reason": draw_in.reason}
    if pending.needs_second_key(budget, amount):
        action = pending.stage(session, budget, kind="draw", amount_minor=amount, caller=caller,
                               draw=target)
        _touch(session, budget)
        session.flush()
        held = pending.pending_public(budget, action)
        audit.record(session, budget_id=budget.id, caller=caller, action="reserve.draw_requested",
                     target=action.id, changes={"after": held})
        idempotency.record(session, held, status_code=202)
        session.commit()
        return held
    entry = ReserveEntry(id=new_id("draw"), budget_id=budget.id, kind="draw", amount_minor=amount,
                         plan_number=budget.current_plan, author=caller.principal,
                         author_name=caller.name, request_id=current_request_id(), **target)
    public = _stage(session, budget, entry, caller)
    idempotency.record(session, public)
    session.commit()
    return public


def _check_target(session: Session, budget: Budget, channel_id: str | None,
                  campaign_id: str | None) -> None:
    """Raise Conflict if the draw's channel exited or its campaign closed."""
    if channel_id is not None:
        channel = get_channel(session, budget.id, channel_id)
        if channel.state == "exited":
            raise Conflict(f"Channel {channel.name!r} has exited; move it back to testing "
                           "before giving it money.")
    if campaign_id is not None \
            and (closed := campaigns.closed_campaign(session, campaign_id)) is not None:
        raise Conflict(f"Campaign {closed.name!r} ({closed.campaign_id}) is {closed.status}: a "
                       f"{closed.status} campaign takes no more money from the reserve. Draw for "
                       "another campaign or a channel.", campaign_status=closed.status)


def enter_pending_draw(session: Session, budget: Budget, action: PendingAction,
                       caller: Caller) -> ReserveEntryPublic:
    """Stage the draw a second key holder confirms (its money was held since it was asked
    for, so it is still there); its channel or campaign must still take money."""
    assert action.draw is not None
    _check_target(session, budget, action.draw["channel_id"], action.draw["campaign_id"])
    entry = ReserveEntry(id=new_id("draw"), budget_id=budget.id, kind="draw",
                         amount_minor=action.amount_minor, plan_number=budget.current_plan,
                         author=action.requested_by, author_name=action.requested_by_name,
                         confirmed_by=caller.principal, confirmed_by_name=caller.name,
                         request_id=current_request_id(), **action.draw)
    return _stage(session, budget, entry, caller)


def reverse(*, session: Session, idempotency: Idempotency, budget_id: str, draw_id: str,
            reversal_in: ReversalCreate, caller: Caller) -> ReserveEntryPublic:
    """Give a draw's money back to the reserve with a compensating entry."""
    budget = get_budget(session, budget_id, lock=True)
    original = session.get(ReserveEntry, draw_id)
    if original is None or original.budget_id != budget.id or original.kind != "draw":
        raise NotFound(f"Budget {budget_id!r} has no draw {draw_id!r}; list its entries at "
                       f"/api/v1/budget/budgets/{budget_id}/reserve/entries.")
    done = session.exec(select(ReserveEntry.id).where(ReserveEntry.reverses_id == draw_id)).first()
    if done is not None:
        raise Conflict(f"Draw {draw_id!r} was already reversed by {done!r}; a draw is reversed "
                       "at most once.", reversal_id=done)
    entry = ReserveEntry(id=new_id("draw"), budget_id=budget.id, kind="reversal",
                         amount_minor=-original.amount_minor, channel_id=original.channel_id,
                         campaign_id=original.campaign_id, plan_number=original.plan_number,
                         period=original.period, reason=reversal_in.reason,
                         reverses_id=original.id, author=caller.principal,
                         author_name=caller.name, request_id=current_request_id())
    public = _stage(session, budget, entry, caller)
    idempotency.record(session, public)
    session.commit()
    return public


def _touch(session: Session, budget: Budget) -> None:
    # The reserve is part of the budget's representation, so its version moves too.
    budget.version += 1
    budget.updated_at = utcnow()
    session.add(budget)


def _stage(session: Session, budget: Budget, entry: ReserveEntry,
           caller: Caller) -> ReserveEntryPublic:
    _touch(session, budget)
    session.add(entry)
    session.flush()
    public = _public(budget, entry)
    audit.record(session, budget_id=budget.id, caller=caller, action=f"reserve.{entry.kind}",
                 target=entry.id, changes={"after": public})
    return public


def list_entries(*, session: Session, budget_id: str, limit: int,
                 cursor: str | None) -> Page[ReserveEntryPublic]:
    """Return the reserve's ledger, oldest first."""
    budget = get_budget(session, budget_id)
    rows, next_cursor = paginate(session, select(ReserveEntry).where(ReserveEntry.budget_id == budget.id),
                                 order_by=page_order(ReserveEntry.id), limit=limit, cursor=cursor)
    return Page[ReserveEntryPublic](items=[_public(budget, r) for r in rows], next_cursor=next_cursor)
