"""Tasks: one shape for a task wherever the scheduler takes one (a solve request or a stored
task), made by hand or generated for a campaign from the milestones the calendar service reports
over HTTP (the planner never reads the calendar's database)."""
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.planner.hours import DayHours, Hours, HoursOut, hours_out, hundredths
from services.planner.models import CampaignState, Resource, Task, utcnow
from services.planner.peers import refused
from services.planner.resources import TemplateStep, get_resource, templates
from shared.client import ServiceClient
from shared.errors import Conflict, NotFound, ServiceUnavailable, invalid_fields
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


class TaskUpdate(StrictModel):
    """A task's fields to change; `null` clears an optional one."""
    name: Name | None = None
    skill: Identifier | None = None
    effort_hours: Hours | None = None
    earliest_start: date | None = None
    deadline: date | None = None
    priority: int | None = Field(None, ge=1, le=100)
    predecessors: list[Identifier] | None = Field(None, max_length=100)
    max_hours_per_day: DayHours | None = None
    resource_id: Identifier | None = Field(None, description="Pinned: only this resource.")
    start: date | None = Field(None, description="Pinned first day (work already started).")


# A generated task's fields that its milestone (dates) and its template step (the rest) set
# again on every refresh: an edit of them would silently come undone, so it is refused.
FOLLOWS_MILESTONE = ("earliest_start", "deadline")
FOLLOWS_TEMPLATE = ("name", "skill", "effort_hours", "priority", "predecessors",
                    "max_hours_per_day")


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
    warnings: list[str] = Field(description="Why no schedule can place it as it stands "
                                "(e.g. no resource has its skill); empty when one can.")


Skills = dict[str, frozenset[str]]   # resource id -> its skills


def resource_skills(session: Session) -> Skills:
    """Every resource's skills, read once for the warnings of many tasks."""
    return {r.id: frozenset(r.skills) for r in session.exec(select(Resource))}


def placement_warnings(task: Task, skills: Skills) -> list[str]:
    """Why no schedule can place the task with these resources; empty when one can."""
    if task.resource_id is not None and task.resource_id in skills:
        if task.skill not in skills[task.resource_id]:
            return [f"it is pinned to resource {task.resource_id!r}, which lacks skill "
                    f"{task.skill!r}: no schedule can place it until that resource has the "
                    "skill or the pin is removed"]
        return []
    if not any(task.skill in s for s in skills.values()):
        return [f"no resource has skill {task.skill!r}: no schedule can place it until one "
                "does (add the skill to a resource, or add one at /api/v1/planner/resources)"]
    return []


def _public(task: Task, skills: Skills) -> TaskPublic:
    return TaskPublic(**task.model_dump(exclude={"effort", "max_per_day"}),
                      effort_hours=hours_out(task.effort),
                      max_hours_per_day=None if task.max_per_day is None
                      else hours_out(task.max_per_day),
                      warnings=placement_warnings(task, skills))


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
    answer = _public(task, resource_skills(session))
    idempotency.record(session, answer)
    session.commit()
    return answer


def list_tasks(*, session: Session, campaign_id: str | None) -> list[TaskPublic]:
    """List tasks by id, optionally of one campaign."""
    statement = select(Task).order_by(col(Task.id))
    if campaign_id is not None:
        statement = statement.where(Task.campaign_id == campaign_id)
    skills = resource_skills(session)
    return [_public(t, skills) for t in session.exec(statement)]


def get_task(session: Session, task_id: str) -> Task:
    """Load a task or raise NotFound."""
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"There is no task {task_id!r}; list them at /api/v1/planner/tasks.")
    return task


def read_task(*, session: Session, task_id: str) -> TaskPublic:
    """Read a task, with why no schedule can place it, if so."""
    return _public(get_task(session, task_id), resource_skills(session))


def _cycle(session: Session, task_id: str, predecessors: list[str]) -> list[str] | None:
    """The chain back to `task_id` that these predecessors would close, if any."""
    graph = {t.id: t.predecessors for t in session.exec(select(Task))} | {task_id: predecessors}
    trail: dict[str, str] = {}
    stack = [(p, task_id) for p in predecessors]
    while stack:
        node, after = stack.pop()
        if node in trail or node not in graph:
            continue
        trail[node] = after
        if node == task_id:
            chain = [task_id]
            while (chain[-1] != task_id or len(chain) == 1) and chain[-1] in trail:
                chain.append(trail[chain[-1]])
            return chain[::-1]
        stack += [(p, node) for p in graph[node]]
    return None


def update_task(*, session: Session, task_id: str, update: TaskUpdate) -> TaskPublic:
    """Change a task; a generated task's dates follow its milestone and its other terms its
    template (409), its pin (resource, start) may change."""
    task = get_task(session, task_id)
    values = update.model_dump(exclude_unset=True)
    if task.milestone_id is not None:
        parts = []
        if dates := [f for f in FOLLOWS_MILESTONE if f in values]:
            parts.append(f"{', '.join(dates)}: set by the milestone (move the milestone in "
                         "the calendar instead)")
        if terms := [f for f in FOLLOWS_TEMPLATE if f in values]:
            parts.append(f"{', '.join(terms)}: set by the task template (edit it at "
                         "/api/v1/planner/task-templates/{milestone_kind})")
        if parts:
            raise Conflict(f"Task {task_id!r} was generated for milestone "
                           f"{task.milestone_id!r}; " + "; ".join(parts)
                           + ". Only resource_id and start may change here.")
    errors = []
    if values.get("name", "") is None:
        errors.append(("name", "a task needs a name"))
    for field in ("skill", "effort_hours", "priority", "predecessors"):
        if field in values and values[field] is None:
            errors.append((field, "may not be null; leave it out to keep it"))
    for i, p in enumerate(values.get("predecessors") or []):
        if p == task_id:
            errors.append((f"predecessors[{i}]", "a task cannot follow itself"))
        elif session.get(Task, p) is None:
            errors.append((f"predecessors[{i}]", f"unknown task {p!r}"))
    if errors:
        raise invalid_fields(errors)
    if values.get("predecessors"):
        cycle = _cycle(session, task_id, values["predecessors"])
        if cycle:
            raise invalid_fields([("predecessors", "they would form a cycle: "
                                   + " → ".join(cycle))])
    if values.get("resource_id") is not None:
        get_resource(session, values["resource_id"])
    if "effort_hours" in values:
        values["effort"] = hundredths(values.pop("effort_hours"))
    if "max_hours_per_day" in values:
        cap = values.pop("max_hours_per_day")
        values["max_per_day"] = None if cap is None else hundredths(cap)
    task.sqlmodel_update(values)
    session.add(task)
    session.flush()
    answer = _public(task, resource_skills(session))
    session.commit()
    return answer


def delete_task(*, session: Session, task_id: str) -> None:
    """Delete a task that has not started and is not generated; tasks that followed it no
    longer wait for it."""
    task = get_task(session, task_id)
    if task.start is not None:
        raise Conflict(f"Task {task_id!r} started on {task.start}: started work stays in the "
                       "plan. Clear its start (PATCH start: null) first if it never began.")
    if task.milestone_id is not None:
        raise Conflict(f"Task {task_id!r} was generated for milestone {task.milestone_id!r} and "
                       "would come back at its next change: remove the step from the task "
                       "template or the milestone from the campaign instead.")
    for successor in session.exec(select(Task)):
        if task_id in successor.predecessors:
            successor.predecessors = [p for p in successor.predecessors if p != task_id]
            session.add(successor)
    session.delete(task)
    session.commit()


@dataclass(frozen=True)
class TaskChanges:
    """What bringing a campaign's generated tasks up to date with its milestones changed."""
    added: tuple[str, ...] = ()
    moved: tuple[str, ...] = ()      # deadline or earliest start
    changed: tuple[str, ...] = ()    # skill, effort, priority, order or daily cap
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.moved or self.changed or self.removed)

    def summary(self) -> str:
        """E.g. "tasks moved: m1-1, m1-2; removed: m2-1"."""
        parts = [f"{what}: {', '.join(ids)}" for what, ids in (
            ("added", self.added), ("moved", self.moved), ("changed", self.changed),
            ("removed", self.removed)) if ids]
        return "tasks " + "; ".join(parts) if parts else "no task changed"


def _window(task: Task) -> tuple[Any, ...]:
    return task.earliest_start, task.deadline


def _terms(task: Task) -> tuple[Any, ...]:
    return task.skill, task.effort, task.priority, tuple(task.predecessors), task.max_per_day


@dataclass(frozen=True)
class StepTask:
    """One template step of one milestone, as a task: its id, the columns it sets, and the
    earliest start it gets unless its work has started."""
    id: str
    values: dict[str, Any]
    earliest_start: date


def milestone_work(campaign: dict[str, Any],
                   steps_by_kind: dict[str, list[TemplateStep]]) -> list[StepTask]:
    """The tasks the templates give a campaign's milestones (as the calendar reports them).

    Each template step is due by its milestone, starts at most window_days working days before
    it, and follows the previous step."""
    work = []
    for milestone in campaign["milestones"]:
        due = date.fromisoformat(milestone["due_date"])
        previous = None
        for i, step in enumerate(steps_by_kind.get(milestone["kind"], [])):
            task_id = f"{milestone['id']}-{i + 1}"
            work.append(StepTask(task_id, {
                "name": f"{campaign['name']}: {milestone['name']}: {step.name}",
                "campaign_id": campaign["id"], "milestone_id": milestone["id"],
                "skill": step.skill, "effort": hundredths(step.effort_hours),
                "deadline": due, "priority": campaign["priority"],
                "predecessors": [previous] if previous else [],
                "max_per_day": None if step.max_hours_per_day is None
                else hundredths(step.max_hours_per_day)},
                add_working_days(due, -step.window_days, campaign["market"])))
            previous = task_id
    return work


class TaskPreview(BaseModel):
    name: str
    skill: str
    effort_hours: HoursOut
    earliest_start: date
    deadline: date
    follows: str | None = Field(description="The step it follows (the previous one).")
    max_hours_per_day: HoursOut | None


def preview_template(*, session: Session, kind: str, due_date: date,
                     market: str) -> list[TaskPreview]:
    """List the tasks the template would make for a milestone of this kind on this date."""
    steps = templates(session)
    if kind not in steps:
        raise NotFound(f"There is no milestone kind {kind!r}; kinds: {', '.join(steps)}.")
    milestone = {"id": kind, "kind": kind, "name": kind, "due_date": due_date.isoformat()}
    work = milestone_work({"id": None, "name": "preview", "priority": 1, "market": market,
                           "milestones": [milestone]}, steps)
    # Hours as a stored task shows them (hundredths: "40.00"), from the task's own columns.
    return [TaskPreview(name=step.name, skill=step.skill,
                        effort_hours=hours_out(task.values["effort"]),
                        earliest_start=task.earliest_start, deadline=due_date,
                        follows=steps[kind][i - 1].name if i else None,
                        max_hours_per_day=None if task.values["max_per_day"] is None
                        else hours_out(task.values["max_per_day"]))
            for i, (step, task) in enumerate(zip(steps[kind], work, strict=True))]


def follow_milestones(session: Session, campaign: dict[str, Any],
                      steps_by_kind: dict[str, list[TemplateStep]]) -> tuple[list[Task], TaskChanges]:
    """Stage the campaign's generated tasks as its milestones and the templates say now.

    Hand-made tasks (no milestone) are not touched. Started work (a pinned start) stays: it
    keeps its start, resource and earliest start, takes the milestone's new deadline, and is
    kept even when its milestone or step is gone.
    """
    existing = {t.id: t for t in session.exec(select(Task).where(
        Task.campaign_id == campaign["id"], col(Task.milestone_id).is_not(None)))}
    made: list[Task] = []
    added, moved, changed = [], [], []
    for step_task in milestone_work(campaign, steps_by_kind):
        task_id = step_task.id
        task = existing.pop(task_id, None) or session.get(Task, task_id)
        if task is None:
            task = Task(id=task_id, name="", skill="", effort=0, predecessors=[])
            added.append(task_id)
        window, terms = _window(task), _terms(task)
        task.sqlmodel_update(step_task.values)
        if task.start is None:
            task.earliest_start = step_task.earliest_start
        if task_id not in added:
            if _window(task) != window:
                moved.append(task_id)
            if _terms(task) != terms:
                changed.append(task_id)
        session.add(task)
        made.append(task)
    removed = sorted(t.id for t in existing.values() if t.start is None)
    for task_id in removed:
        session.delete(existing[task_id])
    session.flush()
    return made, TaskChanges(tuple(added), tuple(moved), tuple(changed), tuple(removed))


def fetch_campaign(calendar: ServiceClient, campaign_id: str) -> dict[str, Any] | None:
    """The campaign with its milestones as the calendar service reports it; None if unknown."""
    response = calendar.request("GET", f"/api/v1/calendar/campaigns/{quote(campaign_id, safe='')}")
    if response.status_code == 404:
        return None
    if 400 <= response.status_code < 500:
        # A refusal of the id itself (a 422 for a malformed one) is the caller's to fix.
        raise refused(service="calendar", what=f"Reading campaign {campaign_id!r}",
                      response=response)
    if response.status_code != 200:
        raise ServiceUnavailable("The calendar service could not answer; try again shortly.")
    campaign: dict[str, Any] = response.json()
    return campaign


def stage_campaign_tasks(session: Session, campaign: dict[str, Any]) -> list[TaskPublic]:
    """Stage a campaign's tasks from its milestones (as the calendar reported them) and the
    task templates; from then on its calendar events keep them up to date."""
    made, _ = follow_milestones(session, campaign, templates(session))
    state = session.get(CampaignState, campaign["id"]) or CampaignState(
        campaign_id=campaign["id"], status=campaign["status"])
    state.sqlmodel_update({"status": campaign["status"], "generated": True, "synced_at": utcnow()})
    session.add(state)
    skills = resource_skills(session)
    return [_public(t, skills) for t in made]


def generate_tasks(*, session: Session, calendar: ServiceClient, campaign_id: str) -> list[TaskPublic]:
    """Make or refresh a campaign's tasks from its milestones and the task templates."""
    campaign = fetch_campaign(calendar, campaign_id)
    if campaign is None:
        raise NotFound(f"The calendar has no campaign {campaign_id!r}.")
    answer = stage_campaign_tasks(session, campaign)
    session.commit()
    return answer


def remove_campaign_tasks(*, session: Session, campaign_id: str) -> list[str]:
    """Delete every task of a campaign and what the planner kept of it (the undo of a
    campaign's creation); return the deleted tasks' ids."""
    tasks = session.exec(select(Task).where(Task.campaign_id == campaign_id)).all()
    for task in tasks:
        session.delete(task)
    state = session.get(CampaignState, campaign_id)
    if state is not None:
        session.delete(state)
    session.commit()
    return sorted(t.id for t in tasks)
