"""Resources (teams or people) and the task templates per milestone kind."""
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from sqlmodel import Session, col, select

from services.planner.hours import DayHours, Hours, HoursOut, hours_out, hundredths
from services.planner.models import Resource, TaskTemplate, utcnow
from shared.errors import Conflict, NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.types import Identifier, Name, StrictModel
from shared.versioning import require_if_match
from shared.workdays import check_market

# The department playbook's defaults: the work each milestone needs before it.
DEFAULT_TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "kickoff": [{"name": "brief", "skill": "strategy", "effort_hours": "4", "window_days": 5}],
    "creative_final": [
        {"name": "design", "skill": "design", "effort_hours": "40", "window_days": 10},
        {"name": "copy review", "skill": "copy", "effort_hours": "8", "window_days": 10}],
    "channel_test": [{"name": "media buying", "skill": "media", "effort_hours": "16",
                      "window_days": 5}],
    "launch": [{"name": "launch build", "skill": "tech", "effort_hours": "12", "window_days": 5}],
    "review_gate": [],
    "contingency": [],
}


class ResourceCreate(StrictModel):
    name: Name
    skills: list[Identifier] = Field(min_length=1, max_length=50)
    hours_per_day: DayHours | None = Field(None, description="A team of three designers is 24.")
    hours_per_week: Hours | None = Field(None, description="Instead of hours_per_day: spread "
                                         "evenly over the five working days.")
    market: Annotated[str, AfterValidator(check_market)] | None = Field(
        None, description="Its public holidays are days off (ISO country, e.g. DE).")
    time_off: list[date] = Field([], max_length=1000)


class ResourceUpdate(StrictModel):
    name: Name | None = None
    skills: list[Identifier] | None = Field(None, min_length=1, max_length=50)
    hours_per_day: DayHours | None = None
    hours_per_week: Hours | None = None
    market: Annotated[str, AfterValidator(check_market)] | None = None
    time_off: list[date] | None = Field(None, max_length=1000)


class ResourcePublic(BaseModel):
    id: str
    name: str
    skills: list[str]
    hours_per_day: HoursOut
    market: str | None
    time_off: list[date]
    version: int
    created_at: datetime
    updated_at: datetime


class TemplateStep(StrictModel):
    name: Identifier
    skill: Identifier
    effort_hours: Hours
    window_days: int = Field(ge=0, le=120, description="Starts at most this many working "
                             "days before the milestone.")
    max_hours_per_day: DayHours | None = None


class TaskTemplatePublic(BaseModel):
    milestone_kind: str
    steps: list[TemplateStep]


class TaskTemplateUpdate(StrictModel):
    steps: list[TemplateStep] = Field(max_length=20, description="In order: each follows the "
                                      "previous; all are due by the milestone.")


def _public(resource: Resource) -> ResourcePublic:
    return ResourcePublic(**resource.model_dump(exclude={"hours_per_day"}),
                          hours_per_day=hours_out(resource.hours_per_day))


def _columns(values: dict[str, Any], *, required: bool) -> dict[str, Any]:
    """Table columns from a request: capacity in hundredths of an hour per working day."""
    day, week = values.pop("hours_per_day", None), values.pop("hours_per_week", None)
    if (day is None) == (week is None) and (required or week is not None):
        raise invalid_fields([("hours_per_day", "give exactly one of hours_per_day or "
                                                "hours_per_week")])
    if day is not None:
        values["hours_per_day"] = hundredths(Decimal(day))
    elif week is not None:
        values["hours_per_day"] = hundredths(Decimal(week)) // 5
    return values


def _unique_name(session: Session, name: str, resource_id: str | None) -> None:
    clash = session.exec(select(Resource.id).where(Resource.name == name,
                                                   col(Resource.id) != resource_id)).first()
    if clash is not None:
        raise Conflict(f"A resource named {name!r} exists ({clash}); choose another name.")


def create_resource(*, session: Session, idempotency: Idempotency,
                    resource_in: ResourceCreate) -> ResourcePublic:
    """Add a team or person."""
    _unique_name(session, resource_in.name, None)
    resource = Resource(id=new_id("res"), **_columns(resource_in.model_dump(mode="json"),
                                                     required=True))
    session.add(resource)
    session.flush()
    answer = _public(resource)
    idempotency.record(session, answer)
    session.commit()
    return answer


def list_resources(*, session: Session) -> list[ResourcePublic]:
    """List every resource in the order they were added."""
    return [_public(r) for r in session.exec(select(Resource).order_by(col(Resource.id)))]


def get_resource(session: Session, resource_id: str) -> Resource:
    """Load a resource or raise NotFound."""
    resource = session.get(Resource, resource_id)
    if resource is None:
        raise NotFound(f"There is no resource {resource_id!r}; list them at "
                       "/api/v1/planner/resources.")
    return resource


def update_resource(*, session: Session, resource_id: str, update: ResourceUpdate,
                    if_match: str | None) -> ResourcePublic:
    """Change capacity, skills or days off at the version read (412 if stale)."""
    resource = get_resource(session, resource_id)
    require_if_match(if_match, resource.version, what="resource")
    if update.name is not None:
        _unique_name(session, update.name, resource.id)
    resource.sqlmodel_update(_columns(update.model_dump(mode="json", exclude_unset=True),
                                      required=False))
    resource.version += 1
    resource.updated_at = utcnow()
    session.add(resource)
    session.flush()
    answer = _public(resource)
    session.commit()
    return answer


def templates(session: Session) -> dict[str, list[TemplateStep]]:
    """Return the template of every milestone kind: stored edits over the playbook's defaults."""
    stored = {t.milestone_kind: t.steps for t in session.exec(select(TaskTemplate))}
    return {kind: [TemplateStep.model_validate(s) for s in stored.get(kind, default)]
            for kind, default in DEFAULT_TEMPLATES.items()}


def list_templates(*, session: Session) -> list[TaskTemplatePublic]:
    """List the work each milestone kind needs."""
    return [TaskTemplatePublic(milestone_kind=k, steps=v) for k, v in templates(session).items()]


def put_template(*, session: Session, kind: str, template_in: TaskTemplateUpdate) -> TaskTemplatePublic:
    """Replace a milestone kind's template."""
    if kind not in DEFAULT_TEMPLATES:
        raise NotFound(f"There is no milestone kind {kind!r}; kinds: {', '.join(DEFAULT_TEMPLATES)}.")
    row = session.get(TaskTemplate, kind)
    if row is None:
        row = TaskTemplate(milestone_kind=kind, steps=[])
    else:
        row.version += 1
        row.updated_at = utcnow()
    row.steps = [s.model_dump(mode="json") for s in template_in.steps]
    session.add(row)
    session.commit()
    return TaskTemplatePublic(milestone_kind=kind, steps=template_in.steps)
