"""Allocation plans: the optimizer run on a budget's channels, stored as immutable numbered
versions; one approved plan is current, and reserve draws add to its channels."""
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from services.budget import optimizer, whatif
from services.budget.fields import PeriodId
from services.budget.ledger import audit, pending
from services.budget.ledger.loaders import budget_periods, channel_names, get_budget, get_plan
from services.budget.ledger.pending import PendingActionPublic
from services.budget.ledger.periods import apportion
from services.budget.ledger.reserve import reserve_left_minor
from services.budget.ledger.tables import (
    Budget,
    Channel,
    PendingAction,
    Plan,
    PlanLine,
    ReserveEntry,
    page_order,
    utcnow,
)
from services.budget.whatif import OptimizationPublic, OptimizationRequest
from shared.errors import Conflict, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.money import from_minor, minor_units, to_minor
from shared.pagination import Page, paginate
from shared.types import Amount, Money, Percent, Rate, StrictModel, TimeLimit
from shared.workers import WorkerPool


class PlanCreate(StrictModel):
    method: Literal["zero_based", "incremental"] = Field(
        "zero_based", description="Zero-based ignores history; incremental keeps each channel "
                                  "within ± tolerance_percent of the current plan.")
    tolerance_percent: Percent | None = None
    objective: optimizer.Objective = "max_return"
    target_return: Amount | None = Field(None, description="Required by `min_spend`.")
    target_roi: Rate | None = None
    phasing: dict[PeriodId, Rate] | None = Field(  # type: ignore[valid-type]
        None, description="Weight per period id for spreading each channel's amount; default: "
                          "the days of each period.")
    solver: optimizer.SolverName = "highs"
    time_limit_seconds: TimeLimit = Field(whatif.DEFAULT_SECONDS)


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
    created_by_name: str | None = Field(description="The name of the maker's API key.")
    created_at: datetime
    approved_by: str | None
    approved_by_name: str | None = Field(description="The name of the approver's API key.")
    approved_at: datetime | None


def _incremental(session: Session, budget: Budget,
                 plan_in: PlanCreate) -> optimizer.Incremental | None:
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
    assert budget.current_plan is not None and plan_in.tolerance_percent is not None
    plan = get_plan(session, budget.id, budget.current_plan)
    # A channel exited since the current plan gets nothing now: its previous amount is
    # released (not held within the tolerance) and goes wherever it returns most.
    live = set(session.exec(select(Channel.id).where(Channel.budget_id == budget.id,
                                                     Channel.state != "exited")))
    return optimizer.Incremental(previous={c.channel: c.current_amount
                                           for c in _channels(session, budget, plan)
                                           if c.channel_id in live},
                                 tolerance=plan_in.tolerance_percent / 100)


def _problem(session: Session, budget: Budget, plan_in: PlanCreate) -> optimizer.Problem:
    """The optimizer's problem for the budget's channels (exited ones get nothing), with the
    reserve held back as what is left of it now."""
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
    if plan_in.phasing and not any(plan_in.phasing.values()):
        # As /optimize refuses periods that all weigh 0: an amount spread by no weight at all
        # would be spread by days behind the caller's back.
        raise invalid_fields([("phasing", "every period has weight 0, so no amount can be "
                                          "spread; give the periods that get money a weight "
                                          "above 0")])
    members = defaultdict(list)
    for channel in channels:
        if channel.group is not None:
            members[channel.group].append(channel.name)
    money = lambda units: None if units is None else from_minor(units, budget.currency)  # noqa: E731
    return optimizer.Problem(
        total=from_minor(budget.total_minor, budget.currency),
        decimals=minor_units(budget.currency),
        reserve=optimizer.Reserve(amount=money(reserve_left_minor(session, budget))),
        channels=tuple(optimizer.Channel(
            c.name, whatif.parse_response(c.response), money(c.min_minor), money(c.max_minor),
            c.min_if_used) for c in channels),
        # A group whose channels all exited constrains nothing any more.
        groups=tuple(optimizer.Group(g["id"], tuple(members[g["id"]]), _share(g["min_share"]),
                                     _share(g["max_share"]))
                     for g in budget.groups if members[g["id"]]),
        objective=plan_in.objective, target_return=plan_in.target_return,
        target_roi=plan_in.target_roi, incremental=_incremental(session, budget, plan_in),
        solver=plan_in.solver, time_limit=plan_in.time_limit_seconds)


def _share(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _store(*, session: Session, budget_id: str, plan_in: PlanCreate, request: OptimizationRequest,
           result: OptimizationPublic, version: int, caller: Caller) -> PlanPublic:
    """Stage the optimizer's answer as the budget's next plan version."""
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
                reserve_minor=to_minor(result.reserve, budget.currency), created_by=caller.principal,
                created_by_name=caller.name)
    session.add(plan)
    session.flush()
    ids = {name: channel_id for channel_id, name in channel_names(session, budget.id).items()}
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
                caller: Caller, progress: whatif.OnProgress | None = None,
                cancelled: whatif.IsCancelled | None = None) -> PlanPublic:
    """Optimize the budget's channels and store the answer as its next plan version."""
    budget = get_budget(session, budget_id)
    problem = _problem(session, budget, plan_in)
    whatif.check(problem)
    currency, version = budget.currency, budget.version
    request = whatif.request_of(problem, currency, tolerance_percent=plan_in.tolerance_percent)
    # Nothing is written yet: end the read's transaction so that no transaction (on SQLite,
    # no write lock) stays open while the solver works; `_store` checks the budget's version.
    session.rollback()
    allocation = whatif.solve(problem=problem, workers=workers, grace_seconds=grace_seconds,
                              progress=progress, cancelled=cancelled)
    public = _store(session=session, budget_id=budget_id, plan_in=plan_in, request=request,
                    result=whatif.to_public(allocation, currency), version=version, caller=caller)
    idempotency.record(session, public)
    session.commit()
    return public


def _channels(session: Session, budget: Budget, plan: Plan) -> list[PlanChannelPublic]:
    names = channel_names(session, budget.id)
    drawn: dict[tuple[str, str], int] = defaultdict(int)
    for channel_id, period, amount in session.exec(
            select(ReserveEntry.channel_id, ReserveEntry.period, ReserveEntry.amount_minor)
            .where(ReserveEntry.budget_id == budget.id, ReserveEntry.plan_number == plan.number,
                   col(ReserveEntry.channel_id).is_not(None))):
        # A draw for a channel always names its period (see reserve.draw).
        assert channel_id is not None and period is not None
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
    """The plan version as the API shows it, with its channels, periods and draws."""
    return PlanPublic(
        id=plan.id, budget_id=budget.id, number=plan.number, method=plan.method,
        status="approved" if plan.approved_at else "draft",
        current=budget.current_plan == plan.number, currency=budget.currency,
        spend=from_minor(plan.spend_minor, budget.currency),
        reserve=from_minor(plan.reserve_minor, budget.currency),
        channels=_channels(session, budget, plan), optimizer=plan.result, request=plan.request,
        created_by=plan.created_by, created_by_name=plan.created_by_name,
        created_at=plan.created_at, approved_by=plan.approved_by,
        approved_by_name=plan.approved_by_name, approved_at=plan.approved_at)


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
    created_by_name: str | None
    created_at: datetime
    approved_at: datetime | None


def list_plans(*, session: Session, budget_id: str, limit: int,
               cursor: str | None) -> Page[PlanSummaryPublic]:
    """List a budget's plan versions, oldest first."""
    budget = get_budget(session, budget_id)
    rows, next_cursor = paginate(session, select(Plan).where(Plan.budget_id == budget.id),
                                 order_by=page_order(Plan.number), limit=limit, cursor=cursor)
    return Page[PlanSummaryPublic](items=[PlanSummaryPublic(
        id=p.id, number=p.number, method=p.method,
        status="approved" if p.approved_at else "draft", current=budget.current_plan == p.number,
        spend=from_minor(p.spend_minor, budget.currency),
        reserve=from_minor(p.reserve_minor, budget.currency), created_by=p.created_by,
        created_by_name=p.created_by_name, created_at=p.created_at,
        approved_at=p.approved_at) for p in rows], next_cursor=next_cursor)


def approve(*, session: Session, budget_id: str, number: int,
            caller: Caller) -> PlanPublic | PendingActionPublic:
    """Make a plan the budget's current one, or ask a second key holder to confirm it when it
    spends more than the budget's four-eyes threshold."""
    budget = get_budget(session, budget_id, lock=True)
    plan = get_plan(session, budget.id, number)
    if budget.current_plan == plan.number:
        return plan_public(session, budget, plan)
    check_approvable(session, budget, plan)
    if not pending.needs_second_key(budget, plan.spend_minor):
        approved = make_current(session, budget, plan, caller)
        session.commit()
        return approved
    waiting = session.exec(select(PendingAction).where(
        PendingAction.budget_id == budget.id, PendingAction.kind == "approval",
        PendingAction.plan_number == plan.number, PendingAction.status == "pending")).first()
    if waiting is None:
        # One request per plan: asking again answers the request already waiting.
        waiting = pending.stage(session, budget, kind="approval", amount_minor=plan.spend_minor,
                                caller=caller, plan_number=plan.number)
        session.flush()
        audit.record(session, budget_id=budget.id, caller=caller, action="plan.approval_requested",
                     target=plan.id, changes={"pending_id": waiting.id, "number": plan.number})
    public = pending.pending_public(budget, waiting)
    session.commit()
    return public


def check_approvable(session: Session, budget: Budget, plan: Plan) -> None:
    """Raise Conflict unless the plan's money is still the budget's: its total and what is left
    in the reserve."""
    total = from_minor(budget.total_minor, budget.currency)
    if Decimal(plan.request["total"]) != total:
        raise Conflict(f"Plan {plan.number} was made for a total of {plan.request['total']}; the "
                       f"budget is now {total}. Make a new plan and approve that one.")
    left = reserve_left_minor(session, budget)
    if plan.reserve_minor != left:
        raise Conflict(
            f"Plan {plan.number} was made with {from_minor(plan.reserve_minor, budget.currency)} "
            f"left in the reserve; {from_minor(left, budget.currency)} is left now (draws or a "
            "new reserve policy since). Make a new plan and approve that one.")


def make_current(session: Session, budget: Budget, plan: Plan, caller: Caller) -> PlanPublic:
    """Stage the plan as the budget's current one, approved by `caller`."""
    previous = budget.current_plan
    plan.approved_by, plan.approved_at = caller.principal, utcnow()
    plan.approved_by_name = caller.name
    budget.current_plan = plan.number
    budget.version += 1
    budget.updated_at = utcnow()
    session.add_all([plan, budget])
    audit.record(session, budget_id=budget.id, caller=caller, action="plan.approve",
                 target=plan.id, changes={"current_plan": {"from": previous, "to": plan.number}})
    session.flush()
    return plan_public(session, budget, plan)
