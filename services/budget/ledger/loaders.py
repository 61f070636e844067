"""Load a budget, channel or plan version, or raise NotFound saying where to look."""
from sqlmodel import Session, select

from services.budget.ledger.periods import Period, periods
from services.budget.ledger.tables import Budget, Channel, Plan
from shared.errors import NotFound


def get_budget(session: Session, budget_id: str, *, lock: bool = False) -> Budget:
    """Load a budget or raise NotFound; `lock` holds its row until commit (PostgreSQL
    `FOR UPDATE`; SQLite writers are already serialized by BEGIN IMMEDIATE)."""
    statement = select(Budget).where(Budget.id == budget_id)
    budget = session.exec(statement.with_for_update() if lock else statement).first()
    if budget is None:
        raise NotFound(f"There is no budget {budget_id!r}; list budgets at /api/v1/budget/budgets.")
    return budget


def get_channel(session: Session, budget_id: str, channel_id: str) -> Channel:
    """Load one of a budget's channels or raise NotFound."""
    channel = session.get(Channel, channel_id)
    if channel is None or channel.budget_id != budget_id:
        raise NotFound(f"Budget {budget_id!r} has no channel {channel_id!r}; list them at "
                       f"/api/v1/budget/budgets/{budget_id}/channels.")
    return channel


def get_plan(session: Session, budget_id: str, number: int) -> Plan:
    """Load plan version `number` of a budget or raise NotFound."""
    plan = session.exec(select(Plan).where(Plan.budget_id == budget_id,
                                           Plan.number == number)).first()
    if plan is None:
        raise NotFound(f"Budget {budget_id!r} has no plan {number}; list its plans at "
                       f"/api/v1/budget/budgets/{budget_id}/plans.")
    return plan


def budget_periods(budget: Budget) -> list[Period]:
    """The budget's reporting periods."""
    return periods(budget.start_date, budget.end_date, budget.period_length)  # type: ignore[arg-type]


def channel_names(session: Session, budget_id: str) -> dict[str, str]:
    """Channel id → name, for every channel of the budget."""
    return dict(session.exec(select(Channel.id, Channel.name)
                             .where(Channel.budget_id == budget_id)).all())
