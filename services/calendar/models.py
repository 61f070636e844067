"""The calendar service's tables."""
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import JSON, ForeignKey
from sqlmodel import Field, SQLModel

from shared.db import Instant, service_registry
from shared.idempotency import idempotency_table
from shared.types import ID_LENGTH, NAME_LENGTH

# Column lengths shared with the API fields that fill them (see shared/types.py), so a value
# the API accepts fits on SQLite and PostgreSQL alike.
ROW_ID_LENGTH = 40        # ids made by shared.ids.new_id (29 characters with a 4-letter prefix)
PRINCIPAL_LENGTH = 200    # a caller's principal, as in the idempotency table
MARKET_LENGTH = 10
TIME_ZONE_LENGTH = 64


class CalendarModel(SQLModel, registry=service_registry()):
    """Base of every calendar table: they live on the calendar service's own metadata."""


idempotency_record = idempotency_table(CalendarModel.metadata)


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
    # Review gates: {"approver", "decision": "passed"|"rejected", "comment", "at"}.
    approval: dict | None = Field(default=None, sa_type=JSON)
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
