"""Campaign funding: a linked campaign's money from the budget's current plan.

Per channel, all campaigns' lines together stay within what the current plan gives the
channel (its allocation plus the reserve draws made for it). A line's amount is phased over
the campaign's phases as the calendar reports them (kept by the event consumer, so the money
follows when the phases move): over the phase kinds present by the funding's `phase_weights`,
each kind's part over its phases by days, and each phase's part over the budget's periods by
its days in each. Every split is exact to the cent (largest remainder). Spend and return come
from the actuals that carry the campaign."""
from collections import defaultdict
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from services.budget.ledger import audit, campaigns
from services.budget.ledger.budgets import PhaseWeights, PlaybookRules
from services.budget.ledger.loaders import budget_periods, get_budget
from services.budget.ledger.periods import Span, phase_split, spread
from services.budget.ledger.tables import (
    Actual,
    Budget,
    CampaignFunding,
    Channel,
    FundingLine,
    LinkedCampaign,
    Plan,
    PlanLine,
    ReserveEntry,
    utcnow,
)
from shared.client import ServiceClient
from shared.errors import Conflict, NotFound, invalid_fields
from shared.internal_auth import Caller
from shared.money import from_minor, to_minor
from shared.types import Amount, Identifier, Money, Ratio, StrictModel

MAX_LINES = 200
# KPIs measured in money, whose progress the budget can report from actuals.
MONEY_KPIS = ("revenue", "roas")
PLACES = Decimal("0.0001")


class FundingLineIn(StrictModel):
    channel_id: Identifier
    amount: Amount


class CampaignFundingPut(StrictModel):
    lines: list[FundingLineIn] = Field(max_length=MAX_LINES, description="What each channel "
                                       "gives the campaign; a channel left out gives nothing.")
    phase_weights: PhaseWeights | None = Field(None, description="Default: the budget's "
                                               "playbook rules.phase_weights.")


class FundingPhasePublic(BaseModel):
    kind: str
    start_date: date
    end_date: date
    amount: Money


class FundingPeriodPublic(BaseModel):
    period: str
    amount: Money


class CampaignFundingLinePublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel_id: str
    channel_kind: str
    amount: Money
    per_phase: list[FundingPhasePublic]
    per_period: list[FundingPeriodPublic]
    spent: Money = Field(description="Actual spend on this channel carrying the campaign.")
    return_: Money = Field(alias="return")
    roi: Ratio | None = Field(description="return / spent; null before any spend.")


class CampaignKpiPublic(BaseModel):
    kpi: str
    target: Ratio
    actual: Ratio | None = Field(description="revenue: the campaign's return; roas: its ROI.")
    progress: Ratio | None = Field(description="actual / target.")


class CampaignFundingPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    budget_id: str
    campaign_id: str
    currency: str
    phase_weights: PhaseWeights
    lines: list[CampaignFundingLinePublic]
    committed: Money = Field(description="The lines' total.")
    spent: Money = Field(description="Every actual carrying the campaign in this budget.")
    return_: Money = Field(alias="return")
    roi: Ratio | None
    kpi: CampaignKpiPublic | None = Field(description="Progress toward the campaign's KPI "
                                          "target when the KPI is money (revenue, ROAS).")


class CampaignFundingList(BaseModel):
    items: list[CampaignFundingPublic]


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    return None if denominator == 0 else (numerator / denominator).quantize(PLACES)


def channel_capacity(session: Session, budget: Budget) -> dict[str, int]:
    """Per channel id: what the current plan gives it (allocation plus draws), minor units."""
    capacity: dict[str, int] = defaultdict(int)
    plan = session.exec(select(Plan).where(Plan.budget_id == budget.id,
                                           Plan.number == budget.current_plan)).one()
    for channel_id, amount in session.exec(
            select(PlanLine.channel_id, func.sum(PlanLine.amount_minor))
            .where(PlanLine.plan_id == plan.id).group_by(PlanLine.channel_id)):
        capacity[channel_id] += int(amount)
    for drawn_to, amount in session.exec(
            select(ReserveEntry.channel_id, func.sum(ReserveEntry.amount_minor))
            .where(ReserveEntry.budget_id == budget.id, ReserveEntry.plan_number == plan.number,
                   col(ReserveEntry.channel_id).is_not(None))
            .group_by(ReserveEntry.channel_id)):
        assert drawn_to is not None
        capacity[drawn_to] += int(amount)
    return capacity


def committed_minor(session: Session, budget_id: str, *,
                    except_campaign: str | None = None) -> dict[str, int]:
    """Per channel id: what campaigns' lines take of it, minor units."""
    statement = select(FundingLine.channel_id, func.sum(FundingLine.amount_minor)).where(
        FundingLine.budget_id == budget_id)
    if except_campaign is not None:
        statement = statement.where(FundingLine.campaign_id != except_campaign)
    return {c: int(a) for c, a in session.exec(statement.group_by(FundingLine.channel_id))}


def require_current_plan(budget: Budget) -> None:
    if budget.current_plan is None:
        raise Conflict(f"Budget {budget.id!r} has no approved plan to fund campaigns from; make "
                       "a plan and approve it first.")


def phases_of(row: LinkedCampaign | None) -> list[Span]:
    """The campaign's phases as the budget last heard of them, in date order."""
    if row is None:
        return []
    return [Span(p["kind"], date.fromisoformat(p["start_date"]), date.fromisoformat(p["end_date"]))
            for p in row.phases]


def funding_public(session: Session, budget: Budget,
                   funding: CampaignFunding) -> CampaignFundingPublic:
    """The funding as the API shows it: lines phased, spend and return from actuals."""
    campaign = session.get(LinkedCampaign, funding.campaign_id)
    phases = phases_of(campaign)
    periods = budget_periods(budget)
    order = {p.id: i for i, p in enumerate(periods)}
    # Without phases the money runs over the campaign's dates (or the fiscal period).
    window = Span("campaign", (campaign and campaign.start_date) or budget.start_date,
                  (campaign and campaign.end_date) or budget.end_date)
    weights = PhaseWeights.model_validate(funding.phase_weights)
    kinds = {c.id: c.kind for c in session.exec(select(Channel).where(
        Channel.budget_id == budget.id))}
    actuals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for actual in session.exec(select(Actual).where(Actual.budget_id == budget.id,
                                                    Actual.campaign_id == funding.campaign_id)):
        actuals[actual.channel_id][0] += actual.spend_minor
        actuals[actual.channel_id][1] += actual.return_minor
    money = lambda units: from_minor(units, budget.currency)  # noqa: E731
    lines, committed = [], 0
    for line in session.exec(select(FundingLine).where(
            FundingLine.budget_id == budget.id, FundingLine.campaign_id == funding.campaign_id)
            .order_by(FundingLine.channel_id)):
        committed += line.amount_minor
        parts = phase_split(line.amount_minor, phases, dict(weights))
        per_period: dict[str, int] = defaultdict(int)
        for span, part in zip(phases, parts) if phases else [(window, line.amount_minor)]:
            for period, amount in spread(part, span, periods).items():
                per_period[period] += amount
        spent, earned = actuals.get(line.channel_id, [0, 0])
        lines.append(CampaignFundingLinePublic(
            channel_id=line.channel_id, channel_kind=kinds[line.channel_id],
            amount=money(line.amount_minor),
            per_phase=[FundingPhasePublic(kind=s.kind, start_date=s.start, end_date=s.end,
                                          amount=money(part)) for s, part in zip(phases, parts)],
            per_period=[FundingPeriodPublic(period=p, amount=money(a))
                        for p, a in sorted(per_period.items(), key=lambda item: order[item[0]])],
            spent=money(spent), return_=money(earned),
            roi=_ratio(Decimal(earned), Decimal(spent))))
    spent = sum(s for s, _ in actuals.values())
    earned = sum(r for _, r in actuals.values())
    roi = _ratio(Decimal(earned), Decimal(spent))
    return CampaignFundingPublic(
        budget_id=budget.id, campaign_id=funding.campaign_id, currency=budget.currency,
        phase_weights=weights, lines=lines, committed=money(committed),
        spent=money(spent), return_=money(earned), roi=roi,
        kpi=_kpi(campaign, money(earned), roi))


def _kpi(campaign: LinkedCampaign | None, earned: Decimal,
         roi: Decimal | None) -> CampaignKpiPublic | None:
    objective = campaign.objective if campaign is not None else None
    if not objective or objective["kpi"].lower() not in MONEY_KPIS:
        return None
    target = Decimal(str(objective["target"]))
    actual = earned if objective["kpi"].lower() == "revenue" else roi
    return CampaignKpiPublic(kpi=objective["kpi"], target=target, actual=actual,
                             progress=None if actual is None else _ratio(actual, target))


def _get_funding(session: Session, budget: Budget, campaign_id: str) -> CampaignFunding:
    funding = session.get(CampaignFunding, (budget.id, campaign_id))
    if funding is None:
        raise NotFound(f"Budget {budget.id!r} does not fund campaign {campaign_id!r}; fund it "
                       f"with PUT /api/v1/budget/budgets/{budget.id}/campaigns/{campaign_id}.")
    return funding


def read_funding(*, session: Session, budget_id: str, campaign_id: str) -> CampaignFundingPublic:
    """Return what a budget funds of a campaign, phased, with spend and return."""
    budget = get_budget(session, budget_id)
    return funding_public(session, budget, _get_funding(session, budget, campaign_id))


def list_campaign_funding(*, session: Session, campaign_id: str) -> CampaignFundingList:
    """Return the funding of a campaign in every budget that funds it."""
    rows = session.exec(select(CampaignFunding).where(
        CampaignFunding.campaign_id == campaign_id).order_by(CampaignFunding.budget_id)).all()
    return CampaignFundingList(items=[funding_public(session, get_budget(session, f.budget_id), f)
                                      for f in rows])


def _lines(session: Session, budget: Budget, funding_in: CampaignFundingPut) -> dict[str, int]:
    """The lines in minor units by channel id; InvalidRequest naming every bad one."""
    known = set(session.exec(select(Channel.id).where(Channel.budget_id == budget.id)))
    errors: list[tuple[str, str]] = []
    lines: dict[str, int] = {}
    for i, line in enumerate(funding_in.lines):
        if line.channel_id not in known:
            errors.append((f"lines[{i}].channel_id", f"budget has no channel {line.channel_id!r}; "
                                                     f"list them at /api/v1/budget/budgets/"
                                                     f"{budget.id}/channels"))
        elif line.channel_id in lines:
            errors.append((f"lines[{i}].channel_id", f"channel {line.channel_id!r} is listed "
                                                     "twice; send one line per channel"))
        try:
            lines[line.channel_id] = to_minor(line.amount, budget.currency)
        except ValueError as error:
            errors.append((f"lines[{i}].amount", str(error)))
    if errors:
        raise invalid_fields(errors)
    return lines


def put_funding(*, session: Session, budget_id: str, campaign_id: str,
                funding_in: CampaignFundingPut, calendar: ServiceClient,
                caller: Caller) -> tuple[CampaignFundingPublic, bool]:
    """Fund a campaign from the budget's current plan (linking it first if needed); tell
    whether the funding is new."""
    budget = get_budget(session, budget_id)
    state = None
    if campaign_id not in budget.campaign_ids or session.get(LinkedCampaign, campaign_id) is None:
        # Asked with no transaction open: a write lock is never held across the network.
        session.rollback()
        state = campaigns.fetch_campaign(calendar, campaign_id)
        if state is None:
            raise NotFound(f"The calendar has no campaign {campaign_id!r}; create it there "
                           "first (POST /api/v1/calendar/campaigns).")
    budget = get_budget(session, budget_id, lock=True)
    require_current_plan(budget)
    lines = _lines(session, budget, funding_in)
    if state is not None:
        campaigns.store(session, state)
    closed = campaigns.closed_campaign(session, campaign_id)
    if closed is not None:
        raise Conflict(f"Campaign {closed.name!r} ({campaign_id}) is {closed.status}: a "
                       f"{closed.status} campaign takes no more money.",
                       campaign_status=closed.status)
    capacity = channel_capacity(session, budget)
    taken = committed_minor(session, budget.id, except_campaign=campaign_id)
    names = dict(session.exec(select(Channel.id, Channel.name).where(
        Channel.budget_id == budget.id)).all())
    for channel_id, amount in lines.items():
        left = capacity.get(channel_id, 0) - taken.get(channel_id, 0)
        if amount > left:
            remaining = from_minor(max(left, 0), budget.currency)
            raise Conflict(
                f"Channel {names[channel_id]!r} ({channel_id}) has {remaining} {budget.currency} "
                f"left in plan {budget.current_plan} after the other campaigns' funding; fund "
                "at most that from it, or draw from the reserve for it.",
                channel_id=channel_id, remaining=format(remaining, "f"))
    weights = funding_in.phase_weights \
        or PlaybookRules.model_validate(budget.rules).phase_weights
    funding = session.get(CampaignFunding, (budget.id, campaign_id))
    created = funding is None
    before = None if funding is None else funding_public(session, budget, funding)
    stored = {} if funding is None else {line.channel_id: line.amount_minor for line in session.exec(
        select(FundingLine).where(FundingLine.budget_id == budget.id,
                                  FundingLine.campaign_id == campaign_id))}
    weights_json = weights.model_dump(mode="json")
    if funding is not None and stored == lines and funding.phase_weights == weights_json \
            and campaign_id in budget.campaign_ids:
        # The same funding sent again: nothing changes, not even the audit log.
        assert before is not None
        return before, False
    if funding is None:
        funding = CampaignFunding(budget_id=budget.id, campaign_id=campaign_id,
                                  phase_weights=weights_json, created_by=caller.principal,
                                  updated_by=caller.principal)
    funding.sqlmodel_update({"phase_weights": weights_json, "updated_by": caller.principal,
                             "updated_at": utcnow()})
    session.add(funding)
    session.execute(delete(FundingLine).where(col(FundingLine.budget_id) == budget.id,
                                              col(FundingLine.campaign_id) == campaign_id))
    session.add_all(FundingLine(budget_id=budget.id, campaign_id=campaign_id, channel_id=c,
                                amount_minor=a) for c, a in lines.items())
    if campaign_id not in budget.campaign_ids:
        budget.campaign_ids = [*budget.campaign_ids, campaign_id]
        budget.version += 1
        budget.updated_at = utcnow()
        session.add(budget)
    session.flush()
    after = funding_public(session, budget, funding)
    audit.record(session, budget_id=budget.id, caller=caller, action="campaign.fund",
                 target=campaign_id, changes={"before": _summary(before), "after": _summary(after)})
    session.commit()
    return after, created


def _summary(funding: CampaignFundingPublic | None) -> dict | None:
    if funding is None:
        return None
    return {"lines": {line.channel_id: line.amount for line in funding.lines},
            "phase_weights": funding.phase_weights, "committed": funding.committed}


def delete_funding(*, session: Session, budget_id: str, campaign_id: str, caller: Caller) -> None:
    """Remove a campaign's funding from a budget (the campaign stays linked)."""
    budget = get_budget(session, budget_id, lock=True)
    before = funding_public(session, budget, _get_funding(session, budget, campaign_id))
    session.execute(delete(FundingLine).where(col(FundingLine.budget_id) == budget.id,
                                              col(FundingLine.campaign_id) == campaign_id))
    session.execute(delete(CampaignFunding).where(col(CampaignFunding.budget_id) == budget.id,
                                                  col(CampaignFunding.campaign_id) == campaign_id))
    audit.record(session, budget_id=budget.id, caller=caller, action="campaign.unfund",
                 target=campaign_id, changes={"before": _summary(before)})
    session.commit()
