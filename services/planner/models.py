"""The planner service's tables. Hours are integers in hundredths of an hour."""
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from shared.db import Instant, service_registry
from shared.events import consumer_table
from shared.idempotency import idempotency_table
from shared.internal_auth import nonce_table
from shared.jobs import job_table
from shared.types import ID_LENGTH, NAME_LENGTH


class PlannerModel(SQLModel, registry=service_registry()):
    """Base of every planner table: they live on the planner service's own metadata."""


idempotency_record = idempotency_table(PlannerModel.metadata)
event_consumer = consumer_table(PlannerModel.metadata)
# Long solves run as jobs (`services.planner.jobs`): stored, so any process may run them.
job = job_table(PlannerModel.metadata)
internal_nonce = nonce_table(PlannerModel.metadata)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _instant() -> Any:
    return Field(default_factory=utcnow, sa_type=Instant)


class Resource(PlannerModel, table=True):
    id: str = Field(primary_key=True, max_length=ID_LENGTH)
    name: str = Field(max_length=NAME_LENGTH, unique=True)
    skills: list[str] = Field(sa_type=JSON)
    hours_per_day: int
    market: str | None = Field(default=None, max_length=10)   # its public holidays are days off
    time_off: list[str] = Field(sa_type=JSON)                 # ISO dates
    version: int = 1
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class TaskTemplate(PlannerModel, table=True):
    """The work a milestone kind needs before it: [{name, skill, effort_hours, window_days,
    max_hours_per_day}], in order (each step follows the previous one)."""
    __tablename__ = "task_template"

    milestone_kind: str = Field(primary_key=True, max_length=20)
    steps: list[dict[str, Any]] = Field(sa_type=JSON)
    version: int = 1
    updated_at: datetime = _instant()


class Task(PlannerModel, table=True):
    id: str = Field(primary_key=True, max_length=ID_LENGTH)
    campaign_id: str | None = Field(default=None, max_length=ID_LENGTH, index=True)
    milestone_id: str | None = Field(default=None, max_length=ID_LENGTH)
    name: str = Field(max_length=NAME_LENGTH)
    skill: str = Field(max_length=ID_LENGTH)
    effort: int
    earliest_start: date | None = None
    deadline: date | None = None
    priority: int = 1
    predecessors: list[str] = Field(sa_type=JSON)
    max_per_day: int | None = None
    resource_id: str | None = Field(default=None, max_length=ID_LENGTH)   # pinned resource
    start: date | None = None                                             # pinned: work started
    created_at: datetime = _instant()


class Schedule(PlannerModel, table=True):
    id: str = Field(primary_key=True, max_length=ID_LENGTH)
    start_date: date
    horizon_days: int
    campaign_ids: list[str] = Field(sa_type=JSON)   # empty: all campaigns
    replan_of: str | None = Field(default=None, max_length=ID_LENGTH)
    result: dict[str, Any] = Field(sa_type=JSON)    # a SchedulePublic, as JSON
    created_by: str = Field(max_length=200)
    # The maker's API key name as signed (null: a key without one, the automatic re-planner,
    # or a schedule from before names).
    created_by_name: str | None = Field(default=None, max_length=200)
    created_at: datetime = _instant()


class ScheduleCampaign(PlannerModel, table=True):
    """One campaign's part of a stored schedule: the assignments and late entries of its tasks,
    as in the schedule's result and in its order. A campaign's overview reads these few rows,
    not the whole result (3,000 assignments on a department-year)."""
    __tablename__ = "schedule_campaign"

    schedule_id: str = Field(primary_key=True, max_length=ID_LENGTH, foreign_key="schedule.id")
    campaign_id: str = Field(primary_key=True, max_length=ID_LENGTH, index=True)
    assignments: list[dict[str, Any]] = Field(sa_type=JSON)
    late: list[dict[str, Any]] = Field(sa_type=JSON)


class CampaignState(PlannerModel, table=True):
    """What the planner keeps of a calendar campaign it has tasks for, as of the last event
    about it that it applied."""
    __tablename__ = "campaign_state"

    campaign_id: str = Field(primary_key=True, max_length=ID_LENGTH)
    status: str = Field(max_length=20)
    # Its tasks were generated from its milestones, so they follow the milestones' changes.
    generated: bool = False
    synced_at: datetime = _instant()


class StaleMark(PlannerModel, table=True):
    """A calendar change that made a stored schedule out of date: one row per schedule and
    event, so an event applied again marks nothing twice."""
    __tablename__ = "stale_mark"

    schedule_id: str = Field(primary_key=True, max_length=ID_LENGTH)
    event_id: str = Field(primary_key=True, max_length=100)
    event_type: str = Field(max_length=50)
    campaign_id: str = Field(max_length=ID_LENGTH)
    occurred_at: datetime = Field(sa_type=Instant)
    detail: str = Field(max_length=500)
    marked_at: datetime = _instant()
