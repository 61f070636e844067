"""Stored schedules of the stored resources and tasks, re-plans that keep started work and
move as few other tasks as possible, and the marks calendar changes leave on the schedules they
made out of date (re-planned at once when the deployment asks for it)."""
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.planner import engine, solving
from services.planner.hours import hundredths
from services.planner.models import (
    CampaignState,
    Resource,
    Schedule,
    ScheduleCampaign,
    StaleMark,
    Task,
)
from services.planner.tasks import Skills, placement_warnings, resource_skills
from shared.errors import Conflict, NotFound, Problem, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.types import Identifier, StrictModel, TimeLimit
from shared.workdays import holidays_between, weekend_of
from shared.workers import WorkerPool

logger = logging.getLogger("marketplan.planner")

# A campaign in one of these states needs no more work: its tasks that have not started leave
# the next schedule and re-plan.
CLOSED = ("cancelled", "completed")
AUTO_REPLANNER = "service:planner (automatic re-plan)"
DEFAULT_TIME_LIMIT = 10
DETAIL_LENGTH = 500
# A what-if's horizon runs this long past the last deadline, so late work still fits.
WHATIF_ROOM_DAYS = 60


class ScheduleCreate(StrictModel):
    start: date
    horizon_days: int = Field(ge=1, le=solving.MAX_HORIZON_DAYS)
    campaign_ids: list[Identifier] = Field([], max_length=500,
                                           description="Empty: all campaigns.")
    time_limit_seconds: TimeLimit = Field(DEFAULT_TIME_LIMIT)


class ReplanCreate(StrictModel):
    as_of: date | None = Field(None, description="Work that started by this day stays where "
                               "it is; default today.")
    horizon_days: int | None = Field(None, ge=1, le=solving.MAX_HORIZON_DAYS, description=(
        "From the schedule's start, as on a schedule; default the re-planned schedule's."))
    time_limit_seconds: TimeLimit = Field(DEFAULT_TIME_LIMIT)


class StaleReason(BaseModel):
    campaign_id: str
    event_id: str = Field(description="The calendar event (`GET /api/v1/calendar/events`).")
    event_type: str
    occurred_at: datetime
    detail: str = Field(description="What it changed in the planner.")


class UnscheduledTask(BaseModel):
    task_id: str
    reason: str = Field(description="Why no schedule can place it: no resource can do it, or "
                        "it waits for a task that cannot be scheduled.")


class StoredSchedulePublic(BaseModel):
    id: str
    start: date
    horizon_days: int
    campaign_ids: list[str]
    replan_of: str | None
    created_by: str
    created_by_name: str | None = Field(description="The name of the maker's API key.")
    created_at: datetime
    stale: bool = Field(description="A calendar change since it was made changed its tasks: "
                        "re-plan it (`POST …/replan`).")
    stale_reasons: list[StaleReason]
    unscheduled: list[UnscheduledTask] = Field(description="Tasks in scope left out of this "
                                               "schedule, each with why; the rest is planned.")
    resource_names: dict[str, str] = Field(description="The name of each resource the schedule "
                                           "names (assignments, late work and its reasons), by "
                                           "id; one deleted since is left out.")
    schedule: solving.SchedulePublic


Spot = tuple[str, date]   # (resource id, first day)
# Where a stored schedule's result JSON keeps the tasks it left out (no migration needed; a
# schedule stored before it had none).
UNSCHEDULED_KEY = "unscheduled"


def _unschedulable(tasks: list[Task], skills: Skills) -> list[UnscheduledTask]:
    """The tasks no resource can do and every task that waits for one of them, however
    indirectly, each with why; in the order of `tasks`."""
    reasons = {t.id: "; ".join(w) for t in tasks if (w := placement_warnings(t, skills))}
    waiting: defaultdict[str, list[str]] = defaultdict(list)
    for t in tasks:
        for p in t.predecessors:
            waiting[p].append(t.id)
    out, queue = set(reasons), list(reasons)
    while queue:
        for follower in waiting[queue.pop()]:
            if follower not in out:
                out.add(follower)
                queue.append(follower)
    answer = []
    for t in tasks:
        if t.id in out:
            # A waiting task names the first of its own predecessors that is left out.
            blocker = next((p for p in t.predecessors if p in out), None)
            answer.append(UnscheduledTask(task_id=t.id, reason=reasons.get(t.id) or (
                f"waits for task {blocker!r}, which cannot be scheduled")))
    return answer


def _problem(session: Session, start: date, horizon_days: int, campaign_ids: list[str],
             time_limit: float, pinned: dict[str, Spot],
             previous: Mapping[str, engine.Previous | Spot],
             extra: tuple[engine.Task, ...] = (),
             not_before: date | None = None) -> tuple[engine.Problem, list[UnscheduledTask]]:
    """The problem of the tasks in scope that some resource can do, and the tasks left out
    (no resource can do them, or they wait for one that none can)."""
    resources = session.exec(select(Resource).order_by(col(Resource.id))).all()
    statement = select(Task).order_by(col(Task.id))
    if campaign_ids:
        statement = statement.where(col(Task.campaign_id).in_(campaign_ids))
    closed = set(session.exec(select(CampaignState.campaign_id)
                              .where(col(CampaignState.status).in_(CLOSED))))
    tasks = [t for t in session.exec(statement)
             if t.campaign_id not in closed or t.start is not None or t.id in pinned]
    unscheduled = _unschedulable(tasks, resource_skills(session))
    left_out = {u.task_id for u in unscheduled}
    tasks = [t for t in tasks if t.id not in left_out]
    if not resources or not (tasks or extra):
        detail = "Nothing to schedule: add resources at /api/v1/planner/resources and tasks " \
                 "(or generate them for a campaign) first."
        if unscheduled:
            detail += " No task in scope can be scheduled: " + "; ".join(
                f"{u.task_id}: {u.reason}" for u in unscheduled[:10]) + \
                ("; …" if len(unscheduled) > 10 else ".")
        raise Conflict(detail)
    last = start + timedelta(days=horizon_days - 1)
    ids = {t.id for t in tasks}
    # The engine has one calendar weekend: the days every resource has off. A resource's other
    # weekend days (Friday for SA next to DE) are its own days off, as time off is.
    weekends = {r.id: weekend_of(r.market) for r in resources}
    weekend = frozenset.intersection(*weekends.values())
    days = [start + timedelta(days=i) for i in range(horizon_days)]

    def days_off(resource: Resource) -> frozenset[date]:
        own = weekends[resource.id] - weekend
        return frozenset(date.fromisoformat(d) for d in resource.time_off) | frozenset(
            d for d in days if d.weekday() in own)

    def earliest(task: Task) -> date | None:
        # Work that has not started cannot be done before `not_before` (today, for a what-if).
        if not_before is None or task.start is not None or task.id in pinned:
            return task.earliest_start
        return max(task.earliest_start or not_before, not_before)

    problem = engine.Problem(
        start=start, horizon_days=horizon_days, weekend=weekend, time_limit=time_limit,
        previous=previous, resources=tuple(engine.Resource(
            r.id, frozenset(r.skills), r.hours_per_day, time_off=days_off(r),
            holidays=frozenset(holidays_between(r.market, start, last) if r.market else ()))
            for r in resources),
        tasks=tuple(engine.Task(
            id=t.id, skill=t.skill, effort=t.effort, campaign=t.campaign_id,
            earliest_start=earliest(t), deadline=t.deadline, priority=t.priority,
            # Work outside this schedule's scope counts as done.
            predecessors=tuple(x for x in t.predecessors if x in ids), max_per_day=t.max_per_day,
            resource=pinned[t.id][0] if t.id in pinned else t.resource_id,
            start=pinned[t.id][1] if t.id in pinned else t.start) for t in tasks) + extra)
    return problem, unscheduled


def task_fields(problem: engine.Problem) -> Callable[[str], str]:
    """Name a problem's `tasks[i]…` fields by task id (`tasks/camp24-report.start`, after the
    task's own path): a stored schedule's request has no list of tasks to index."""
    ids = [t.id for t in problem.tasks]

    def rename(field: str) -> str:
        if (match := re.fullmatch(r"tasks\[(\d+)\](.*)", field)) is None:
            return field
        return f"tasks/{ids[int(match[1])]}{match[2]}"
    return rename


def check_campaigns(session: Session, campaign_ids: list[str]) -> None:
    """Refuse campaign ids no stored task has (a typo, or tasks not made yet): a schedule of
    them would plan nothing for them without saying so."""
    known = set(session.exec(select(Task.campaign_id).distinct()
                             .where(col(Task.campaign_id).in_(campaign_ids))))
    unknown = [c for c in dict.fromkeys(campaign_ids) if c not in known]
    if unknown:
        raise invalid_fields([(f"campaign_ids[{campaign_ids.index(c)}]",
                               f"the planner has no task of campaign {c!r}; add its tasks "
                               f"(POST /api/v1/planner/campaigns/{c}/tasks or "
                               "/api/v1/planner/tasks) or leave it out") for c in unknown])


def _result(schedule: solving.SchedulePublic,
            unscheduled: list[UnscheduledTask]) -> dict[str, Any]:
    return schedule.model_dump(mode="json") | {
        UNSCHEDULED_KEY: [u.model_dump(mode="json") for u in unscheduled]}


def _by_campaign(schedule: Schedule, problem: engine.Problem) -> list[ScheduleCampaign]:
    """The schedule's assignments and late entries split by their task's campaign, each list
    in the result's order; work of no campaign is in no part."""
    campaign_of = {t.id: t.campaign for t in problem.tasks if t.campaign is not None}
    parts: dict[str, ScheduleCampaign] = {}
    for key in ("assignments", "late"):
        for item in schedule.result[key]:
            if (campaign_id := campaign_of.get(item["task"])) is not None:
                part = parts.setdefault(campaign_id, ScheduleCampaign(
                    schedule_id=schedule.id, campaign_id=campaign_id, assignments=[], late=[]))
                getattr(part, key).append(item)
    return list(parts.values())


def _add(session: Session, schedule: Schedule, parts: list[ScheduleCampaign]) -> None:
    session.add(schedule)
    # The parts refer to the schedule's row: it is written first.
    session.flush()
    session.add_all(parts)


def stale_reasons(session: Session, schedule_id: str) -> list[StaleReason]:
    """The calendar changes that made a stored schedule out of date, oldest first."""
    marks = session.exec(select(StaleMark).where(StaleMark.schedule_id == schedule_id)
                         .order_by(col(StaleMark.marked_at), col(StaleMark.event_id))).all()
    return [StaleReason.model_validate(m, from_attributes=True) for m in marks]


def _public(session: Session, schedule: Schedule) -> StoredSchedulePublic:
    reasons = stale_reasons(session, schedule.id)
    # The engine's late reasons name resources by id; a reader wants the names it knows.
    named = {item["resource"] for key in ("assignments", "late") for item in schedule.result[key]}
    names = session.exec(select(Resource.id, Resource.name)
                         .where(col(Resource.id).in_(named)).order_by(col(Resource.id)))
    return StoredSchedulePublic(id=schedule.id, start=schedule.start_date,
                                horizon_days=schedule.horizon_days,
                                campaign_ids=schedule.campaign_ids, replan_of=schedule.replan_of,
                                created_by=schedule.created_by,
                                created_by_name=schedule.created_by_name,
                                created_at=schedule.created_at,
                                stale=bool(reasons), stale_reasons=reasons,
                                unscheduled=schedule.result.get(UNSCHEDULED_KEY, []),
                                resource_names=dict(names.all()),
                                schedule=solving.SchedulePublic.model_validate(schedule.result))


def _store(session: Session, idempotency: Idempotency, schedule: Schedule,
           parts: list[ScheduleCampaign]) -> StoredSchedulePublic:
    _add(session, schedule, parts)
    answer = _public(session, schedule)
    idempotency.record(session, answer)
    session.commit()
    return answer


def create_schedule(*, session: Session, idempotency: Idempotency, schedule_in: ScheduleCreate,
                    workers: WorkerPool, grace_seconds: float, caller: Caller,
                    progress: solving.OnProgress | None = None,
                    cancelled: solving.IsCancelled | None = None) -> StoredSchedulePublic:
    """Schedule the stored tasks on the stored resources and keep the answer."""
    check_campaigns(session, schedule_in.campaign_ids)
    problem, unscheduled = _problem(session, schedule_in.start, schedule_in.horizon_days,
                                    schedule_in.campaign_ids, schedule_in.time_limit_seconds,
                                    {}, {})
    session.rollback()   # no transaction stays open while the solver works
    result = solving.solve(problem=problem, workers=workers, grace_seconds=grace_seconds,
                           progress=progress, cancelled=cancelled,
                           rename=task_fields(problem))
    schedule = Schedule(
        id=new_id("sch"), start_date=schedule_in.start, horizon_days=schedule_in.horizon_days,
        campaign_ids=schedule_in.campaign_ids, result=_result(result, unscheduled),
        created_by=caller.principal, created_by_name=caller.name)
    return _store(session, idempotency, schedule, _by_campaign(schedule, problem))


def _get_schedule(session: Session, schedule_id: str) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"There is no schedule {schedule_id!r}.")
    return schedule


def read_schedule(*, session: Session, schedule_id: str) -> StoredSchedulePublic:
    """Read a stored schedule."""
    return _public(session, _get_schedule(session, schedule_id))


def _replanned(session: Session, old: StoredSchedulePublic, as_of: date, horizon_days: int,
               time_limit: float, workers: WorkerPool, grace_seconds: float, created_by: str,
               created_by_name: str | None, progress: solving.OnProgress | None = None,
               cancelled: solving.IsCancelled | None = None
               ) -> tuple[Schedule, list[ScheduleCampaign]]:
    # Started work stays; other tasks keep their resource and hours per day where they can,
    # and the answer says how many did not.
    started = {a.task: (a.resource, a.start) for a in old.schedule.assignments
               if a.start <= as_of}
    previous = {a.task: engine.Previous(a.resource, tuple((d.date, hundredths(d.hours))
                                                          for d in a.days))
                for a in old.schedule.assignments}
    problem, unscheduled = _problem(session, old.start, horizon_days, old.campaign_ids,
                                    time_limit, started, previous)
    session.rollback()   # no transaction stays open while the solver works
    result = solving.solve(problem=problem, workers=workers, grace_seconds=grace_seconds,
                           progress=progress, cancelled=cancelled,
                           rename=task_fields(problem))
    schedule = Schedule(id=new_id("sch"), start_date=old.start, horizon_days=horizon_days,
                        campaign_ids=old.campaign_ids, replan_of=old.id,
                        result=_result(result, unscheduled), created_by=created_by,
                        created_by_name=created_by_name)
    return schedule, _by_campaign(schedule, problem)


def replan(*, session: Session, idempotency: Idempotency, schedule_id: str,
           replan_in: ReplanCreate, workers: WorkerPool, grace_seconds: float,
           caller: Caller, progress: solving.OnProgress | None = None,
           cancelled: solving.IsCancelled | None = None) -> StoredSchedulePublic:
    """Schedule again after milestones or capacity changed, moving as little as possible."""
    old = read_schedule(session=session, schedule_id=schedule_id)
    return _store(session, idempotency, *_replanned(
        session, old, replan_in.as_of or date.today(), replan_in.horizon_days or old.horizon_days,
        replan_in.time_limit_seconds, workers, grace_seconds, caller.principal, caller.name,
        progress, cancelled))


def mark_stale(session: Session, *, campaign_id: str, event_id: str, event_type: str,
               occurred_at: datetime, detail: str) -> list[str]:
    """Stage a stale mark for this event on every stored schedule that contains the campaign
    (all-campaign schedules do); return the ids of the schedules newly marked."""
    marked = []
    for schedule_id, campaign_ids in session.exec(select(Schedule.id, Schedule.campaign_ids)):
        if campaign_ids and campaign_id not in campaign_ids:
            continue
        if session.get(StaleMark, (schedule_id, event_id)) is None:
            session.add(StaleMark(schedule_id=schedule_id, event_id=event_id,
                                  event_type=event_type, campaign_id=campaign_id,
                                  occurred_at=occurred_at, detail=detail[:DETAIL_LENGTH]))
            marked.append(schedule_id)
    session.flush()
    return marked


def _latest_and_stale(session: Session, schedule_id: str) -> bool:
    stale = session.exec(select(StaleMark.event_id)
                         .where(StaleMark.schedule_id == schedule_id)).first() is not None
    replanned = session.exec(select(Schedule.id)
                             .where(Schedule.replan_of == schedule_id)).first() is not None
    return stale and not replanned


def replan_stale(*, session: Session, schedule_ids: list[str], workers: WorkerPool,
                 grace_seconds: float, as_of: date) -> list[str]:
    """Re-plan each of these schedules that is stale and has no re-plan yet, as the re-plan
    route would; return the new schedules' ids. A schedule that cannot be re-planned (nothing
    left to schedule, say) stays stale for a person to look at."""
    made = []
    for schedule_id in schedule_ids:
        schedule = session.get(Schedule, schedule_id)
        if schedule is None or not _latest_and_stale(session, schedule_id):
            session.rollback()
            continue
        old = _public(session, schedule)
        try:
            new, parts = _replanned(session, old, as_of, old.horizon_days, DEFAULT_TIME_LIMIT,
                                    workers, grace_seconds, AUTO_REPLANNER, None)
        except Problem as problem:
            session.rollback()
            logger.warning("automatic re-plan of %s failed: %s", schedule_id, problem)
            continue
        # Another process may have re-planned it while this one solved: the old schedule's
        # row lock (SQLite: the write transaction) makes the check and the insert one step.
        session.exec(select(Schedule.id).where(Schedule.id == schedule_id).with_for_update())
        if _latest_and_stale(session, schedule_id):
            _add(session, new, parts)
            made.append(new.id)
        session.commit()
    return made


def _newest_first(session: Session) -> list[tuple[str, list[str]]]:
    rows = session.exec(select(col(Schedule.id), col(Schedule.campaign_ids))
                        .order_by(col(Schedule.created_at).desc(), col(Schedule.id).desc()))
    return [(schedule_id, scope) for schedule_id, scope in rows]


@dataclass(frozen=True)
class Holding:
    """A stored schedule's placements of some of a campaign's tasks, as stored JSON."""
    schedule_id: str
    created_at: datetime
    assignments: list[dict[str, Any]]
    late: list[dict[str, Any]]


def newest_holding(session: Session, campaign_id: str, task_ids: set[str]) -> Holding | None:
    """The newest stored schedule that placed any of these tasks of the campaign, with those
    tasks' assignments and late entries; None if no schedule did."""
    # The campaign's parts only: a department-year's schedule holds 3,000 assignments, and
    # parsing them all to find one campaign's dozen took half the overview's time.
    rows = session.exec(select(Schedule.id, Schedule.created_at, ScheduleCampaign.assignments,
                               ScheduleCampaign.late)
                        .join(ScheduleCampaign, col(ScheduleCampaign.schedule_id) == Schedule.id)
                        .where(ScheduleCampaign.campaign_id == campaign_id)
                        .order_by(col(Schedule.created_at).desc(), col(Schedule.id).desc()))
    for schedule_id, created_at, assignments, late in rows:
        held = [a for a in assignments if a["task"] in task_ids]
        if held:
            return Holding(schedule_id, created_at, held,
                           [x for x in late if x["task"] in task_ids])
    return None


def whatif_problem(session: Session, *, extra: tuple[engine.Task, ...], as_of: date,
                   time_limit: float) -> engine.Problem:
    """Every campaign's current work plus `extra` tasks as one problem, the way a re-plan
    sees it: each task's newest stored placement is kept where its work started by `as_of`
    and preferred elsewhere; work not started begins on `as_of` at the earliest."""
    current = set(session.exec(select(Task.id)))
    placed: dict[str, Spot] = {}
    for schedule_id, _ in _newest_first(session):
        if current <= placed.keys():
            break
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        for a in schedule.result["assignments"]:
            if a["task"] in current:
                placed.setdefault(a["task"], (a["resource"], date.fromisoformat(a["start"])))
        session.expunge(schedule)   # its result can be large; keep one at a time
    started = {task: spot for task, spot in placed.items() if spot[1] <= as_of}
    pinned_starts = session.exec(select(col(Task.start)).where(col(Task.start).is_not(None)))
    start = min([as_of, *(spot[1] for spot in started.values()),
                 *(d for d in pinned_starts if d is not None)])
    deadlines = [d for d in session.exec(select(col(Task.deadline))) if d is not None]
    deadlines += [t.deadline for t in extra if t.deadline is not None]
    # Room after the last deadline for late work, as much as a schedule may have.
    last = max([as_of, *deadlines]) + timedelta(days=WHATIF_ROOM_DAYS)
    horizon = min((last - start).days + 1, solving.MAX_HORIZON_DAYS)
    # A what-if plans around stored work nobody can do, as a stored schedule does.
    problem, _ = _problem(session, start, horizon, [], time_limit, started, placed, extra=extra,
                          not_before=as_of)
    return problem
