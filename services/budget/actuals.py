"""Actual spend and return per channel and period, and how they compare with the plan.

An import is keyed by (channel, period): a replayed file changes nothing, a restated row
replaces the old figures (and the audit log keeps both), nothing is ever added twice.
"""
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from services.budget import audit
from services.budget.budgets import PlaybookRules, budget_periods, get_budget
from services.budget.models import Actual, Budget, Channel, PlanLine, Plan, ReserveEntry, utcnow
from services.budget.optimization import Amount, Identifier, Ratio
from shared.errors import invalid_fields
from shared.internal_auth import Caller
from shared.money import from_minor, to_minor
from shared.types import Money
from shared.pagination import Page, paginate

MAX_ROWS = 10_000


class ActualRow(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel_id: Identifier
    period: str = Field(description="A period id of the budget, e.g. 2027-03.")
    spend: Amount
    return_: Amount = Field(alias="return")


class ActualsImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[ActualRow] = Field(min_length=1, max_length=MAX_ROWS)


class ImportResultPublic(BaseModel):
    created: int
    updated: int
    unchanged: int


class ActualPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel_id: str
    period: str
    spend: Money
    return_: Money = Field(alias="return")
    updated_by: str
    updated_at: datetime


def import_actuals(*, session: Session, budget_id: str, actuals_in: ActualsImport,
                   caller: Caller) -> ImportResultPublic:
    """Store rows of actuals by (channel, period); all rows are checked before any is stored."""
    budget = get_budget(session, budget_id, lock=True)
    channels = set(session.exec(select(Channel.id).where(Channel.budget_id == budget.id)))
    periods = [p.id for p in budget_periods(budget)]
    errors, seen, figures = [], {}, {}
    for i, row in enumerate(actuals_in.rows):
        if row.channel_id not in channels:
            errors.append((f"rows[{i}].channel_id", f"budget has no channel {row.channel_id!r}"))
        if row.period not in periods:
            errors.append((f"rows[{i}].period", f"{row.period!r} is not a period of this budget "
                                                f"({periods[0]} to {periods[-1]})"))
        if (row.channel_id, row.period) in seen:
            errors.append((f"rows[{i}]", f"same channel and period as rows[{seen[row.channel_id, row.period]}]; "
                                         "send one row per channel and period"))
        seen.setdefault((row.channel_id, row.period), i)
        for field, amount in (("spend", row.spend), ("return", row.return_)):
            try:
                figures[i, field] = to_minor(amount, budget.currency)
            except ValueError as error:
                errors.append((f"rows[{i}].{field}", str(error)))
    if errors:
        raise invalid_fields(errors)
    stored = {(a.channel_id, a.period): a for a in session.exec(
        select(Actual).where(Actual.budget_id == budget.id))}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    changes = []
    for i, row in enumerate(actuals_in.rows):
        spend, earned = figures[i, "spend"], figures[i, "return"]
        actual = stored.get((row.channel_id, row.period))
        if actual is None:
            actual = Actual(budget_id=budget.id, channel_id=row.channel_id, period=row.period,
                            spend_minor=spend, return_minor=earned, updated_by=caller.principal)
            counts["created"] += 1
        elif (actual.spend_minor, actual.return_minor) == (spend, earned):
            counts["unchanged"] += 1
            continue
        else:
            changes.append({"channel_id": row.channel_id, "period": row.period,
                            "from": _pair(budget, actual.spend_minor, actual.return_minor),
                            "to": _pair(budget, spend, earned)})
            actual.spend_minor, actual.return_minor = spend, earned
            actual.updated_by, actual.updated_at = caller.principal, utcnow()
            counts["updated"] += 1
        session.add(actual)
    audit.record(session, budget_id=budget.id, caller=caller, action="actuals.import",
                 target=budget.id, changes=counts | {"restated": changes})
    return ImportResultPublic(**counts)


def _pair(budget: Budget, spend: int, earned: int) -> dict[str, str]:
    return {"spend": format(from_minor(spend, budget.currency), "f"),
            "return": format(from_minor(earned, budget.currency), "f")}


def list_actuals(*, session: Session, budget_id: str, channel_id: str | None, period: str | None,
                 limit: int, cursor: str | None) -> Page[ActualPublic]:
    """List actuals by period, then channel."""
    budget = get_budget(session, budget_id)
    statement = select(Actual).where(Actual.budget_id == budget.id)
    if channel_id is not None:
        statement = statement.where(Actual.channel_id == channel_id)
    if period is not None:
        statement = statement.where(Actual.period == period)
    rows, next_cursor = paginate(session, statement, order_by=[Actual.period, Actual.channel_id],
                                 limit=limit, cursor=cursor)
    return Page[ActualPublic](items=[_public(budget, a) for a in rows], next_cursor=next_cursor)


def _public(budget: Budget, actual: Actual) -> ActualPublic:
    return ActualPublic(channel_id=actual.channel_id, period=actual.period,
                        spend=from_minor(actual.spend_minor, budget.currency),
                        return_=from_minor(actual.return_minor, budget.currency),
                        updated_by=actual.updated_by, updated_at=actual.updated_at)


# --- variance ------------------------------------------------------------------------------

@dataclass
class Cell:
    planned: int = 0
    spend: int = 0
    earned: int = 0
    reported: bool = False


def cells(session: Session, budget: Budget) -> dict[tuple[str, str], Cell]:
    """(channel, period) → plan (current plan plus its draws) and actuals, in minor units."""
    table: dict[tuple[str, str], Cell] = defaultdict(Cell)
    if budget.current_plan is not None:
        plan = session.exec(select(Plan).where(Plan.budget_id == budget.id,
                                               Plan.number == budget.current_plan)).one()
        for line in session.exec(select(PlanLine).where(PlanLine.plan_id == plan.id)):
            table[line.channel_id, line.period].planned += line.amount_minor
        for entry in session.exec(select(ReserveEntry).where(
                ReserveEntry.budget_id == budget.id, ReserveEntry.plan_number == plan.number,
                ReserveEntry.channel_id.is_not(None))):
            table[entry.channel_id, entry.period].planned += entry.amount_minor
    for actual in session.exec(select(Actual).where(Actual.budget_id == budget.id)):
        cell = table[actual.channel_id, actual.period]
        cell.spend, cell.earned, cell.reported = actual.spend_minor, actual.return_minor, True
    return table


class VarianceRowPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel_id: str
    channel: str
    period: str
    planned: Money
    spend: Money
    variance: Money = Field(description="spend − planned: positive means over plan.")
    variance_percent: Ratio | None = Field(description="Of planned; null when nothing was planned.")
    return_: Money = Field(alias="return")
    roi: Ratio | None


class BurnPublic(BaseModel):
    channel_id: str | None = Field(description="null for the whole budget.")
    planned_total: Money
    planned_to_date: Money = Field(description="Planned through the latest period with actuals.")
    spend_to_date: Money
    burn_rate: Ratio | None = Field(description="spend_to_date / planned_to_date.")
    projected_spend: Money | None = Field(description="planned_total × burn_rate: where spend "
                                          "ends if it keeps this pace.")


class AlertPublic(BaseModel):
    channel_id: str
    channel: str
    period: str | None = Field(description="null: the channel's total to date.")
    planned: Money
    spend: Money
    over_percent: Ratio | None = Field(description="null when nothing was planned.")
    detail: str


class VariancePublic(BaseModel):
    currency: str
    plan: int | None
    through_period: str | None = Field(description="The latest period with actuals.")
    alert_percent: Ratio
    rows: list[VarianceRowPublic]
    burn: list[BurnPublic]
    alerts: list[AlertPublic]


def _ratio(numerator: int, denominator: int) -> Decimal | None:
    return None if denominator == 0 else (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"))


def read_variance(*, session: Session, budget_id: str) -> VariancePublic:
    """Compare the current plan (with its draws) with actuals per channel and period."""
    budget = get_budget(session, budget_id)
    rules = PlaybookRules.model_validate(budget.rules)
    names = dict(session.exec(select(Channel.id, Channel.name).where(Channel.budget_id == budget.id)).all())
    order = [p.id for p in budget_periods(budget)]
    table = cells(session, budget)
    reported = [order.index(period) for (_, period), cell in table.items() if cell.reported]
    through = max(reported) if reported else -1
    money = lambda units: from_minor(units, budget.currency)  # noqa: E731
    keys = sorted(table, key=lambda key: (names[key[0]], order.index(key[1])))
    rows, alerts = [], []
    limit = 1 + rules.alert_percent / 100

    def over(channel_id: str, period: str | None, planned: int, spend: int) -> None:
        if spend > planned * limit:
            percent = None if planned == 0 else _ratio(100 * (spend - planned), planned)
            where = f"in {period}" if period else "to date"
            alerts.append(AlertPublic(
                channel_id=channel_id, channel=names[channel_id], period=period,
                planned=money(planned), spend=money(spend), over_percent=percent,
                detail=f"{names[channel_id]} spent {money(spend)} {where} against "
                       f"{money(planned)} planned" + (f" ({percent} % over)" if percent else "")))

    for channel_id, period in keys:
        cell = table[channel_id, period]
        rows.append(VarianceRowPublic(
            channel_id=channel_id, channel=names[channel_id], period=period,
            planned=money(cell.planned), spend=money(cell.spend),
            variance=money(cell.spend - cell.planned),
            variance_percent=_ratio(100 * (cell.spend - cell.planned), cell.planned),
            return_=money(cell.earned), roi=_ratio(cell.earned, cell.spend)))
        if cell.reported:
            over(channel_id, period, cell.planned, cell.spend)
    burn = []
    for channel_id in [None, *sorted(names, key=names.get)]:
        mine = [(order.index(p), cell) for (c, p), cell in table.items()
                if channel_id is None or c == channel_id]
        planned_total = sum(cell.planned for _, cell in mine)
        to_date = sum(cell.planned for i, cell in mine if i <= through)
        spend = sum(cell.spend for _, cell in mine)
        rate = _ratio(spend, to_date)
        burn.append(BurnPublic(
            channel_id=channel_id, planned_total=money(planned_total),
            planned_to_date=money(to_date), spend_to_date=money(spend), burn_rate=rate,
            projected_spend=None if rate is None else money(int(
                (planned_total * Decimal(spend) / to_date).to_integral_value()))))
        if channel_id is not None and through >= 0:
            over(channel_id, None, to_date, spend)
    return VariancePublic(currency=budget.currency, plan=budget.current_plan,
                          through_period=order[through] if through >= 0 else None,
                          alert_percent=rules.alert_percent, rows=rows, burn=burn, alerts=alerts)
