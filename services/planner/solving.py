"""The stateless solve's API shapes, their translation to and from `problem`'s dataclasses, and
the use case that runs it in a worker process."""
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from services.planner import problem as p
from shared.errors import UnprocessableContent, invalid_fields
from shared.workers import WorkerPool, WorkerTimeout

MAX_TASKS = 5000
MAX_RESOURCES = 200
MAX_HORIZON_DAYS = 730
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Hours = Annotated[Decimal, Field(gt=0, le=100_000, allow_inf_nan=False, decimal_places=2)]
DayHours = Annotated[Decimal, Field(gt=0, le=24 * 100, allow_inf_nan=False, decimal_places=2)]
Identifier = Annotated[str, Field(min_length=1, max_length=100)]
HoursOut = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str,
                                              when_used="json")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkCalendar(_Strict):
    weekend: list[Literal[WEEKDAYS]] = ["sat", "sun"]  # type: ignore[valid-type]
    holidays: list[date] = Field([], max_length=1000)


class ResourceIn(_Strict):
    id: Identifier
    skills: list[Identifier] = Field(min_length=1, max_length=50)
    hours_per_day: DayHours = Field(description="A team of three designers is 24.")
    time_off: list[date] = Field([], max_length=1000)


class TaskIn(_Strict):
    id: Identifier
    campaign: Identifier | None = None
    skill: Identifier
    effort_hours: Hours
    earliest_start: date | None = None
    deadline: date | None = None
    priority: int = Field(1, ge=1, le=100)
    predecessors: list[Identifier] = Field([], max_length=100)
    max_hours_per_day: DayHours | None = None
    resource: Identifier | None = Field(None, description="Pinned: only this resource.")
    start: date | None = Field(None, description="Pinned first day (work already started).")


class SolveRequest(_Strict):
    start: date
    horizon_days: int = Field(ge=1, le=MAX_HORIZON_DAYS)
    calendar: WorkCalendar = WorkCalendar()
    resources: list[ResourceIn] = Field(min_length=1, max_length=MAX_RESOURCES)
    tasks: list[TaskIn] = Field(min_length=1, max_length=MAX_TASKS)
    time_limit_seconds: float = Field(10, gt=0, le=60, description="Past it, the best schedule "
                                      "found is returned as `feasible`.")


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
    saturated_days: list[date] = Field(description="Days the resource was full before the start.")
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
    engine: str
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
    moved: int | None = Field(None, description="Re-plans: tasks whose resource or start changed.")
    solver: ScheduleSolverPublic


def _hours(value: Decimal) -> int:
    return int(value * p.UNIT)


def hours_out(hundredths: int) -> Decimal:
    return (Decimal(hundredths) / p.UNIT).quantize(Decimal("0.01"))


def to_problem(request: SolveRequest, previous: dict[str, tuple[str, date]] | None = None) -> p.Problem:
    return p.Problem(
        start=request.start, horizon_days=request.horizon_days,
        weekend=frozenset(WEEKDAYS.index(d) for d in request.calendar.weekend),
        holidays=frozenset(request.calendar.holidays),
        resources=tuple(p.Resource(r.id, frozenset(r.skills), _hours(r.hours_per_day),
                                   frozenset(r.time_off)) for r in request.resources),
        tasks=tuple(p.Task(
            id=t.id, skill=t.skill, effort=_hours(t.effort_hours), campaign=t.campaign,
            earliest_start=t.earliest_start, deadline=t.deadline, priority=t.priority,
            predecessors=tuple(t.predecessors),
            max_per_day=None if t.max_hours_per_day is None else _hours(t.max_hours_per_day),
            resource=t.resource, start=t.start) for t in request.tasks),
        time_limit=request.time_limit_seconds, previous=previous or {})


def to_public(schedule: p.Schedule) -> SchedulePublic:
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


def solve(*, problem: p.Problem, workers: WorkerPool, grace_seconds: float) -> SchedulePublic:
    """Schedule in a worker process; an impossible problem is a 422 naming what to change."""
    try:
        schedule = workers.run(_solve, problem, timeout=problem.time_limit + grace_seconds)
    except p.Invalid as invalid:
        raise invalid_fields(invalid.errors) from None
    except WorkerTimeout:
        raise UnprocessableContent(
            f"No schedule within {problem.time_limit:g} s; lower the number of tasks or raise "
            "time_limit_seconds (up to 60).") from None
    return to_public(schedule)


def _solve(problem: p.Problem) -> p.Schedule:
    # Imported here, in the worker: OR-Tools must never load in a process that has highspy.
    from services.planner import schedule
    return schedule.solve(problem)
