"""The stateless solve: its API shapes, their translation to and from the engine's dataclasses,
and the use case that runs the engine in a worker process (also used by stored schedules)."""
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from services.planner import engine
from services.planner.hours import DayHours, HoursOut, hours_out, hundredths
from services.planner.tasks import TaskSpec
from shared.errors import UnprocessableContent, invalid_fields
from shared.types import MAX_SOLVE_SECONDS, Identifier, StrictModel, TimeLimit
from shared.workers import WorkerPool, WorkerTimeout

# A search's progress as the worker pool relays it (the engine's `Progress` as a dict), and the
# caller's cancel.
OnProgress = Callable[[Mapping[str, Any]], None]
IsCancelled = Callable[[], bool]

MAX_TASKS = 5000
MAX_RESOURCES = 200
MAX_HORIZON_DAYS = 730
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)   # in date.weekday() order


class WorkCalendar(StrictModel):
    weekend: list[Weekday] = ["sat", "sun"]
    holidays: list[date] = Field([], max_length=1000)


class ResourceIn(StrictModel):
    id: Identifier
    skills: list[Identifier] = Field(min_length=1, max_length=50)
    hours_per_day: DayHours = Field(description="A team of three designers is 24.")
    time_off: list[date] = Field([], max_length=1000)


class SolveRequest(StrictModel):
    start: date
    horizon_days: int = Field(ge=1, le=MAX_HORIZON_DAYS)
    calendar: WorkCalendar = WorkCalendar()
    resources: list[ResourceIn] = Field(min_length=1, max_length=MAX_RESOURCES)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS)
    time_limit_seconds: TimeLimit = Field(10, description="Past it, the best schedule found is "
                                                       "returned as `feasible`.")


class DayPublic(BaseModel):
    date: date
    hours: HoursOut


class AssignmentPublic(BaseModel):
    task: str
    resource: str
    start: date
    finish: date
    days: list[DayPublic]


class LatePublic(BaseModel):
    task: str
    deadline: date
    finish: date
    days_late: int = Field(description="Working days.")
    reason: str
    resource: str
    saturated_days: list[date] = Field(description="Days between the task being ready and "
                                       "finishing when the resource was full with other work.")
    chain: list[str] = Field(description="Predecessors that pushed it, nearest first.")


class UtilisationPublic(BaseModel):
    resource: str
    week: str
    hours: HoursOut
    capacity: HoursOut


class ObjectivePublic(BaseModel):
    weighted_lateness_days: int = Field(description="Σ priority × working days late.")
    makespan_date: date | None


class ScheduleSolverPublic(BaseModel):
    engine: str = Field(description=(
        "Which engine made the answer: `CP-SAT` (the search; `optimal` when it proved it), "
        "`CP-SAT (stopped)` (the search, stopped from outside: its best answer so far), "
        "`CP-SAT (no priority rule placed every task)`, `priority rule` (the search found "
        "nothing better), `priority rule (too large to search)`, or `priority rule (time "
        "limit reached before the search)` / `priority rule (stopped before the search)`."))
    seconds: float
    first_answer_seconds: float = Field(description="When the priority-rule schedule was ready.")
    best_answer_seconds: float = Field(description="When the returned schedule was found.")


class SchedulePublic(BaseModel):
    status: Literal["optimal", "feasible"]
    objective: ObjectivePublic
    bound: int | None = Field(description="Lower bound on weighted_lateness_days, where known.")
    assignments: list[AssignmentPublic]
    late: list[LatePublic]
    utilisation: list[UtilisationPublic]
    moved: int | None = Field(None, description="Re-plans: tasks not kept hour for hour (a "
                              "kept task has its previous resource and the same hours on each "
                              "day).")
    solver: ScheduleSolverPublic


def to_problem(request: SolveRequest) -> engine.Problem:
    """Translate a solve request into the engine's problem."""
    return engine.Problem(
        start=request.start, horizon_days=request.horizon_days,
        weekend=frozenset(WEEKDAYS.index(d) for d in request.calendar.weekend),
        holidays=frozenset(request.calendar.holidays),
        resources=tuple(engine.Resource(r.id, frozenset(r.skills), hundredths(r.hours_per_day),
                                        frozenset(r.time_off)) for r in request.resources),
        tasks=tuple(engine.Task(
            id=t.id, skill=t.skill, effort=hundredths(t.effort_hours), campaign=t.campaign_id,
            earliest_start=t.earliest_start, deadline=t.deadline, priority=t.priority,
            predecessors=tuple(t.predecessors),
            max_per_day=None if t.max_hours_per_day is None else hundredths(t.max_hours_per_day),
            resource=t.resource_id, start=t.start) for t in request.tasks),
        time_limit=request.time_limit_seconds)


def to_public(schedule: engine.Schedule) -> SchedulePublic:
    """Translate the engine's schedule into the API's answer."""
    return SchedulePublic(
        status=schedule.status,
        objective=ObjectivePublic(weighted_lateness_days=schedule.weighted_lateness,
                                  makespan_date=schedule.makespan),
        bound=schedule.bound,
        assignments=[AssignmentPublic(task=a.task, resource=a.resource, start=a.start,
                                      finish=a.finish,
                                      days=[DayPublic(date=d, hours=hours_out(h)) for d, h in a.days])
                     for a in schedule.assignments],
        late=[LatePublic(task=x.task, deadline=x.deadline, finish=x.finish, days_late=x.days_late,
                         reason=x.reason, resource=x.resource,
                         saturated_days=list(x.saturated_days), chain=list(x.chain))
              for x in schedule.late],
        utilisation=[UtilisationPublic(resource=u.resource, week=u.week, hours=hours_out(u.hours),
                                       capacity=hours_out(u.capacity)) for u in schedule.utilisation],
        moved=schedule.moved,
        solver=ScheduleSolverPublic(engine=schedule.engine, seconds=round(schedule.seconds, 3),
                                    first_answer_seconds=round(schedule.first_answer_seconds, 3),
                                    best_answer_seconds=round(schedule.best_answer_seconds, 3)))


def _api_field(field: str) -> str:
    # The engine names a task's pinned resource `resource`; the API calls it `resource_id`.
    if field.endswith(".resource"):
        return field + "_id"
    return field


def solve(*, problem: engine.Problem, workers: WorkerPool, grace_seconds: float,
          progress: OnProgress | None = None, cancelled: IsCancelled | None = None,
          rename: Callable[[str], str] | None = None) -> SchedulePublic:
    """Schedule in a worker process; an impossible problem is a 422 naming what to change.

    `rename` names a field of the problem (`tasks[3].start`) as the caller's request would (a
    stored schedule's request has no `tasks` list). `progress` hears the search's incumbent,
    bound and gap as they improve; once `cancelled()` turns true the search stops and its best
    schedule so far is the answer (`CP-SAT (stopped)`), or `workers.Cancelled` is raised when
    there is none."""
    try:
        schedule = workers.run(_solve, problem, timeout=problem.time_limit + grace_seconds,
                               progress=progress, cancelled=cancelled, stop_at_timeout=True)
    except engine.Invalid as invalid:
        fields = [(_api_field(f), d) for f, d in invalid.errors]
        raise invalid_fields([(rename(f), d) for f, d in fields] if rename else fields) from None
    except WorkerTimeout:
        raise UnprocessableContent(
            f"No schedule within {problem.time_limit:g} s; lower the number of tasks or raise "
            f"time_limit_seconds (up to {MAX_SOLVE_SECONDS}).") from None
    return to_public(schedule)


def _solve(problem: engine.Problem, *, progress: Callable[[engine.Progress], None] | None = None,
           stop: Callable[[], bool] | None = None) -> engine.Schedule:
    # Imported here, in the worker: OR-Tools must never load in a process that has highspy.
    from services.planner.engine import cp_sat
    return cp_sat.solve(problem, progress=progress, stop=stop)
