"""Plan against actuals: per channel and period, the current plan (with its reserve draws)
next to what was spent and returned; burn rate, projection and alerts. Cut by a campaign, the
plan is the campaign's funding phased over the periods, and the actuals those carrying it."""
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from sqlalchemy import func
from sqlmodel import Session, col, select

from services.budget.ledger.budgets import PlaybookRules
from services.budget.ledger.funding import funding_public
from services.budget.ledger.kept import KeptAnswers
from services.budget.ledger.loaders import budget_periods, channel_names, get_budget
from services.budget.ledger.tables import (
    Actual,
    Budget,
    CampaignFunding,
    Plan,
    PlanLine,
    ReserveEntry,
)
from shared.errors import NotFound
from shared.kept import Kept
from shared.money import minor_text, minor_units, to_minor
from shared.types import Money, Ratio

RATIO_PLACES = Decimal("0.0001")


@dataclass
class Cell:
    planned: int = 0
    spend: int = 0
    earned: int = 0
    reported: bool = False


def cells(session: Session, budget: Budget,
          campaign_id: str | None = None) -> dict[tuple[str, str], Cell]:
    """(channel, period) → plan (current plan plus its draws) and actuals (every campaign's
    and none's together), in minor units; for `campaign_id`, its funding and its actuals."""
    table: dict[tuple[str, str], Cell] = defaultdict(Cell)
    if campaign_id is not None:
        funding = session.get(CampaignFunding, (budget.id, campaign_id))
        if funding is not None:
            for funded in funding_public(session, budget, funding).lines:
                for part in funded.per_period:
                    table[funded.channel_id, part.period].planned += to_minor(part.amount,
                                                                             budget.currency)
    elif budget.current_plan is not None:
        plan = session.exec(select(Plan).where(Plan.budget_id == budget.id,
                                               Plan.number == budget.current_plan)).one()
        # Columns, not rows as objects: a year of weeks on 50 channels is 2,650 lines, and
        # building an ORM object for each cost more than the rest of the answer.
        for channel_id, period, amount in session.exec(
                select(PlanLine.channel_id, PlanLine.period, PlanLine.amount_minor)
                .where(PlanLine.plan_id == plan.id)):
            table[channel_id, period].planned += amount
        for entry in session.exec(select(ReserveEntry).where(
                ReserveEntry.budget_id == budget.id, ReserveEntry.plan_number == plan.number,
                col(ReserveEntry.channel_id).is_not(None))):
            # A draw for a channel always names its period (see reserve.draw).
            assert entry.channel_id is not None and entry.period is not None
            table[entry.channel_id, entry.period].planned += entry.amount_minor
    # Every campaign's actuals of a channel and period together, summed by the database.
    statement = (select(Actual.channel_id, Actual.period, func.sum(Actual.spend_minor),
                        func.sum(Actual.return_minor))
                 .where(Actual.budget_id == budget.id)
                 .group_by(col(Actual.channel_id), col(Actual.period)))
    if campaign_id is not None:
        statement = statement.where(Actual.campaign_id == campaign_id)
    for channel_id, period, spend, earned in session.exec(statement):
        cell = table[channel_id, period]
        cell.spend += int(spend)
        cell.earned += int(earned)
        cell.reported = True
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
    campaign_id: str | None = Field(description="The campaign the figures are cut by: its "
                                    "funding as the plan, its actuals as the spend.")
    through_period: str | None = Field(description="The latest period with actuals.")
    alert_percent: Ratio
    rows: list[VarianceRowPublic]
    burn: list[BurnPublic]
    alerts: list[AlertPublic]


def _decimal_text(value: Decimal) -> str:
    """A decimal as the API writes it (`shared.types`: fixed point, no "-0")."""
    return format(abs(value) if value == 0 else value, "f")


# Below this numerator, rounding numerator / denominator to 4 places in integers gives what
# Decimal division then `quantize` gave: its 28 significant digits can only land on or across
# a rounding tie when |numerator| >= 10**23 (a quotient's distance from a tie is at least
# 1 / (20,000 × denominator)).
EXACT_RATIOS_BELOW = 10**22


def _ratio_text(numerator: int, denominator: int) -> str | None:
    """numerator / denominator to 4 places (half to even) as the API writes it, in integers;
    None for a zero denominator."""
    if denominator == 0:
        return None
    if abs(numerator) >= EXACT_RATIOS_BELOW:
        return _decimal_text((Decimal(numerator) / Decimal(denominator)).quantize(RATIO_PLACES))
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, rest = divmod(numerator * 10_000, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and quotient % 2):
        quotient += 1
    return minor_text(quotient, 4)


ROW_FIELDS = ("channel_id", "channel", "period", "planned", "spend", "variance",
              "variance_percent", "return", "roi")
# A row's texts in ROW_FIELDS order; the figures (from "planned" on) written as the API writes
# decimals, None for null.
Row = tuple[str, str, str, str, str, str, str | None, str, str | None]


@dataclass(frozen=True)
class VarianceReport:
    """The variance with every figure already written as its text: built once, it is written
    as JSON (`VariancePublic`'s shape) or CSV without a model or a Decimal per figure."""
    currency: str
    plan: int | None
    campaign_id: str | None
    through_period: str | None
    alert_percent: str
    rows: list[Row]
    burn: list[dict[str, str | None]]
    alerts: list[dict[str, str | None]]

    def json(self) -> bytes:
        """The answer's bytes, exactly as `VariancePublic` writes them (by its aliases)."""
        return to_json({"currency": self.currency, "plan": self.plan,
                        "campaign_id": self.campaign_id, "through_period": self.through_period,
                        "alert_percent": self.alert_percent,
                        "rows": [dict(zip(ROW_FIELDS, row)) for row in self.rows],
                        "burn": self.burn, "alerts": self.alerts})


def read_variance_json(*, session: Session, budget_id: str, campaign_id: str | None = None,
                       kept: KeptAnswers) -> Kept:
    """Answer the variance's JSON: the kept one while the budget is as it was made from (a cut
    by campaign, rarely read twice and read from campaign rows too, is made every time)."""
    budget = get_budget(session, budget_id)
    if campaign_id is not None:
        return Kept.of(variance_of(session, budget, campaign_id).json())
    return kept.answer("variance", budget, lambda: variance_of(session, budget).json())


def variance_of(session: Session, budget: Budget, campaign_id: str | None = None) -> VarianceReport:
    """Compare the current plan (with its draws) with actuals per channel and period, or a
    campaign's funding with its actuals."""
    if campaign_id is not None and campaign_id not in budget.campaign_ids:
        raise NotFound(f"Budget {budget.id!r} does not link campaign {campaign_id!r}; its "
                       f"campaigns are listed at /api/v1/budget/budgets/{budget.id}.")
    rules = PlaybookRules.model_validate(budget.rules)
    names = channel_names(session, budget.id)
    order = [p.id for p in budget_periods(budget)]
    position = {period: i for i, period in enumerate(order)}
    table = cells(session, budget, campaign_id)
    reported = [position[period] for (_, period), cell in table.items() if cell.reported]
    through = max(reported) if reported else -1
    decimals = minor_units(budget.currency)
    texts: dict[int, str] = {}

    def money(units: int) -> str:
        # A year's variance writes 18,000 amounts and only about 5,500 differ (a channel's
        # weekly plan repeats, and its alerts repeat its rows): each is written once.
        text = texts.get(units)
        if text is None:
            text = texts[units] = minor_text(units, decimals)
        return text

    keys = sorted(table, key=lambda key: (names[key[0]], position[key[1]]))
    rows: list[Row] = []
    alerts: list[dict[str, str | None]] = []
    limit = 1 + rules.alert_percent / 100

    def over(channel_id: str, period: str | None, planned: int, spend: int) -> None:
        if spend > planned * limit:
            percent = None if planned == 0 else _ratio_text(100 * (spend - planned), planned)
            where = f"in {period}" if period else "to date"
            planned_money, spend_money = money(planned), money(spend)
            # Spend above plan: the percent is positive, so "0.0000" is the only zero it writes.
            alerts.append({
                "channel_id": channel_id, "channel": names[channel_id], "period": period,
                "planned": planned_money, "spend": spend_money, "over_percent": percent,
                "detail": f"{names[channel_id]} spent {spend_money} {where} against "
                          f"{planned_money} planned"
                          + (f" ({percent} % over)" if percent not in (None, "0.0000") else "")})

    for channel_id, period in keys:
        cell = table[channel_id, period]
        rows.append((channel_id, names[channel_id], period, money(cell.planned),
                     money(cell.spend), money(cell.spend - cell.planned),
                     _ratio_text(100 * (cell.spend - cell.planned), cell.planned),
                     money(cell.earned), _ratio_text(cell.earned, cell.spend)))
        if cell.reported:
            over(channel_id, period, cell.planned, cell.spend)
    # Each channel's cells gathered once: a year of weeks on 50 channels is 2,650 cells, and
    # scanning them all again for every channel took most of the answer's time.
    by_channel: dict[str, list[tuple[int, Cell]]] = defaultdict(list)
    for (channel_id, period), cell in table.items():
        by_channel[channel_id].append((position[period], cell))
    burn: list[dict[str, str | None]] = []
    for whose in [None, *sorted(names, key=lambda c: names[c])]:
        mine = ([item for cells_of in by_channel.values() for item in cells_of] if whose is None
                else by_channel.get(whose, []))
        planned_total = sum(cell.planned for _, cell in mine)
        to_date = sum(cell.planned for i, cell in mine if i <= through)
        spend = sum(cell.spend for _, cell in mine)
        burn.append({
            "channel_id": whose, "planned_total": money(planned_total),
            "planned_to_date": money(to_date),
            "spend_to_date": money(spend), "burn_rate": _ratio_text(spend, to_date),
            "projected_spend": None if to_date == 0 else money(int(
                (planned_total * Decimal(spend) / to_date).to_integral_value()))})
        if whose is not None and through >= 0:
            over(whose, None, to_date, spend)
    return VarianceReport(currency=budget.currency, plan=budget.current_plan,
                          campaign_id=campaign_id,
                          through_period=order[through] if through >= 0 else None,
                          alert_percent=_decimal_text(rules.alert_percent), rows=rows,
                          burn=burn, alerts=alerts)
