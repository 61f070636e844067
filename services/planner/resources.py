"""Resources (teams or people), the task templates per milestone kind, the skills they name,
and the index of stored schedules."""
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from sqlmodel import Session, col, select

from services.planner.hours import DayHours, Hours, HoursOut, hours_out, hundredths
from services.planner.models import Resource, Schedule, StaleMark, Task, TaskTemplate, utcnow
from shared.errors import Conflict, NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.types import Identifier, Name, StrictModel
from shared.versioning import require_if_match
from shared.workdays import check_market, weekend_of

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


# A market whose public holidays are days off (ISO country, optionally `-subdivision`).
Market = Annotated[str, AfterValidator(check_market)]


class ResourceCreate(StrictModel):
    name: Name
    skills: list[Identifier] = Field(min_length=1, max_length=50)
    hours_per_day: DayHours | None = Field(None, description="A team of three designers is 24.")
    hours_per_week: Hours | None = Field(None, description="Instead of hours_per_day: spread "
                                         "evenly over its market's working days of a week "
                                         "(five with a two-day weekend).")
    market: Market | None = Field(None, description="Its public holidays and its weekend are "
                                  "days off (ISO country, e.g. DE; SA works Sunday to "
                                  "Thursday); without one, Saturday and Sunday.")
    time_off: list[date] = Field([], max_length=1000)


class ResourceUpdate(StrictModel):
    name: Name | None = None
    skills: list[Identifier] | None = Field(None, min_length=1, max_length=50)
    hours_per_day: DayHours | None = None
    hours_per_week: Hours | None = None
    market: Market | None = None
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


def _columns(values: dict[str, Any], *, required: bool, market: str | None) -> dict[str, Any]:
    """Table columns from a request: capacity in hundredths of an hour per working day of the
    resource's market."""
    day, week = values.pop("hours_per_day", None), values.pop("hours_per_week", None)
    if (day is None) == (week is None) and (required or week is not None):
        raise invalid_fields([("hours_per_day", "give exactly one of hours_per_day or "
                                                "hours_per_week")])
    if day is not None:
        values["hours_per_day"] = hundredths(Decimal(day))
    elif week is not None:
        values["hours_per_day"] = hundredths(Decimal(week)) // (7 - len(weekend_of(market)))
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
                                                     required=True, market=resource_in.market))
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
    values = update.model_dump(mode="json", exclude_unset=True)
    resource.sqlmodel_update(_columns(values, required=False,
                                      market=values.get("market", resource.market)))
    resource.version += 1
    resource.updated_at = utcnow()
    session.add(resource)
    session.flush()
    answer = _public(resource)
    session.commit()
    return answer


def read_resource(*, session: Session, resource_id: str) -> ResourcePublic:
    """Read a resource (its version is the ETag a PATCH names)."""
    return _public(get_resource(session, resource_id))


def delete_resource(*, session: Session, resource_id: str) -> None:
    """Delete a resource no started task holds; tasks pinned to it that have not started are
    unpinned, so any resource with their skill may take them."""
    resource = get_resource(session, resource_id)
    held = session.exec(select(Task).where(Task.resource_id == resource_id)).all()
    started = sorted(t.id for t in held if t.start is not None)
    if started:
        raise Conflict(f"Resource {resource_id!r} holds started work ({', '.join(started)}): "
                       "finish or re-pin those tasks (PATCH /api/v1/planner/tasks/{task_id}) "
                       "first.", tasks=started)
    for task in held:
        task.resource_id = None
        session.add(task)
    session.delete(resource)
    session.commit()


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


class SkillPublic(BaseModel):
    skill: str
    resource_ids: list[str] = Field(description="The resources that have it.")
    milestone_kinds: list[str] = Field(description="The task templates that need it.")


def list_skills(*, session: Session) -> list[SkillPublic]:
    """List the skills the resources have and the task templates need, by name."""
    resources: dict[str, list[str]] = {}
    for resource in session.exec(select(Resource).order_by(col(Resource.id))):
        for skill in resource.skills:
            resources.setdefault(skill, []).append(resource.id)
    kinds: dict[str, list[str]] = {}
    for kind, steps in templates(session).items():
        for skill in dict.fromkeys(step.skill for step in steps):
            kinds.setdefault(skill, []).append(kind)
    return [SkillPublic(skill=skill, resource_ids=resources.get(skill, []),
                        milestone_kinds=kinds.get(skill, []))
            for skill in sorted(resources.keys() | kinds.keys())]


class StoredScheduleSummary(BaseModel):
    id: str
    start: date
    horizon_days: int
    campaign_ids: list[str]
    replan_of: str | None
    created_by: str
    created_by_name: str | None
    created_at: datetime
    stale: bool = Field(description="A calendar change since it was made changed its tasks "
                        "(its stale_reasons are in the schedule itself).")
    status: str = Field(description="`optimal` or `feasible`.")
    weighted_lateness_days: int
    late_tasks: int


def list_schedules(*, session: Session, limit: int,
                   cursor: str | None) -> Page[StoredScheduleSummary]:
    """List stored schedules, newest first, a page at a time."""
    statement = select(Schedule).order_by(col(Schedule.id).desc()).limit(limit + 1)
    if cursor is not None:
        # Ids sort by creation time (shared/ids.py), so "older than the cursor" is "<".
        statement = statement.where(col(Schedule.id) < decode_cursor(cursor, [Schedule.id])[0])
    rows = list(session.exec(statement))
    page, more = rows[:limit], len(rows) > limit
    stale = set(session.exec(select(StaleMark.schedule_id).where(
        col(StaleMark.schedule_id).in_([s.id for s in page]))))
    return Page(items=[StoredScheduleSummary(
        id=s.id, start=s.start_date, horizon_days=s.horizon_days, campaign_ids=s.campaign_ids,
        replan_of=s.replan_of, created_by=s.created_by, created_by_name=s.created_by_name,
        created_at=s.created_at,
        stale=s.id in stale, status=s.result["status"],
        weighted_lateness_days=s.result["objective"]["weighted_lateness_days"],
        late_tasks=len(s.result["late"])) for s in page],
        next_cursor=encode_cursor([page[-1].id]) if more else None)
