"""CSV exports for finance: a header row, a fixed column order, exact decimal strings."""
import csv
import io

from sqlmodel import Session, select

from services.budget.ledger.loaders import budget_periods, channel_names, get_budget, get_plan
from services.budget.ledger.tables import Actual, PlanLine
from shared.money import from_minor

PLAN_COLUMNS = ("budget_id", "plan", "channel_id", "channel", "period", "amount",
                "expected_return", "currency")
ACTUALS_COLUMNS = ("budget_id", "channel_id", "channel", "period", "spend", "return", "currency")


def _csv(columns: tuple[str, ...], rows: list[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")   # RFC 4180 line ends
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def plan_csv(*, session: Session, budget_id: str, number: int) -> str:
    """One row per channel and period of a plan version, as the optimizer allocated it."""
    budget = get_budget(session, budget_id)
    plan = get_plan(session, budget.id, number)
    names = channel_names(session, budget.id)
    order = {p.id: i for i, p in enumerate(budget_periods(budget))}
    lines = sorted(session.exec(select(PlanLine).where(PlanLine.plan_id == plan.id)),
                   key=lambda line: (names[line.channel_id], order[line.period]))
    money = lambda units: format(from_minor(units, budget.currency), "f")  # noqa: E731
    return _csv(PLAN_COLUMNS, [(budget.id, plan.number, line.channel_id, names[line.channel_id],
                                line.period, money(line.amount_minor),
                                money(line.expected_return_minor), budget.currency)
                               for line in lines])


def actuals_csv(*, session: Session, budget_id: str) -> str:
    """One row per channel and period with reported actuals."""
    budget = get_budget(session, budget_id)
    names = channel_names(session, budget.id)
    order = {p.id: i for i, p in enumerate(budget_periods(budget))}
    actuals = sorted(session.exec(select(Actual).where(Actual.budget_id == budget.id)),
                     key=lambda a: (order[a.period], names[a.channel_id]))
    money = lambda units: format(from_minor(units, budget.currency), "f")  # noqa: E731
    return _csv(ACTUALS_COLUMNS, [(budget.id, a.channel_id, names[a.channel_id], a.period,
                                   money(a.spend_minor), money(a.return_minor), budget.currency)
                                  for a in actuals])
