"""The budget ledger's tables. Money is stored as integer minor units (cents): exact on
SQLite and PostgreSQL alike, and summed exactly by the database."""
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, ForeignKey, UniqueConstraint
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Field, SQLModel

from shared.db import Instant, service_registry
from shared.events import consumer_table
from shared.idempotency import idempotency_table
from shared.internal_auth import nonce_table
from shared.jobs import job_table
from shared.types import ID_LENGTH, NAME_LENGTH

# An actual that is no campaign's spend (`Actual.campaign_id`).
NO_CAMPAIGN = ""
# Ids this service makes itself (`shared.ids.new_id`); ids the API accepts are up to ID_LENGTH.
KEY_LENGTH = 40
# Period ids ("2027-03", "2027-Q1", "2027-W09") and the reasons given for reserve entries, as
# long as the API accepts them (`services.budget.fields`).
PERIOD_LENGTH = 10
REASON_LENGTH = 1000


class BudgetModel(SQLModel, registry=service_registry()):
    """Base of every budget table: they live on the budget service's own metadata."""


idempotency_record = idempotency_table(BudgetModel.metadata)
# The calendar event feed's cursor and lease (`services.budget.propagation`).
event_consumer = consumer_table(BudgetModel.metadata)
# Internal credentials already used: a replayed one is refused in every process.
internal_nonce = nonce_table(BudgetModel.metadata)
# Long solves run as jobs (`services.budget.jobs`): stored, so any process may run them.
job = job_table(BudgetModel.metadata)


def page_order(*columns: object) -> list[InstrumentedAttribute[Any]]:
    """`columns` as `shared.pagination.paginate` takes them: SQLModel types a table's class
    attributes as their values' types, though at run time they are the columns."""
    return [cast(InstrumentedAttribute[Any], column) for column in columns]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _instant(**kwargs) -> Any:
    return Field(default_factory=utcnow, sa_type=Instant, **kwargs)


def _money(nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_type=BigInteger, nullable=nullable)


def _budget_key() -> Any:
    return Field(sa_column_args=[ForeignKey("budget.id")], max_length=KEY_LENGTH, index=True)


def _channel_key(**kwargs) -> Any:
    return Field(sa_column_args=[ForeignKey("channel.id")], max_length=KEY_LENGTH, **kwargs)


class Budget(BudgetModel, table=True):
    id: str = Field(primary_key=True, max_length=KEY_LENGTH)
    name: str = Field(max_length=NAME_LENGTH)
    department: str = Field(max_length=ID_LENGTH, index=True)
    currency: str = Field(max_length=3)
    start_date: date
    end_date: date
    period_length: str = Field(max_length=10)
    total_minor: int = _money()
    # {"percent": "10"} or {"amount": "50000.00"}, decimal strings (exact).
    reserve: dict = Field(sa_type=JSON)
    groups: list = Field(sa_type=JSON)
    rules: dict = Field(sa_type=JSON)
    campaign_ids: list = Field(sa_type=JSON)
    current_plan: int | None = None
    # Four eyes: plan approvals and reserve draws above this need a second key holder.
    four_eyes_above_minor: int | None = _money(nullable=True)
    version: int = 1
    # Moved by the database (migration 0008's triggers) in every transaction that changes the
    # budget's channels, plan lines, reserve entries or actuals: answers kept per process
    # (`ledger.kept`) are found by it.
    revision: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    created_by: str = Field(max_length=200)
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class Channel(BudgetModel, table=True):
    __table_args__ = (UniqueConstraint("budget_id", "name"),)

    id: str = Field(primary_key=True, max_length=KEY_LENGTH)
    budget_id: str = _budget_key()
    name: str = Field(max_length=ID_LENGTH)
    kind: str = Field(max_length=20)
    response: dict = Field(sa_type=JSON)
    min_minor: int | None = _money(nullable=True)
    max_minor: int | None = _money(nullable=True)
    min_if_used: bool = False
    group: str | None = Field(default=None, max_length=ID_LENGTH)
    state: str = Field(max_length=10)
    version: int = 1
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class Plan(BudgetModel, table=True):
    """An immutable allocation: what the optimizer was asked and what it answered."""
    __table_args__ = (UniqueConstraint("budget_id", "number"),)

    id: str = Field(primary_key=True, max_length=KEY_LENGTH)
    budget_id: str = _budget_key()
    number: int
    method: str = Field(max_length=20)
    request: dict = Field(sa_type=JSON)
    result: dict = Field(sa_type=JSON)
    spend_minor: int = _money()
    reserve_minor: int = _money()
    created_by: str = Field(max_length=200)
    # Each principal's API key name, as the caller was signed when it acted (null: a key
    # without a name, a service, or a row from before names).
    created_by_name: str | None = Field(default=None, max_length=200)
    created_at: datetime = _instant()
    approved_by: str | None = Field(default=None, max_length=200)
    approved_by_name: str | None = Field(default=None, max_length=200)
    approved_at: datetime | None = Field(default=None, sa_type=Instant)


class PlanLine(BudgetModel, table=True):
    __tablename__ = "plan_line"

    plan_id: str = Field(sa_column_args=[ForeignKey("plan.id")], primary_key=True, max_length=KEY_LENGTH)
    channel_id: str = _channel_key(primary_key=True)
    period: str = Field(primary_key=True, max_length=PERIOD_LENGTH)
    amount_minor: int = _money()
    expected_return_minor: int = _money()


class ReserveEntry(BudgetModel, table=True):
    """One line of the reserve's ledger: a draw (positive) or its reversal (negative).
    Append-only, like the audit log (a trigger refuses UPDATE and DELETE)."""
    __tablename__ = "reserve_entry"

    id: str = Field(primary_key=True, max_length=KEY_LENGTH)
    budget_id: str = _budget_key()
    kind: str = Field(max_length=10)
    amount_minor: int = _money()
    channel_id: str | None = _channel_key(default=None)
    campaign_id: str | None = Field(default=None, max_length=ID_LENGTH)
    plan_number: int | None = None
    period: str | None = Field(default=None, max_length=PERIOD_LENGTH)
    reason: str = Field(max_length=REASON_LENGTH)
    # A draw is reversed at most once: the database refuses a second reversal.
    reverses_id: str | None = Field(default=None, max_length=KEY_LENGTH, unique=True)
    author: str = Field(max_length=200)
    author_name: str | None = Field(default=None, max_length=200)
    # The second key holder who made a four-eyes draw effective (`ledger.approvals`).
    confirmed_by: str | None = Field(default=None, max_length=200)
    confirmed_by_name: str | None = Field(default=None, max_length=200)
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = _instant()


class Actual(BudgetModel, table=True):
    """Spend and return of one channel in one period, for one campaign or none; the key makes
    a replayed file harmless."""

    budget_id: str = Field(sa_column_args=[ForeignKey("budget.id")], primary_key=True,
                           max_length=KEY_LENGTH)
    channel_id: str = _channel_key(primary_key=True)
    period: str = Field(primary_key=True, max_length=PERIOD_LENGTH)
    # NO_CAMPAIGN for spend that is no campaign's: a key column cannot be null.
    campaign_id: str = Field(default=NO_CAMPAIGN, primary_key=True, max_length=ID_LENGTH)
    spend_minor: int = _money()
    return_minor: int = _money()
    updated_by: str = Field(max_length=200)
    updated_at: datetime = _instant()


class AuditEntry(BudgetModel, table=True):
    """Append-only (a trigger refuses UPDATE and DELETE, see migration 0002)."""
    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    budget_id: str = Field(max_length=KEY_LENGTH, index=True)
    at: datetime = _instant()
    principal: str = Field(max_length=200)
    principal_name: str | None = Field(default=None, max_length=200)
    role: str = Field(max_length=20)
    request_id: str | None = Field(default=None, max_length=128)
    action: str = Field(max_length=50)
    target: str = Field(max_length=ID_LENGTH)
    changes: dict = Field(sa_type=JSON)


class LinkedCampaign(BudgetModel, table=True):
    """What the budget knows of a campaign a budget links: stored when a budget links it,
    then kept current by the calendar's event feed. Draws for a closed campaign are refused."""
    __tablename__ = "linked_campaign"

    campaign_id: str = Field(primary_key=True, max_length=ID_LENGTH)
    name: str = Field(max_length=NAME_LENGTH)
    status: str = Field(max_length=20)
    start_date: date | None = None
    end_date: date | None = None
    # The calendar's objective ({kpi, target, unit, deadline}) and phases ([{id, kind,
    # start_date, end_date}]): a funded campaign's money is phased over them.
    objective: dict | None = Field(default=None, sa_type=JSON)
    phases: list = Field(default_factory=list, sa_type=JSON)
    # The last calendar event applied to this row (null: read from the calendar when linked).
    event_id: str | None = Field(default=None, max_length=100)
    synced_at: datetime = _instant()


class CampaignFunding(BudgetModel, table=True):
    """A linked campaign funded from a budget's current plan: its lines are `FundingLine`s,
    phased over the campaign's phases by these weights (per phase kind)."""
    __tablename__ = "campaign_funding"

    budget_id: str = Field(sa_column_args=[ForeignKey("budget.id")], primary_key=True,
                           max_length=KEY_LENGTH)
    campaign_id: str = Field(primary_key=True, max_length=ID_LENGTH, index=True)
    phase_weights: dict = Field(sa_type=JSON)
    created_by: str = Field(max_length=200)
    created_at: datetime = _instant()
    updated_by: str = Field(max_length=200)
    updated_at: datetime = _instant()


class FundingLine(BudgetModel, table=True):
    """What one channel gives a funded campaign."""
    __tablename__ = "funding_line"

    budget_id: str = Field(sa_column_args=[ForeignKey("budget.id")], primary_key=True,
                           max_length=KEY_LENGTH)
    campaign_id: str = Field(primary_key=True, max_length=ID_LENGTH)
    channel_id: str = _channel_key(primary_key=True)
    amount_minor: int = _money()


class PendingAction(BudgetModel, table=True):
    """A four-eyes action waiting for a second key holder: a reserve draw (its money held) or
    a plan approval. Confirmed, it becomes effective; cancelled, a held draw's money is free."""
    __tablename__ = "pending_action"

    id: str = Field(primary_key=True, max_length=KEY_LENGTH)
    budget_id: str = _budget_key()
    kind: str = Field(max_length=10)
    amount_minor: int = _money()
    plan_number: int | None = None
    # A draw's request (channel_id or campaign_id, period, reason) as it will be entered.
    draw: dict | None = Field(default=None, sa_type=JSON)
    status: str = Field(max_length=10, index=True)
    requested_by: str = Field(max_length=200)
    requested_by_name: str | None = Field(default=None, max_length=200)
    requested_at: datetime = _instant()
    request_id: str | None = Field(default=None, max_length=128)
    decided_by: str | None = Field(default=None, max_length=200)
    decided_by_name: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = Field(default=None, sa_type=Instant)
    # The reserve entry a confirmed draw made.
    entry_id: str | None = Field(default=None, max_length=KEY_LENGTH)
