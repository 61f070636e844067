"""Budgets: their fiscal period, total, reserve policy, groups and playbook rules."""
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.budget.ledger import audit, campaigns
from services.budget.ledger.campaigns import LinkedCampaignPublic
from services.budget.ledger.loaders import budget_periods, get_budget
from services.budget.ledger.pending import held_minor
from services.budget.ledger.periods import MAX_PERIODS, PeriodLength, periods
from services.budget.ledger.reserve import reserve_amount, reserve_drawn_minor, reserve_left_minor
from services.budget.ledger.tables import Actual, Budget, Channel, Plan, page_order, utcnow
from services.budget.whatif import ReservePolicy
from shared.client import ServiceClient
from shared.errors import Conflict, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.money import from_minor, quantize, to_minor
from shared.pagination import Page, paginate
from shared.types import Amount, Currency, Identifier, Money, Name, Rate, Ratio, Share, StrictModel
from shared.versioning import require_if_match

Multiplier = Annotated[Ratio, Field(gt=0, le=1000)]
FOUR_EYES = ("Four eyes: approving a plan that spends more than this, or drawing more than this "
             "from the reserve, waits for a second key holder (not its author) to confirm it; "
             "0 = always; null = never.")


class GroupRule(StrictModel):
    id: Identifier
    min_share: Share | None = Field(None, description="Of total spend: 0.2 = at least 20 %.")
    max_share: Share | None = None


class PhaseWeights(StrictModel):
    """How a campaign's money is phased: each phase kind's weight (normalised over the kinds
    the campaign has; a kind's part is split over its phases by days)."""
    warmup: Rate = Decimal("0.1")
    burst: Rate = Decimal("0.5")
    sustain: Rate = Decimal("0.3")
    wrapup: Rate = Decimal("0.1")


class PlaybookRules(StrictModel):
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
    phase_weights: PhaseWeights = Field(PhaseWeights(), description="Default phasing of a "
                                        "campaign's funding over its phases.")


class BudgetCreate(StrictModel):
    name: Name
    department: Identifier
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
    four_eyes_above: Amount | None = Field(None, description=FOUR_EYES)


class BudgetUpdate(StrictModel):
    """Every field optional; the currency cannot change (create a new budget instead)."""
    name: Name | None = None
    department: Identifier | None = None
    start_date: date | None = None
    end_date: date | None = None
    period_length: PeriodLength | None = None
    total: Amount | None = None
    reserve: ReservePolicy | None = None
    groups: list[GroupRule] | None = Field(None, max_length=200)
    rules: PlaybookRules | None = None
    campaign_ids: list[Identifier] | None = Field(None, max_length=500)
    four_eyes_above: Amount | None = Field(None, description=FOUR_EYES)


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
    reserve_pending: Money = Field(description="Held by draws waiting for a second key holder.")
    reserve_remaining: Money
    groups: list[GroupRule]
    rules: PlaybookRules
    campaign_ids: list[str]
    campaigns: list[LinkedCampaignPublic] = Field(description="Each linked campaign as the "
                                                  "calendar last reported it, in campaign_ids "
                                                  "order.")
    current_plan: int | None = Field(description="Number of the approved plan in force.")
    four_eyes_above: Money | None = Field(description=FOUR_EYES)
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


def to_public(session: Session, budget: Budget) -> BudgetPublic:
    """The budget as the API shows it, with its periods and what its reserve holds."""
    drawn = from_minor(reserve_drawn_minor(session, budget.id), budget.currency)
    held = from_minor(held_minor(session, budget.id), budget.currency)
    amount = reserve_amount(budget)
    return BudgetPublic(
        **budget.model_dump(exclude={"total_minor", "reserve", "groups", "rules",
                                     "four_eyes_above_minor"}),
        four_eyes_above=None if budget.four_eyes_above_minor is None
        else from_minor(budget.four_eyes_above_minor, budget.currency),
        periods=[PeriodPublic(id=p.id, start_date=p.start, end_date=p.end)
                 for p in budget_periods(budget)],
        total=from_minor(budget.total_minor, budget.currency),
        reserve=_policy(budget), reserve_amount=amount,
        reserve_drawn=drawn, reserve_pending=held, reserve_remaining=amount - drawn - held,
        groups=[GroupRule.model_validate(g) for g in budget.groups],
        rules=PlaybookRules.model_validate(budget.rules),
        campaigns=campaigns.linked_public(session, budget))


def _policy(budget: Budget) -> ReservePolicy:
    """The reserve policy, a fixed amount shown with the currency's decimals."""
    policy = ReservePolicy.model_validate(budget.reserve)
    if policy.amount is None:
        return policy
    return policy.model_copy(update={"amount": quantize(policy.amount, budget.currency)})


def _check_budget(values: dict[str, Any], currency: str) -> None:
    """Raise InvalidRequest naming every cross-field problem of a budget's settings at once."""
    errors: list[tuple[str, str]] = []
    for field in ("total", "four_eyes_above"):
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
    _raise_if_any(errors)


def _check_money(errors: list[tuple[str, str]], field: str, amount: Decimal | None,
                 currency: str) -> None:
    if amount is not None:
        try:
            to_minor(amount, currency)
        except ValueError as error:
            errors.append((field, f"{error}; round it to {quantize(amount, currency)}"))


def _minor(amount: Decimal | None, currency: str) -> int | None:
    return None if amount is None else to_minor(amount, currency)


def _raise_if_any(errors: list[tuple[str, str]]) -> None:
    """Raise InvalidRequest naming every (field, problem) at once, if there is any."""
    if errors:
        raise invalid_fields(errors)


def create_budget(*, session: Session, idempotency: Idempotency, budget_in: BudgetCreate,
                  calendar: ServiceClient, caller: Caller) -> BudgetPublic:
    """Create a budget; its linked campaigns must exist in the calendar."""
    _check_budget(dict(budget_in), budget_in.currency)
    linked = campaigns.read_linked(calendar, budget_in.campaign_ids)
    budget = Budget(
        id=new_id("bud"), created_by=caller.principal,
        **budget_in.model_dump(mode="json", exclude={"total", "start_date", "end_date",
                                                     "four_eyes_above"}),
        start_date=budget_in.start_date, end_date=budget_in.end_date,
        total_minor=to_minor(budget_in.total, budget_in.currency),
        four_eyes_above_minor=_minor(budget_in.four_eyes_above, budget_in.currency))
    session.add(budget)
    for state in linked:
        campaigns.store(session, state)
    session.flush()
    public = to_public(session, budget)
    audit.record(session, budget_id=budget.id, caller=caller, action="budget.create",
                 target=budget.id, changes={"after": public})
    idempotency.record(session, public)
    session.commit()
    return public


def read_budget(*, session: Session, budget_id: str) -> BudgetPublic:
    """Return one budget."""
    return to_public(session, get_budget(session, budget_id))


def list_budgets(*, session: Session, department: str | None, currency: str | None,
                 active_from: date | None, active_to: date | None, limit: int,
                 cursor: str | None) -> Page[BudgetPublic]:
    """List budgets, oldest first, filtered by department, currency and period overlap."""
    statement = select(Budget)
    if department is not None:
        statement = statement.where(Budget.department == department)
    if currency is not None:
        # Currency codes are stored upper case (ISO 4217); `eur` means EUR.
        statement = statement.where(Budget.currency == currency.upper())
    if active_from is not None:
        statement = statement.where(Budget.end_date >= active_from)
    if active_to is not None:
        statement = statement.where(Budget.start_date <= active_to)
    rows, next_cursor = paginate(session, statement, order_by=page_order(Budget.id), limit=limit,
                                 cursor=cursor)
    return Page[BudgetPublic](items=[to_public(session, b) for b in rows], next_cursor=next_cursor)


def update_budget(*, session: Session, budget_id: str, update: BudgetUpdate, if_match: str | None,
                  calendar: ServiceClient, caller: Caller) -> BudgetPublic:
    """Change a budget's settings at the version the caller read (412 if stale)."""
    # Asked before the row lock: the calendar's answer does not depend on it.
    linked = campaigns.read_linked(calendar, update.campaign_ids or [])
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
            Channel.budget_id == budget.id, col(Channel.group).is_not(None),
            col(Channel.group).not_in(kept))).all())
        if orphans:
            raise Conflict(f"Channels {', '.join(orphans)} belong to a group this change removes; "
                           "move them to another group (or none) first.")
    budget.sqlmodel_update(update.model_dump(mode="json", exclude_unset=True,
                                             exclude={"total", "start_date", "end_date",
                                                      "four_eyes_above"}))
    for field in ("start_date", "end_date"):
        if field in changes:
            setattr(budget, field, values[field])
    for state in linked:
        campaigns.store(session, state)
    if "total" in changes:
        budget.total_minor = to_minor(values["total"], budget.currency)
    if "four_eyes_above" in changes:
        budget.four_eyes_above_minor = _minor(values["four_eyes_above"], budget.currency)
    if reserve_left_minor(session, budget) < 0:
        drawn = reserve_drawn_minor(session, budget.id) + held_minor(session, budget.id)
        raise Conflict(f"{from_minor(drawn, budget.currency)} {budget.currency} has already been "
                       f"drawn from the reserve or is held for draws waiting for confirmation; the new "
                       f"reserve would be only "
                       f"{reserve_amount(budget)}. Keep the reserve at least at what was drawn.")
    budget.version += 1
    budget.updated_at = utcnow()
    session.add(budget)
    session.flush()
    after = to_public(session, budget)
    audit.record(session, budget_id=budget.id, caller=caller, action="budget.update",
                 target=budget.id, changes=audit.diff(before, after))
    session.commit()
    return after


def _has_history(session: Session, budget_id: str) -> bool:
    return any(session.exec(select(model).where(model.budget_id == budget_id).limit(1)).first()
               for model in (Plan, Actual))
