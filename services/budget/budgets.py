"""Budgets and their channels: shapes, checks and use cases."""
from datetime import date, datetime
from urllib.parse import quote
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func
from sqlmodel import Session, select

from services.budget import audit
from services.budget.models import Actual, Budget, Channel, Plan, ReserveEntry, utcnow
from services.budget.optimization import (Amount, Identifier, OptimizationChannel,
                                          OptimizationRequest, Ratio, ReservePolicy, Response,
                                          Share, check_request)
from services.budget.periods import MAX_PERIODS, PeriodLength, periods
from shared.client import ServiceClient
from shared.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable, invalid_fields
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.money import from_minor, quantize, to_minor
from shared.types import Currency, Money
from shared.pagination import Page, paginate
from shared.versioning import require_if_match

ChannelKind = Literal["search", "social", "video", "kol", "email", "display", "affiliate",
                      "offline", "other"]
ChannelState = Literal["testing", "active", "scaling", "exited"]
# The playbook's lifecycle: a tested channel is admitted or dropped; an active one scales up
# or exits; an exited one may come back only through a new test.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "testing": ("active", "exited"),
    "active": ("scaling", "exited"),
    "scaling": ("active", "exited"),
    "exited": ("testing",),
}
Name = Annotated[str, Field(min_length=1, max_length=200)]
Multiplier = Annotated[Ratio, Field(gt=0, le=1000, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupRule(_Strict):
    id: Identifier
    min_share: Share | None = Field(None, description="Of total spend: 0.2 = at least 20 %.")
    max_share: Share | None = None


class PlaybookRules(_Strict):
    """The department playbook's thresholds, per budget."""
    admit_ratio: Multiplier = Field(Decimal("1.15"), description="Admit a tested channel when its "
                                "ROI is at least this times the active channels' average.")
    scale_ratio: Multiplier = Field(Decimal("1.30"), description="Scale a channel up at this ratio.")
    exit_ratio: Multiplier = Field(Decimal("0.5"), description="Exit a channel whose ROI stays below "
                               "this times the target ROI ...")
    exit_periods: int = Field(3, ge=1, le=MAX_PERIODS, description="... for this many "
                              "consecutive periods.")
    target_roi: Multiplier | None = Field(None, description="Return per unit spent the budget aims "
                                      "for; without it the active channels' average is used.")
    alert_percent: Annotated[Ratio, Field(ge=0, le=1000)] = Field(
        Decimal(10), description="Alert when spend runs this many percent ahead of plan.")


class BudgetCreate(_Strict):
    name: Name
    department: Annotated[str, Field(min_length=1, max_length=100)]
    currency: Currency
    start_date: date
    end_date: date
    period_length: PeriodLength = Field("month", description="Reporting period of plans and "
                                        "actuals: month, quarter or (ISO) week.")
    total: Amount
    reserve: ReservePolicy = Field(description="Held back for emergencies: a percent of the "
                                   "total or a fixed amount.")
    groups: list[GroupRule] = Field([], max_length=200)
    rules: PlaybookRules = PlaybookRules()
    campaign_ids: list[Identifier] = Field([], max_length=500)


class BudgetUpdate(_Strict):
    """Every field optional; the currency cannot change (create a new budget instead)."""
    name: Name | None = None
    department: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    start_date: date | None = None
    end_date: date | None = None
    period_length: PeriodLength | None = None
    total: Amount | None = None
    reserve: ReservePolicy | None = None
    groups: list[GroupRule] | None = Field(None, max_length=200)
    rules: PlaybookRules | None = None
    campaign_ids: list[Identifier] | None = Field(None, max_length=500)


class PeriodPublic(BaseModel):
    id: str
    start_date: date
    end_date: date


class BudgetPublic(BaseModel):
    id: str
    name: str
    department: str
    currency: str
    start_date: date
    end_date: date
    period_length: str
    periods: list[PeriodPublic]
    total: Money
    reserve: ReservePolicy
    reserve_amount: Money = Field(description="What the reserve policy holds back.")
    reserve_drawn: Money = Field(description="Net of draws and their reversals.")
    reserve_remaining: Money
    groups: list[GroupRule]
    rules: PlaybookRules
    campaign_ids: list[str]
    current_plan: int | None = Field(description="Number of the approved plan in force.")
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class ChannelCreate(_Strict):
    name: Identifier
    kind: ChannelKind
    response: Response = Field(description="The return model the optimizer uses, for spend "
                               "over the whole fiscal period.")
    min: Amount | None = None
    max: Amount | None = None
    min_if_used: bool = False
    group: Identifier | None = Field(None, description="Id of one of the budget's groups.")
    state: ChannelState = "active"


class ChannelUpdate(_Strict):
    name: Identifier | None = None
    kind: ChannelKind | None = None
    response: Response | None = None
    min: Amount | None = None
    max: Amount | None = None
    min_if_used: bool | None = None
    group: Identifier | None = None
    state: ChannelState | None = None


class ChannelPublic(BaseModel):
    id: str
    budget_id: str
    name: str
    kind: str
    response: Response
    min: Money | None
    max: Money | None
    min_if_used: bool
    group: str | None
    state: str
    version: int
    created_at: datetime
    updated_at: datetime


# --- budgets ---------------------------------------------------------------------------

def reserve_amount(budget: Budget) -> Decimal:
    """What the budget's policy holds back, rounded half-even to the minor unit."""
    total = from_minor(budget.total_minor, budget.currency)
    if budget.reserve.get("amount") is not None:
        return Decimal(budget.reserve["amount"])
    return quantize(total * Decimal(budget.reserve["percent"]) / 100, budget.currency)


def reserve_drawn_minor(session: Session, budget_id: str) -> int:
    drawn = session.exec(select(func.coalesce(func.sum(ReserveEntry.amount_minor), 0))
                         .where(ReserveEntry.budget_id == budget_id)).one()
    return int(drawn)


def reserve_left_minor(session: Session, budget: Budget) -> int:
    """What the reserve still holds, in minor units (negative only mid-change, never stored)."""
    return to_minor(reserve_amount(budget), budget.currency) - reserve_drawn_minor(session, budget.id)


def budget_periods(budget: Budget):
    return periods(budget.start_date, budget.end_date, budget.period_length)  # type: ignore[arg-type]


def to_public(session: Session, budget: Budget) -> BudgetPublic:
    drawn = from_minor(reserve_drawn_minor(session, budget.id), budget.currency)
    amount = reserve_amount(budget)
    return BudgetPublic(
        **budget.model_dump(exclude={"total_minor", "reserve", "groups", "rules"}),
        periods=[PeriodPublic(id=p.id, start_date=p.start, end_date=p.end)
                 for p in budget_periods(budget)],
        total=from_minor(budget.total_minor, budget.currency),
        reserve=ReservePolicy.model_validate(budget.reserve), reserve_amount=amount,
        reserve_drawn=drawn, reserve_remaining=amount - drawn,
        groups=[GroupRule.model_validate(g) for g in budget.groups],
        rules=PlaybookRules.model_validate(budget.rules))


def _check_budget(values: dict[str, Any], currency: str) -> None:
    """Raise InvalidRequest naming every cross-field problem of a budget's settings at once."""
    errors: list[tuple[str, str]] = []
    for field in ("total",):
        _check_money(errors, field, values[field], currency)
    reserve: ReservePolicy = values["reserve"]
    if reserve.amount is not None:
        _check_money(errors, "reserve.amount", reserve.amount, currency)
        if reserve.amount > values["total"]:
            errors.append(("reserve.amount", f"the reserve {reserve.amount} is more than the "
                                             f"total {values['total']}"))
    start, end = values["start_date"], values["end_date"]
    if end < start:
        errors.append(("end_date", f"the fiscal period ends ({end}) before it starts ({start})"))
    elif len(periods(start, end, values["period_length"])) > MAX_PERIODS:
        errors.append(("period_length", f"{start}..{end} has more than {MAX_PERIODS} "
                                        f"{values['period_length']}s; use a longer period"))
    ids = [g.id for g in values["groups"]]
    if len(set(ids)) != len(ids):
        errors.append(("groups", "group ids must be unique"))
    for i, group in enumerate(values["groups"]):
        if group.min_share is not None and group.max_share is not None \
                and group.min_share > group.max_share:
            errors.append((f"groups[{i}].min_share", "min_share is above max_share"))
    _raise(errors)


def _check_money(errors: list[tuple[str, str]], field: str, amount: Decimal | None,
                 currency: str) -> None:
    if amount is not None:
        try:
            to_minor(amount, currency)
        except ValueError as error:
            errors.append((field, f"{error}; round it to {quantize(amount, currency)}"))


def _raise(errors: list[tuple[str, str]]) -> None:
    if errors:
        raise invalid_fields(errors)


def check_campaigns(calendar: ServiceClient, campaign_ids: list[str]) -> None:
    """Raise InvalidRequest naming each id the calendar service does not know."""
    errors = []
    for i, campaign_id in enumerate(campaign_ids):
        response = calendar.request("GET", f"/api/v1/calendar/campaigns/{quote(campaign_id, safe='')}")
        if response.status_code == 404:
            errors.append((f"campaign_ids[{i}]", f"the calendar has no campaign {campaign_id!r}"))
        elif response.status_code != 200:
            raise ServiceUnavailable("The calendar service could not confirm the campaigns; "
                                     "try again shortly.")
    _raise(errors)


def create_budget(*, session: Session, budget_in: BudgetCreate, calendar: ServiceClient,
                  caller: Caller) -> BudgetPublic:
    """Create a budget (staged; the caller commits)."""
    _check_budget(dict(budget_in), budget_in.currency)
    check_campaigns(calendar, budget_in.campaign_ids)
    budget = Budget(
        id=new_id("bud"), created_by=caller.principal,
        **budget_in.model_dump(mode="json", exclude={"total", "start_date", "end_date"}),
        start_date=budget_in.start_date, end_date=budget_in.end_date,
        total_minor=to_minor(budget_in.total, budget_in.currency))
    session.add(budget)
    session.flush()
    public = to_public(session, budget)
    audit.record(session, budget_id=budget.id, caller=caller, action="budget.create",
                 target=budget.id, changes={"after": public})
    return public


def get_budget(session: Session, budget_id: str, *, lock: bool = False) -> Budget:
    """Load a budget or raise NotFound; `lock` holds its row until commit (PostgreSQL
    `FOR UPDATE`; SQLite writers are already serialized by BEGIN IMMEDIATE)."""
    statement = select(Budget).where(Budget.id == budget_id)
    budget = session.exec(statement.with_for_update() if lock else statement).first()
    if budget is None:
        raise NotFound(f"There is no budget {budget_id!r}; list budgets at /api/v1/budget/budgets.")
    return budget


def list_budgets(*, session: Session, department: str | None, currency: str | None,
                 active_from: date | None, active_to: date | None, limit: int,
                 cursor: str | None) -> Page[BudgetPublic]:
    """List budgets, oldest first, filtered by department, currency and period overlap."""
    statement = select(Budget)
    if department is not None:
        statement = statement.where(Budget.department == department)
    if currency is not None:
        statement = statement.where(Budget.currency == currency)
    if active_from is not None:
        statement = statement.where(Budget.end_date >= active_from)
    if active_to is not None:
        statement = statement.where(Budget.start_date <= active_to)
    rows, next_cursor = paginate(session, statement, order_by=[Budget.id], limit=limit,
                                 cursor=cursor)
    return Page[BudgetPublic](items=[to_public(session, b) for b in rows], next_cursor=next_cursor)


def update_budget(*, session: Session, budget_id: str, update: BudgetUpdate, if_match: str | None,
                  calendar: ServiceClient, caller: Caller) -> BudgetPublic:
    """Change a budget's settings at the version the caller read (412 if stale)."""
    # Asked before the row lock: the calendar's answer does not depend on it.
    check_campaigns(calendar, update.campaign_ids or [])
    budget = get_budget(session, budget_id, lock=True)
    require_if_match(if_match, budget.version, what="budget")
    before = to_public(session, budget)
    changes = update.model_dump(exclude_unset=True)
    values = dict(before) | {k: getattr(update, k) for k in changes}
    _check_budget(values, budget.currency)
    if {"start_date", "end_date", "period_length"} & changes.keys() \
            and budget_periods(budget) != periods(values["start_date"], values["end_date"],
                                                  values["period_length"]) \
            and _has_history(session, budget.id):
        raise Conflict("The periods of a budget with plans or actuals cannot change: they are "
                       "what those records refer to. Create a new budget for a new fiscal period.")
    if "groups" in changes:
        kept = {g.id for g in update.groups or []}
        orphans = sorted(session.exec(select(Channel.name).where(
            Channel.budget_id == budget.id, Channel.group.is_not(None),
            Channel.group.not_in(kept))).all())
        if orphans:
            raise Conflict(f"Channels {', '.join(orphans)} belong to a group this change removes; "
                           "move them to another group (or none) first.")
    budget.sqlmodel_update(update.model_dump(mode="json", exclude_unset=True,
                                             exclude={"total", "start_date", "end_date"}))
    for field in ("start_date", "end_date"):
        if field in changes:
            setattr(budget, field, values[field])
    if "total" in changes:
        budget.total_minor = to_minor(update.total, budget.currency)
    if reserve_left_minor(session, budget) < 0:
        drawn = reserve_drawn_minor(session, budget.id)
        raise Conflict(f"{from_minor(drawn, budget.currency)} {budget.currency} has already been "
                       f"drawn from the reserve; the new reserve would be only "
                       f"{reserve_amount(budget)}. Keep the reserve at least at what was drawn.")
    budget.version += 1
    budget.updated_at = utcnow()
    session.add(budget)
    session.flush()
    after = to_public(session, budget)
    audit.record(session, budget_id=budget.id, caller=caller, action="budget.update",
                 target=budget.id, changes=_diff(before, after))
    session.commit()
    return after


def _has_history(session: Session, budget_id: str) -> bool:
    return any(session.exec(select(model).where(model.budget_id == budget_id).limit(1)).first()
               for model in (Plan, Actual))


def _diff(before: BaseModel, after: BaseModel) -> dict[str, Any]:
    old, new = before.model_dump(mode="json", by_alias=True), after.model_dump(mode="json", by_alias=True)
    return {key: {"from": old[key], "to": new[key]} for key in new
            if old[key] != new[key] and key not in ("version", "updated_at")}


# --- channels --------------------------------------------------------------------------

def channel_public(budget: Budget, channel: Channel) -> ChannelPublic:
    money = {field: None if getattr(channel, f"{field}_minor") is None
             else from_minor(getattr(channel, f"{field}_minor"), budget.currency)
             for field in ("min", "max")}
    return ChannelPublic(**channel.model_dump(exclude={"min_minor", "max_minor"}), **money)


def _check_channel(session: Session, budget: Budget, channel: ChannelCreate,
                   channel_id: str | None) -> None:
    """Raise InvalidRequest / Conflict for a channel the budget cannot take."""
    # The optimizer's own request check knows every rule of a channel's money and response.
    try:
        check_request(OptimizationRequest(
            currency=budget.currency, total=from_minor(budget.total_minor, budget.currency),
            channels=[OptimizationChannel(id=channel.name, response=channel.response,
                                          min=channel.min, max=channel.max,
                                          min_if_used=channel.min_if_used)]))
    except InvalidRequest as invalid:
        _raise([(e["field"].removeprefix("channels[0]").lstrip(".") or "response", e["detail"])
                for e in invalid.extra["errors"]])
    groups = [g["id"] for g in budget.groups]
    if channel.group is not None and channel.group not in groups:
        _raise([("group", f"unknown group {channel.group!r}; the budget's groups are: "
                          f"{', '.join(groups) or 'none (add them to the budget first)'}")])
    clash = session.exec(select(Channel.id).where(Channel.budget_id == budget.id,
                                                  Channel.name == channel.name,
                                                  Channel.id != channel_id)).first()
    if clash is not None:
        raise Conflict(f"The budget already has a channel named {channel.name!r} ({clash}); "
                       "choose another name or update that channel.")


def create_channel(*, session: Session, budget_id: str, channel_in: ChannelCreate,
                   caller: Caller) -> ChannelPublic:
    """Add a channel to a budget (staged; the caller commits)."""
    budget = get_budget(session, budget_id, lock=True)
    _check_channel(session, budget, channel_in, None)
    channel = Channel(id=new_id("ch"), budget_id=budget.id,
                      **_channel_columns(budget, channel_in.model_dump(mode="json", by_alias=True)))
    session.add(channel)
    session.flush()
    public = channel_public(budget, channel)
    audit.record(session, budget_id=budget.id, caller=caller, action="channel.create",
                 target=channel.id, changes={"after": public})
    return public


def _channel_columns(budget: Budget, values: dict[str, Any]) -> dict[str, Any]:
    for field in ("min", "max"):
        if field in values:
            amount = values.pop(field)
            values[f"{field}_minor"] = None if amount is None \
                else to_minor(Decimal(amount), budget.currency)
    return values


def get_channel(session: Session, budget_id: str, channel_id: str) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None or channel.budget_id != budget_id:
        raise NotFound(f"Budget {budget_id!r} has no channel {channel_id!r}; list them at "
                       f"/api/v1/budget/budgets/{budget_id}/channels.")
    return channel


def list_channels(*, session: Session, budget_id: str) -> list[ChannelPublic]:
    """Return a budget's channels in the order they were added."""
    budget = get_budget(session, budget_id)
    return [channel_public(budget, c) for c in session.exec(
        select(Channel).where(Channel.budget_id == budget_id).order_by(Channel.id))]


def update_channel(*, session: Session, budget_id: str, channel_id: str, update: ChannelUpdate,
                   if_match: str | None, caller: Caller) -> ChannelPublic:
    """Change a channel at the version the caller read; state moves follow the playbook."""
    budget = get_budget(session, budget_id, lock=True)
    channel = get_channel(session, budget_id, channel_id)
    require_if_match(if_match, channel.version, what="channel")
    before = channel_public(budget, channel)
    changes = update.model_dump(exclude_unset=True)
    merged = ChannelCreate.model_validate(before.model_dump(include=set(ChannelCreate.model_fields))
                                          | {k: getattr(update, k) for k in changes})
    if "state" in changes and update.state != channel.state:
        allowed = TRANSITIONS[channel.state]
        if update.state not in allowed:
            raise Conflict(f"A channel in state {channel.state!r} cannot move to "
                           f"{update.state!r}; allowed: {', '.join(allowed)}.",
                           allowed=list(allowed))
    _check_channel(session, budget, merged, channel.id)
    channel.sqlmodel_update(_channel_columns(budget, update.model_dump(
        mode="json", by_alias=True, exclude_unset=True)))
    channel.version += 1
    channel.updated_at = utcnow()
    session.add(channel)
    session.flush()
    after = channel_public(budget, channel)
    audit.record(session, budget_id=budget.id, caller=caller, action="channel.update",
                 target=channel.id, changes=_diff(before, after))
    session.commit()
    return after
