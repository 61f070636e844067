"""Actual spend and return per channel and period, imported by finance.

An import is keyed by (channel, period, campaign): a replayed file changes nothing, a restated
row replaces the old figures (and the audit log keeps both), nothing is ever added twice. A row
may carry a `campaign_id` (a campaign linked to the budget): the campaign's funding reports its
spend, return and ROI, and variance and exports can be cut by it.
"""
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from services.budget.fields import PeriodId
from services.budget.ledger import audit
from services.budget.ledger.loaders import budget_periods, get_budget
from services.budget.ledger.tables import NO_CAMPAIGN, Actual, Budget, Channel, page_order, utcnow
from shared.errors import invalid_fields
from shared.idempotency import Idempotency
from shared.internal_auth import Caller
from shared.money import from_minor, to_minor
from shared.pagination import Page, paginate
from shared.types import Amount, Identifier, Money, StrictModel

MAX_ROWS = 10_000


class ActualRow(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel_id: Identifier
    period: PeriodId = Field(description="A period id of the budget, e.g. 2027-03.")  # type: ignore[valid-type]
    spend: Amount
    return_: Amount = Field(alias="return")
    campaign_id: Identifier | None = Field(None, description="The linked campaign this spend "
                                           "was for; null: no campaign's.")


class ActualsImport(StrictModel):
    rows: list[ActualRow] = Field(min_length=1, max_length=MAX_ROWS)


class ImportResultPublic(BaseModel):
    created: int
    updated: int
    unchanged: int


class ActualPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel_id: str
    period: str
    campaign_id: str | None
    spend: Money
    return_: Money = Field(alias="return")
    updated_by: str
    updated_at: datetime


def import_actuals(*, session: Session, idempotency: Idempotency, budget_id: str,
                   actuals_in: ActualsImport, caller: Caller) -> ImportResultPublic:
    """Store rows of actuals by (channel, period); all rows are checked before any is stored."""
    budget = get_budget(session, budget_id, lock=True)
    channels = set(session.exec(select(Channel.id).where(Channel.budget_id == budget.id)))
    periods = [p.id for p in budget_periods(budget)]
    errors: list[tuple[str, str]] = []
    seen: dict[tuple[str, str, str], int] = {}
    figures: dict[tuple[int, str], int] = {}
    for i, row in enumerate(actuals_in.rows):
        if row.channel_id not in channels:
            errors.append((f"rows[{i}].channel_id", f"budget has no channel {row.channel_id!r}"))
        if row.period not in periods:
            errors.append((f"rows[{i}].period", f"{row.period!r} is not a period of this budget "
                                                f"({periods[0]} to {periods[-1]})"))
        if row.campaign_id is not None and row.campaign_id not in budget.campaign_ids:
            errors.append((f"rows[{i}].campaign_id", f"campaign {row.campaign_id!r} is not "
                                                     "linked to this budget; link it (the "
                                                     "budget's campaign_ids) or fund it first"))
        key = (row.channel_id, row.period, _campaign(row.campaign_id))
        if key in seen:
            errors.append((f"rows[{i}]", f"same channel, period and campaign as rows[{seen[key]}]"
                                         "; send one row per channel, period and campaign"))
        seen.setdefault(key, i)
        for field, amount in (("spend", row.spend), ("return", row.return_)):
            try:
                figures[i, field] = to_minor(amount, budget.currency)
            except ValueError as error:
                errors.append((f"rows[{i}].{field}", str(error)))
    if errors:
        raise invalid_fields(errors)
    stored = {(a.channel_id, a.period, a.campaign_id): a for a in session.exec(
        select(Actual).where(Actual.budget_id == budget.id))}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    changes = []
    for i, row in enumerate(actuals_in.rows):
        spend, earned = figures[i, "spend"], figures[i, "return"]
        campaign = _campaign(row.campaign_id)
        actual = stored.get((row.channel_id, row.period, campaign))
        if actual is None:
            actual = Actual(budget_id=budget.id, channel_id=row.channel_id, period=row.period,
                            campaign_id=campaign, spend_minor=spend, return_minor=earned,
                            updated_by=caller.principal)
            counts["created"] += 1
        elif (actual.spend_minor, actual.return_minor) == (spend, earned):
            counts["unchanged"] += 1
            continue
        else:
            changes.append({"channel_id": row.channel_id, "period": row.period,
                            "campaign_id": row.campaign_id,
                            "from": _pair(budget, actual.spend_minor, actual.return_minor),
                            "to": _pair(budget, spend, earned)})
            actual.spend_minor, actual.return_minor = spend, earned
            actual.updated_by, actual.updated_at = caller.principal, utcnow()
            counts["updated"] += 1
        session.add(actual)
    audit.record(session, budget_id=budget.id, caller=caller, action="actuals.import",
                 target=budget.id, changes=counts | {"restated": changes})
    public = ImportResultPublic(**counts)
    # 200, not 201: an import may create nothing (a replayed file) and keeps no resource.
    idempotency.record(session, public, status_code=200)
    session.commit()
    return public


def _campaign(campaign_id: str | None) -> str:
    return NO_CAMPAIGN if campaign_id is None else campaign_id


def _pair(budget: Budget, spend: int, earned: int) -> dict[str, str]:
    return {"spend": format(from_minor(spend, budget.currency), "f"),
            "return": format(from_minor(earned, budget.currency), "f")}


def list_actuals(*, session: Session, budget_id: str, channel_id: str | None, period: str | None,
                 campaign_id: str | None, limit: int, cursor: str | None) -> Page[ActualPublic]:
    """List actuals by period, then channel, then campaign."""
    budget = get_budget(session, budget_id)
    statement = select(Actual).where(Actual.budget_id == budget.id)
    if channel_id is not None:
        statement = statement.where(Actual.channel_id == channel_id)
    if period is not None:
        statement = statement.where(Actual.period == period)
    if campaign_id is not None:
        statement = statement.where(Actual.campaign_id == campaign_id)
    rows, next_cursor = paginate(session, statement, order_by=page_order(
                                     Actual.period, Actual.channel_id, Actual.campaign_id),
                                 limit=limit, cursor=cursor)
    return Page[ActualPublic](items=[_public(budget, a) for a in rows], next_cursor=next_cursor)


def _public(budget: Budget, actual: Actual) -> ActualPublic:
    return ActualPublic(channel_id=actual.channel_id, period=actual.period,
                        campaign_id=actual.campaign_id or None,
                        spend=from_minor(actual.spend_minor, budget.currency),
                        return_=from_minor(actual.return_minor, budget.currency),
                        updated_by=actual.updated_by, updated_at=actual.updated_at)
