"""Allocation plans: the optimizer run on a budget's channels, stored as immutable numbered
versions; one approved plan is current, and reserve draws add to its channels."""
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func
from sqlmodel import Session, select

from services.budget import audit, service
from services.budget.budgets import budget_periods, get_budget, reserve_left_minor
from services.budget.models import Budget, Channel, Plan, PlanLine, ReserveEntry, utcnow
from services.budget.optimization import (OptimizationChannel, OptimizationGroup,
                                          OptimizationPublic, OptimizationRequest, IncrementalMode,
                                          Rate, ReservePolicy)
from services.budget.periods import apportion
from shared.errors import Conflict, NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.money import from_minor, to_minor
from shared.types import Money
from shared.pagination import Page, paginate
from shared.workers import WorkerPool


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["zero_based", "incremental"] = Field(
        "zero_based", description="Zero-based ignores history; incremental keeps each channel "
                                  "within ± tolerance_percent of the current plan.")
    tolerance_percent: Decimal | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    objective: Literal["max_return", "min_spend", "max_profit", "target_roi"] = "max_return"
    target_return: Decimal | None = Field(None, ge=0, allow_inf_nan=False)
    target_roi: Rate | None = None
    phasing: dict[str, Rate] | None = Field(
        None, description="Weight per period id for spreading each channel's amount; default: "
                          "the days of each period.")
    solver: Literal["highs", "cbc"] = "highs"
    time_limit_seconds: float = Field(30, gt=0, le=60)


class PeriodAmountPublic(BaseModel):
    period: str
    amount: Money
    expected_return: Money
    drawn: Money


class PlanChannelPublic(BaseModel):
    channel_id: str
    channel: str
    amount: Money = Field(description="What the optimizer allocated.")
    expected_return: Money
    drawn: Money = Field(description="Reserve draws made for it while this plan was current.")
    current_amount: Money = Field(description="amount + drawn.")
    periods: list[PeriodAmountPublic]


class PlanPublic(BaseModel):
    id: str
    budget_id: str
    number: int
    method: str
    status: Literal["draft", "approved"]
    current: bool
    currency: str
    spend: Money
    reserve: Money = Field(description="The reserve left when the plan was made.")
    channels: list[PlanChannelPublic]
    optimizer: OptimizationPublic = Field(description="The optimizer's full answer.")
    request: OptimizationRequest = Field(description="Exactly what the optimizer was asked.")
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None


def _incremental(session: Session, budget: Budget, plan_in: PlanCreate) -> IncrementalMode | None:
    if plan_in.method != "incremental":
        return None
    errors = []
    if plan_in.tolerance_percent is None:
        errors.append(("tolerance_percent", "the incremental method needs a tolerance_percent"))
    if budget.current_plan is None:
        errors.append(("method", "the incremental method needs an approved plan to start from; "
                                 "make and approve a zero_based plan first"))
    if errors:
        raise invalid_fields(errors)
    plan = get_plan(session, budget.id, budget.current_plan)
    names = dict(session.exec(select(Channel.id, Channel.name)
                              .where(Channel.budget_id == budget.id)).all())
    return IncrementalMode(previous={names[c.channel_id]: c.current_amount
                                     for c in _channels(session, budget, plan)},
                           tolerance_percent=plan_in.tolerance_percent)


def prepare(*, session: Session, budget_id: str, plan_in: PlanCreate) -> tuple[OptimizationRequest, int]:
    """Build the optimizer request for a budget's channels; return it with the budget version."""
    budget = get_budget(session, budget_id)
    channels = session.exec(select(Channel).where(Channel.budget_id == budget.id,
                                                  Channel.state != "exited")
                            .order_by(Channel.id)).all()
    if not channels:
        raise Conflict("The budget has no channel to allocate to (exited channels get nothing); "
                       f"add one at /api/v1/budget/budgets/{budget.id}/channels.")
    known = {p.id for p in budget_periods(budget)}
    unknown = sorted(set(plan_in.phasing or {}) - known)
    if unknown:
        raise invalid_fields([(f"phasing.{p}", f"not a period of this budget; its periods are "
                                               f"{', '.join(sorted(known))}") for p in unknown])
    remaining = reserve_left_minor(session, budget)
    members = defaultdict(list)
    for channel in channels:
        if channel.group is not None:
            members[channel.group].append(channel.name)
    request = OptimizationRequest(
        currency=budget.currency, total=from_minor(budget.total_minor, budget.currency),
        reserve=ReservePolicy(amount=from_minor(remaining, budget.currency)),
        objective=plan_in.objective, target_return=plan_in.target_return,
        target_roi=plan_in.target_roi,
        channels=[OptimizationChannel(
            id=c.name, response=c.response, min_if_used=c.min_if_used,
            min=None if c.min_minor is None else from_minor(c.min_minor, budget.currency),
            max=None if c.max_minor is None else from_minor(c.max_minor, budget.currency))
            for c in channels],
        # A group whose channels all exited constrains nothing any more.
        groups=[OptimizationGroup(id=g["id"], channels=members[g["id"]], min_share=g["min_share"],
                                  max_share=g["max_share"])
                for g in budget.groups if members[g["id"]]],
        incremental=_incremental(session, budget, plan_in), solver=plan_in.solver,
        time_limit_seconds=plan_in.time_limit_seconds)
    return request, budget.version


def store(*, session: Session, budget_id: str, plan_in: PlanCreate, request: OptimizationRequest,
          result: OptimizationPublic, version: int, caller: Caller) -> PlanPublic:
    """Store the optimizer's answer as the budget's next plan version (staged)."""
    budget = get_budget(session, budget_id, lock=True)
    if budget.version != version:
        raise Conflict("The budget changed while the optimizer ran (a reserve draw or an edit); "
                       "send the request again to plan with the new figures.")
    number = (session.exec(select(func.max(Plan.number)).where(Plan.budget_id == budget.id)).one()
              or 0) + 1
    plan = Plan(id=new_id("plan"), budget_id=budget.id, number=number, method=plan_in.method,
                request=request.model_dump(mode="json", by_alias=True),
                result=result.model_dump(mode="json", by_alias=True),
                spend_minor=to_minor(result.spend, budget.currency),
                reserve_minor=to_minor(result.reserve, budget.currency), created_by=caller.principal)
    session.add(plan)
    session.flush()
    ids = dict(session.exec(select(Channel.name, Channel.id).where(Channel.budget_id == budget.id)).all())
    periods = budget_periods(budget)
    weights = [plan_in.phasing.get(p.id, Decimal(0)) if plan_in.phasing else Decimal(p.days)
               for p in periods]
    for allocation in result.allocations:
        amounts = apportion(to_minor(allocation.amount, budget.currency), weights)
        returns = apportion(to_minor(allocation.expected_return, budget.currency), weights)
        session.add_all(PlanLine(plan_id=plan.id, channel_id=ids[allocation.channel],
                                 period=p.id, amount_minor=a, expected_return_minor=r)
                        for p, a, r in zip(periods, amounts, returns))
    session.flush()
    public = plan_public(session, budget, plan)
    audit.record(session, budget_id=budget.id, caller=caller, action="plan.create",
                 target=plan.id, changes={"number": number, "method": plan.method,
                                          "spend": public.spend, "status": result.status})
    return public


def create_plan(*, session: Session, idempotency: Idempotency, budget_id: str,
                plan_in: PlanCreate, workers: WorkerPool, grace_seconds: float,
                caller: Caller) -> JSONResponse:
    """Optimize the budget's channels and store the answer as its next plan version (once per
    Idempotency-Key: a replay answers without solving again)."""
    if (replay := idempotency.replay()) is not None:
        return replay
    request, version = prepare(session=session, budget_id=budget_id, plan_in=plan_in)
    session.close()   # no transaction (no SQLite write lock) stays open while the solver works
    result = service.optimize_budget(request=request, workers=workers, grace_seconds=grace_seconds)
    return idempotency.create(lambda: store(
        session=idempotency.session, budget_id=budget_id, plan_in=plan_in, request=request,
        result=result, version=version, caller=caller))


def get_plan(session: Session, budget_id: str, number: int) -> Plan:
    plan = session.exec(select(Plan).where(Plan.budget_id == budget_id,
                                           Plan.number == number)).first()
    if plan is None:
        raise NotFound(f"Budget {budget_id!r} has no plan {number}; list its plans at "
                       f"/api/v1/budget/budgets/{budget_id}/plans.")
    return plan


def _channels(session: Session, budget: Budget, plan: Plan) -> list[PlanChannelPublic]:
    names = dict(session.exec(select(Channel.id, Channel.name)
                              .where(Channel.budget_id == budget.id)).all())
    drawn: dict[tuple[str, str], int] = defaultdict(int)
    for channel_id, period, amount in session.exec(
            select(ReserveEntry.channel_id, ReserveEntry.period, ReserveEntry.amount_minor)
            .where(ReserveEntry.budget_id == budget.id, ReserveEntry.plan_number == plan.number,
                   ReserveEntry.channel_id.is_not(None))):
        drawn[channel_id, period] += amount
    lines: dict[str, list[PlanLine]] = defaultdict(list)
    for line in session.exec(select(PlanLine).where(PlanLine.plan_id == plan.id)
                             .order_by(PlanLine.channel_id, PlanLine.period)):
        lines[line.channel_id].append(line)
    money = lambda units: from_minor(units, budget.currency)  # noqa: E731
    channels = []
    for channel_id, mine in lines.items():
        amount = sum(line.amount_minor for line in mine)
        extra = sum(drawn[channel_id, line.period] for line in mine)
        channels.append(PlanChannelPublic(
            channel_id=channel_id, channel=names[channel_id], amount=money(amount),
            expected_return=money(sum(line.expected_return_minor for line in mine)),
            drawn=money(extra), current_amount=money(amount + extra),
            periods=[PeriodAmountPublic(period=line.period, amount=money(line.amount_minor),
                                        expected_return=money(line.expected_return_minor),
                                        drawn=money(drawn[channel_id, line.period]))
                     for line in mine]))
    return channels


def plan_public(session: Session, budget: Budget, plan: Plan) -> PlanPublic:
    return PlanPublic(
        id=plan.id, budget_id=budget.id, number=plan.number, method=plan.method,
        status="approved" if plan.approved_at else "draft",
        current=budget.current_plan == plan.number, currency=budget.currency,
        spend=from_minor(plan.spend_minor, budget.currency),
        reserve=from_minor(plan.reserve_minor, budget.currency),
        channels=_channels(session, budget, plan), optimizer=plan.result, request=plan.request,
        created_by=plan.created_by, created_at=plan.created_at, approved_by=plan.approved_by,
        approved_at=plan.approved_at)


def read_plan(*, session: Session, budget_id: str, number: int) -> PlanPublic:
    """Return one plan version with its channels, periods and draws."""
    budget = get_budget(session, budget_id)
    return plan_public(session, budget, get_plan(session, budget.id, number))


class PlanSummaryPublic(BaseModel):
    id: str
    number: int
    method: str
    status: Literal["draft", "approved"]
    current: bool
    spend: Money
    reserve: Money
    created_by: str
    created_at: datetime
    approved_at: datetime | None


def list_plans(*, session: Session, budget_id: str, limit: int,
               cursor: str | None) -> Page[PlanSummaryPublic]:
    """List a budget's plan versions, oldest first."""
    budget = get_budget(session, budget_id)
    rows, next_cursor = paginate(session, select(Plan).where(Plan.budget_id == budget.id),
                                 order_by=[Plan.number], limit=limit, cursor=cursor)
    return Page[PlanSummaryPublic](items=[PlanSummaryPublic(
        id=p.id, number=p.number, method=p.method,
        status="approved" if p.approved_at else "draft", current=budget.current_plan == p.number,
        spend=from_minor(p.spend_minor, budget.currency),
        reserve=from_minor(p.reserve_minor, budget.currency), created_by=p.created_by,
        created_at=p.created_at, approved_at=p.approved_at) for p in rows], next_cursor=next_cursor)


def approve(*, session: Session, budget_id: str, number: int, caller: Caller) -> PlanPublic:
    """Make a plan the budget's current one."""
    budget = get_budget(session, budget_id, lock=True)
    plan = get_plan(session, budget.id, number)
    if budget.current_plan == plan.number:
        return plan_public(session, budget, plan)
    total = from_minor(budget.total_minor, budget.currency)
    if Decimal(plan.request["total"]) != total:
        raise Conflict(f"Plan {number} was made for a total of {plan.request['total']}; the budget "
                       f"is now {total}. Make a new plan and approve that one.")
    left = reserve_left_minor(session, budget)
    if plan.reserve_minor != left:
        raise Conflict(
            f"Plan {number} was made with {from_minor(plan.reserve_minor, budget.currency)} left "
            f"in the reserve; {from_minor(left, budget.currency)} is left now (draws or a new "
            "reserve policy since). Make a new plan and approve that one.")
    previous = budget.current_plan
    plan.approved_by, plan.approved_at = caller.principal, utcnow()
    budget.current_plan = plan.number
    budget.version += 1
    budget.updated_at = utcnow()
    session.add_all([plan, budget])
    audit.record(session, budget_id=budget.id, caller=caller, action="plan.approve",
                 target=plan.id, changes={"current_plan": {"from": previous, "to": plan.number}})
    session.commit()
    return plan_public(session, budget, plan)
