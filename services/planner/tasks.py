"""Tasks: one shape for a task wherever the scheduler takes one (a solve request or a stored
task), made by hand or generated for a campaign from the milestones the calendar service reports
over HTTP (the planner never reads the calendar's database)."""
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.planner.hours import DayHours, Hours, HoursOut, hours_out, hundredths
from services.planner.models import Task
from services.planner.resources import get_resource, templates
from shared.client import ServiceClient
from shared.errors import NotFound, ServiceUnavailable, invalid_fields
from shared.idempotency import Idempotency
from shared.types import Identifier, Name, StrictModel
from shared.workdays import add_working_days


class TaskSpec(StrictModel):
    """A task as the scheduler takes it: the same fields in a solve request and a stored task."""

    id: Identifier
    campaign_id: Identifier | None = None
    skill: Identifier
    effort_hours: Hours
    earliest_start: date | None = None
    deadline: date | None = None
    priority: int = Field(1, ge=1, le=100)
    predecessors: list[Identifier] = Field([], max_length=100)
    max_hours_per_day: DayHours | None = None
    resource_id: Identifier | None = Field(None, description="Pinned: only this resource.")
    start: date | None = Field(None, description="Pinned first day (work already started).")


class TaskCreate(TaskSpec):
    name: Name


class TaskPublic(BaseModel):
    id: str
    name: str
    campaign_id: str | None
    milestone_id: str | None
    skill: str
    effort_hours: HoursOut
    earliest_start: date | None
    deadline: date | None
    priority: int
    predecessors: list[str]
    max_hours_per_day: HoursOut | None
    resource_id: str | None
    start: date | None
    created_at: datetime


def _public(task: Task) -> TaskPublic:
    return TaskPublic(**task.model_dump(exclude={"effort", "max_per_day"}),
                      effort_hours=hours_out(task.effort),
                      max_hours_per_day=None if task.max_per_day is None
                      else hours_out(task.max_per_day))


def create_task(*, session: Session, idempotency: Idempotency, task_in: TaskCreate) -> TaskPublic:
    """Add a task by hand."""
    errors = []
    if session.get(Task, task_in.id) is not None:
        errors.append(("id", f"task {task_in.id!r} exists; choose another id"))
    for i, p in enumerate(task_in.predecessors):
        if session.get(Task, p) is None:
            errors.append((f"predecessors[{i}]", f"unknown task {p!r}"))
    if errors:
        raise invalid_fields(errors)
    if task_in.resource_id is not None:
        get_resource(session, task_in.resource_id)
    values = task_in.model_dump(exclude={"effort_hours", "max_hours_per_day"})
    task = Task(**values, effort=hundredths(task_in.effort_hours),
                max_per_day=None if task_in.max_hours_per_day is None
                else hundredths(task_in.max_hours_per_day))
    session.add(task)
    session.flush()
    answer = _public(task)
    idempotency.record(session, answer)
    session.commit()
    return answer


def list_tasks(*, session: Session, campaign_id: str | None) -> list[TaskPublic]:
    """List tasks by id, optionally of one campaign."""
    statement = select(Task).order_by(col(Task.id))
    if campaign_id is not None:
        statement = statement.where(Task.campaign_id == campaign_id)
    return [_public(t) for t in session.exec(statement)]


def _fetch_campaign(calendar: ServiceClient, campaign_id: str) -> dict[str, Any]:
    response = calendar.request("GET", f"/api/v1/calendar/campaigns/{quote(campaign_id, safe='')}")
    if response.status_code == 404:
        raise NotFound(f"The calendar has no campaign {campaign_id!r}.")
    if response.status_code != 200:
        raise ServiceUnavailable("The calendar service could not answer; try again shortly.")
    campaign: dict[str, Any] = response.json()
    return campaign


def generate_tasks(*, session: Session, calendar: ServiceClient, campaign_id: str) -> list[TaskPublic]:
    """Make or refresh a campaign's tasks from its milestones and the task templates."""
    # Each template step is due by its milestone, starts at most window_days working days
    # before it, and follows the previous step; a refresh keeps a task's pins.
    campaign = _fetch_campaign(calendar, campaign_id)
    steps_by_kind = templates(session)
    made = []
    for milestone in campaign["milestones"]:
        due = date.fromisoformat(milestone["due_date"])
        previous = None
        for i, step in enumerate(steps_by_kind.get(milestone["kind"], [])):
            task_id = f"{milestone['id']}-{i + 1}"
            task = session.get(Task, task_id) or Task(id=task_id, name="", skill="", effort=0,
                                                      predecessors=[])
            task.sqlmodel_update({
                "name": f"{campaign['name']}: {milestone['name']}: {step.name}",
                "campaign_id": campaign["id"], "milestone_id": milestone["id"],
                "skill": step.skill, "effort": hundredths(step.effort_hours),
                "earliest_start": add_working_days(due, -step.window_days, campaign["market"]),
                "deadline": due, "priority": campaign["priority"],
                "predecessors": [previous] if previous else [],
                "max_per_day": None if step.max_hours_per_day is None
                else hundredths(step.max_hours_per_day)})
            session.add(task)
            made.append(task)
            previous = task_id
    session.flush()
    answer = [_public(t) for t in made]
    session.commit()
    return answer
