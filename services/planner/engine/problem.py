"""The scheduling problem and its answer, as plain data (hours in integer hundredths).

A task is done by one resource (an eligible one, or its pinned one) in any hours on any of that
resource's working days in the task's window: at most min(its max_per_day, the resource's hours
per day) a day, the resource's hours shared with its other tasks that day, pausing over
weekends, holidays and time off, and starting only after every predecessor's last day of work.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

UNIT = 100   # hours are stored in hundredths
# "optimal" only when proven for the problem above; a heuristic or time-limited answer is
# "feasible" (with a true lower bound where one is known).
Status = Literal["optimal", "feasible"]


@dataclass(frozen=True)
class Resource:
    id: str
    skills: frozenset[str]
    hours_per_day: int                        # hundredths of an hour
    time_off: frozenset[date] = frozenset()   # the person's or team's own days off
    holidays: frozenset[date] = frozenset()   # its market's public holidays


@dataclass(frozen=True)
class Task:
    id: str
    skill: str
    effort: int                               # hundredths of an hour
    campaign: str | None = None
    earliest_start: date | None = None
    deadline: date | None = None
    priority: int = 1
    predecessors: tuple[str, ...] = ()
    max_per_day: int | None = None
    resource: str | None = None               # pinned resource
    start: date | None = None                 # pinned first day (work already started)


@dataclass(frozen=True)
class Previous:
    """A task's place in the plan being re-planned: its resource and its hours per day."""
    resource: str
    days: tuple[tuple[date, int], ...]       # (day, hundredths of an hour), by day


@dataclass(frozen=True)
class Problem:
    start: date
    horizon_days: int
    resources: tuple[Resource, ...]
    tasks: tuple[Task, ...]
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()
    # Seconds for the whole engine call: the answer comes within it plus `cp_sat.MARGIN`.
    time_limit: float = 30.0
    # For a re-plan: where each task was; moving fewer is better. A task is kept when it has
    # exactly its previous hours on each day, on its previous resource. The older form, a
    # (resource, first day) pair, keeps a task that keeps its resource and first day.
    previous: Mapping[str, Previous | tuple[str, date]] = field(default_factory=dict)


@dataclass(frozen=True)
class Assignment:
    task: str
    resource: str
    start: date
    finish: date
    days: tuple[tuple[date, int], ...]       # (day, hundredths of an hour)


@dataclass(frozen=True)
class Late:
    task: str
    deadline: date
    finish: date
    days_late: int                            # working days
    reason: str
    resource: str
    saturated_days: tuple[date, ...]          # the resource was full on these, before the start
    chain: tuple[str, ...]                    # predecessors that pushed it, nearest first


@dataclass(frozen=True)
class Utilisation:
    resource: str
    week: str                                 # ISO week, "2026-W49"
    hours: int
    capacity: int


@dataclass(frozen=True)
class Schedule:
    status: Status
    weighted_lateness: int                    # Σ priority × working days late
    makespan: date | None
    bound: int | None                         # lower bound on weighted_lateness, where known
    assignments: tuple[Assignment, ...]
    late: tuple[Late, ...]
    utilisation: tuple[Utilisation, ...]
    engine: str
    seconds: float
    first_answer_seconds: float
    best_answer_seconds: float
    moved: int | None = None                  # re-plan: tasks not kept (see Problem.previous)


class Invalid(Exception):
    """The problem cannot be scheduled as given: [(field, what is wrong and how to fix it)]."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {d}" for f, d in errors))
        self.errors = errors

    def __reduce__(self) -> tuple[type["Invalid"], tuple[list[tuple[str, str]]]]:
        # Crosses the worker-process boundary intact (the default would pickle only the text).
        return Invalid, (self.errors,)


@dataclass(frozen=True)
class Progress:
    """How far a search is: the best answer's weighted lateness (None before there is one), a
    lower bound on it, and their relative gap (incumbent − bound) / max(incumbent, 1)."""
    elapsed_seconds: float
    incumbent: int | None
    bound: int
    gap: float | None


@dataclass(frozen=True)
class Work:
    """What an engine decides for one task: its resource and its hours per working day."""
    resource: str
    hours: tuple[tuple[int, int], ...]        # (working-day index, hundredths > 0), by day

    @property
    def first(self) -> int:
        return self.hours[0][0]

    @property
    def last(self) -> int:
        return self.hours[-1][0]


# An engine's answer before it is checked and explained: the work of every task.
Plan = dict[str, Work]
