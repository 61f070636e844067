"""Stored schedules of the stored resources and tasks, and re-plans that keep started work and
move as few other tasks as possible."""
from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.planner import engine, solving
from services.planner.models import Resource, Schedule, Task
from shared.errors import Conflict, NotFound
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.types import Identifier, StrictModel
from shared.workdays import holidays_between
from shared.workers import WorkerPool


class ScheduleCreate(StrictModel):
    start: date
    horizon_days: int = Field(ge=1, le=solving.MAX_HORIZON_DAYS)
    campaign_ids: list[Identifier] = Field([], max_length=500,
                                           description="Empty: all campaigns.")
    time_limit_seconds: float = Field(10, gt=0, le=60)


class ReplanCreate(StrictModel):
    as_of: date | None = Field(None, description="Work that started by this day stays where "
                               "it is; default today.")
    time_limit_seconds: float = Field(10, gt=0, le=60)


class StoredSchedulePublic(BaseModel):
    id: str
    start: date
    horizon_days: int
    campaign_ids: list[str]
    replan_of: str | None
    created_by: str
    created_at: datetime
    schedule: solving.SchedulePublic


Spot = tuple[str, date]   # (resource id, first day)


def _problem(session: Session, start: date, horizon_days: int, campaign_ids: list[str],
             time_limit: float, pinned: dict[str, Spot], previous: dict[str, Spot]) -> engine.Problem:
    resources = session.exec(select(Resource).order_by(col(Resource.id))).all()
    statement = select(Task).order_by(col(Task.id))
    if campaign_ids:
        statement = statement.where(col(Task.campaign_id).in_(campaign_ids))
    tasks = session.exec(statement).all()
    if not resources or not tasks:
        raise Conflict("Nothing to schedule: add resources at /api/v1/planner/resources and tasks "
                       "(or generate them for a campaign) first.")
    last = start + timedelta(days=horizon_days - 1)
    ids = {t.id for t in tasks}
    return engine.Problem(
        start=start, horizon_days=horizon_days, time_limit=time_limit, previous=previous,
        resources=tuple(engine.Resource(
            r.id, frozenset(r.skills), r.hours_per_day,
            frozenset(date.fromisoformat(d) for d in r.time_off)
            | (holidays_between(r.market, start, last) if r.market else set()))
            for r in resources),
        tasks=tuple(engine.Task(
            id=t.id, skill=t.skill, effort=t.effort, campaign=t.campaign_id,
            earliest_start=t.earliest_start, deadline=t.deadline, priority=t.priority,
            # Work outside this schedule's scope counts as done.
            predecessors=tuple(x for x in t.predecessors if x in ids), max_per_day=t.max_per_day,
            resource=pinned[t.id][0] if t.id in pinned else t.resource_id,
            start=pinned[t.id][1] if t.id in pinned else t.start) for t in tasks))


def _public(schedule: Schedule) -> StoredSchedulePublic:
    return StoredSchedulePublic(id=schedule.id, start=schedule.start_date,
                                horizon_days=schedule.horizon_days,
                                campaign_ids=schedule.campaign_ids, replan_of=schedule.replan_of,
                                created_by=schedule.created_by, created_at=schedule.created_at,
                                schedule=solving.SchedulePublic.model_validate(schedule.result))


def _store(session: Session, idempotency: Idempotency, schedule: Schedule) -> StoredSchedulePublic:
    session.add(schedule)
    session.flush()
    answer = _public(schedule)
    idempotency.record(session, answer)
    session.commit()
    return answer


def create_schedule(*, session: Session, idempotency: Idempotency, schedule_in: ScheduleCreate,
                    workers: WorkerPool, grace_seconds: float, caller: Caller) -> StoredSchedulePublic:
    """Schedule the stored tasks on the stored resources and keep the answer."""
    problem = _problem(session, schedule_in.start, schedule_in.horizon_days,
                       schedule_in.campaign_ids, schedule_in.time_limit_seconds, {}, {})
    session.rollback()   # no transaction stays open while the solver works
    result = solving.solve(problem=problem, workers=workers, grace_seconds=grace_seconds)
    return _store(session, idempotency, Schedule(
        id=new_id("sch"), start_date=schedule_in.start, horizon_days=schedule_in.horizon_days,
        campaign_ids=schedule_in.campaign_ids, result=result.model_dump(mode="json"),
        created_by=caller.principal))


def _get_schedule(session: Session, schedule_id: str) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"There is no schedule {schedule_id!r}.")
    return schedule


def read_schedule(*, session: Session, schedule_id: str) -> StoredSchedulePublic:
    """Read a stored schedule."""
    return _public(_get_schedule(session, schedule_id))


def replan(*, session: Session, idempotency: Idempotency, schedule_id: str,
           replan_in: ReplanCreate, workers: WorkerPool, grace_seconds: float,
           caller: Caller) -> StoredSchedulePublic:
    """Schedule again after milestones or capacity changed, moving as little as possible."""
    # Started work stays; other tasks keep their resource and start where they can, and the
    # answer says how many moved.
    old = _public(_get_schedule(session, schedule_id))
    as_of = replan_in.as_of or date.today()
    placed = {a.task: (a.resource, a.start) for a in old.schedule.assignments}
    started = {task: spot for task, spot in placed.items() if spot[1] <= as_of}
    problem = _problem(session, old.start, old.horizon_days, old.campaign_ids,
                       replan_in.time_limit_seconds, started, placed)
    session.rollback()
    result = solving.solve(problem=problem, workers=workers, grace_seconds=grace_seconds)
    return _store(session, idempotency, Schedule(
        id=new_id("sch"), start_date=old.start, horizon_days=old.horizon_days,
        campaign_ids=old.campaign_ids, replan_of=old.id, result=result.model_dump(mode="json"),
        created_by=caller.principal))
