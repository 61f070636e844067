"""The calendar service's tables."""
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey
from sqlmodel import Field, SQLModel

from shared.db import Instant, service_registry
from shared.idempotency import idempotency_table
from shared.internal_auth import nonce_table
from shared.types import ID_LENGTH, NAME_LENGTH

# Column lengths shared with the API fields that fill them (see shared/types.py), so a value
# the API accepts fits on SQLite and PostgreSQL alike.
ROW_ID_LENGTH = 40        # ids made by shared.ids.new_id (29 characters with a 4-letter prefix)
PRINCIPAL_LENGTH = 200    # a caller's principal, as in the idempotency table
MARKET_LENGTH = 10
TIME_ZONE_LENGTH = 64
COMMENT_LENGTH = 2000
ROLE_LENGTH = 20
REQUEST_ID_LENGTH = 128   # what shared.requests accepts as an X-Request-ID
EVENT_TYPE_LENGTH = 40


class CalendarModel(SQLModel, registry=service_registry()):
    """Base of every calendar table: they live on the calendar service's own metadata."""


idempotency_record = idempotency_table(CalendarModel.metadata)
# Nonces of the internal credentials of writes already served: a replayed one is refused.
internal_nonce = nonce_table(CalendarModel.metadata)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _instant(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=Instant, **kwargs)


def _campaign_key(**kwargs: Any) -> Any:
    return Field(sa_column_args=[ForeignKey("campaign.id")], max_length=ROW_ID_LENGTH, index=True,
                 **kwargs)


def _milestone_key(**kwargs: Any) -> Any:
    return Field(sa_column_args=[ForeignKey("milestone.id")], max_length=ROW_ID_LENGTH, **kwargs)


class Campaign(CalendarModel, table=True):
    id: str = Field(primary_key=True, max_length=ROW_ID_LENGTH)
    name: str = Field(max_length=NAME_LENGTH)
    # {"kpi": "conversion_rate", "target": "4.5", "unit": "%", "deadline": "2026-12-31"}
    objective: dict = Field(sa_type=JSON)
    owner: str = Field(max_length=ID_LENGTH, index=True)
    # The department's channel kinds (shared/channels.py), e.g. ["search", "social"].
    channels: list = Field(sa_type=JSON)
    market: str = Field(max_length=MARKET_LENGTH)
    time_zone: str = Field(max_length=TIME_ZONE_LENGTH)
    start_date: date = Field(index=True)
    end_date: date = Field(index=True)
    priority: int
    status: str = Field(max_length=10, index=True)
    template: str | None = Field(default=None, max_length=20)
    # [{"name": "daily check", "frequency": "daily", "phase": "burst"}]: recurring reviews.
    reviews: list = Field(sa_type=JSON)
    version: int = 1
    created_by: str = Field(max_length=PRINCIPAL_LENGTH)
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class Phase(CalendarModel, table=True):
    id: str = Field(primary_key=True, max_length=ROW_ID_LENGTH)
    campaign_id: str = _campaign_key()
    kind: str = Field(max_length=10)
    start_date: date
    end_date: date
    # A template's phases follow their launch: when it moves, they keep their working-day
    # offsets to it (`graph.follow`). Hand-made phases have no anchor and stay put.
    anchor_id: str | None = _milestone_key(default=None, nullable=True)
    version: int = 1


class Milestone(CalendarModel, table=True):
    id: str = Field(primary_key=True, max_length=ROW_ID_LENGTH)
    campaign_id: str = _campaign_key()
    kind: str = Field(max_length=20)
    name: str = Field(max_length=NAME_LENGTH)
    due_date: date = Field(index=True)
    due_time: time | None = Field(default=None, description="Local time in the campaign's zone.")
    # A window around the milestone kept free (contingency): hours before and after.
    window_hours: int | None = None
    owner: str | None = Field(default=None, max_length=NAME_LENGTH)
    status: str = Field(max_length=10)
    pinned: bool = False
    # A template's contingency window follows its launch, as phases do.
    anchor_id: str | None = _milestone_key(default=None, nullable=True)
    version: int = 1
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class Dependency(CalendarModel, table=True):
    """Finish-to-start: `successor` is at least `lag_days` working days after `predecessor`."""

    predecessor_id: str = _milestone_key(primary_key=True)
    successor_id: str = _milestone_key(primary_key=True, index=True)
    lag_days: int


class FeedToken(CalendarModel, table=True):
    """A revocable secret that lets a calendar client read one feed (only its hash is kept)."""
    __tablename__ = "feed_token"

    id: str = Field(primary_key=True, max_length=ROW_ID_LENGTH)
    token_hash: str = Field(max_length=64, unique=True)
    campaign_id: str | None = Field(default=None, max_length=ROW_ID_LENGTH)
    # Calendar filters for a whole-calendar feed: {"channel", "status", "owner"}.
    filters: dict = Field(sa_type=JSON)
    label: str = Field(max_length=NAME_LENGTH)
    created_by: str = Field(max_length=PRINCIPAL_LENGTH)
    created_at: datetime = _instant()
    revoked_at: datetime | None = Field(default=None, sa_type=Instant)


class Approval(CalendarModel, table=True):
    """A review gate's decision. Append-only (triggers refuse UPDATE and DELETE, migration
    0004): every decision is kept, the gate's current one is its latest. No foreign key, so
    the history outlives a deleted gate."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(max_length=ROW_ID_LENGTH, index=True)
    milestone_id: str = Field(max_length=ROW_ID_LENGTH, index=True)
    decision: str = Field(max_length=10)
    comment: str | None = Field(default=None, max_length=COMMENT_LENGTH)
    approver: str = Field(max_length=PRINCIPAL_LENGTH)
    approver_name: str | None = Field(default=None, max_length=NAME_LENGTH)
    request_id: str | None = Field(default=None, max_length=REQUEST_ID_LENGTH)
    at: datetime = _instant()


class AuditEntry(CalendarModel, table=True):
    """Who changed what in the calendar, when, under which request: the state before and
    after. Append-only (triggers refuse UPDATE and DELETE, migration 0004)."""
    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _instant()
    principal: str = Field(max_length=PRINCIPAL_LENGTH)
    principal_name: str | None = Field(default=None, max_length=NAME_LENGTH)
    role: str = Field(max_length=ROLE_LENGTH)
    request_id: str | None = Field(default=None, max_length=REQUEST_ID_LENGTH)
    action: str = Field(max_length=EVENT_TYPE_LENGTH)
    target: str = Field(max_length=ROW_ID_LENGTH)
    campaign_id: str | None = Field(default=None, max_length=ROW_ID_LENGTH, index=True)
    before: dict | None = Field(default=None, sa_type=JSON)
    after: dict | None = Field(default=None, sa_type=JSON)


class EventSequence(CalendarModel, table=True):
    """One row: the last feed position given out, and the last one pruned by retention.

    Positions come from `UPDATE … SET last = last + n RETURNING last`: the row lock is held
    until commit, so a transaction that took positions commits before the next one can take
    any, and positions follow commit order (a sequence would not: id 9 may commit after 10)."""
    __tablename__ = "event_sequence"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last: int = Field(sa_type=BigInteger)
    pruned_through: int = Field(sa_type=BigInteger)


class CalendarEvent(CalendarModel, table=True):
    """The outbox: one change, written in the transaction that made it, served by the feed."""
    __tablename__ = "calendar_event"

    position: int = Field(sa_type=BigInteger, primary_key=True,
                          sa_column_kwargs={"autoincrement": False})
    type: str = Field(max_length=EVENT_TYPE_LENGTH)
    campaign_id: str | None = Field(default=None, max_length=ROW_ID_LENGTH, index=True)
    occurred_at: datetime = _instant(index=True)
    data: dict = Field(sa_type=JSON)
