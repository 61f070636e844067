"""Campaign templates from the department playbook: the standard milestones chained by
working-day lags back from the launch, the phases around it, the contingency window and the
recurring reviews. Pure: no database, no HTTP."""
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from services.calendar.graph.model import CONTINGENCY_HOURS
from shared.workdays import add_working_days

TemplateName = Literal["standard", "flash_sale", "brand"]


@dataclass(frozen=True)
class Step:
    kind: str
    name: str
    lag_days: int        # working days after the previous step (finish-to-start)


@dataclass(frozen=True)
class Template:
    steps: tuple[Step, ...]          # kickoff first, launch last
    warmup_days: int                 # calendar days before the launch
    burst_days: int
    sustain_days: int
    wrapup_days: int
    reviews: tuple[tuple[str, str, str | None], ...]   # (name, frequency, phase or whole)


def _steps(creative: int, gate1: int, test: int, gate2: int, launch: int) -> tuple[Step, ...]:
    return (Step("kickoff", "Kickoff", 0), Step("creative_final", "Creative final", creative),
            Step("review_gate", "Creative review", gate1),
            Step("channel_test", "Channel test", test),
            Step("review_gate", "Launch readiness review", gate2), Step("launch", "Launch", launch))


TEMPLATES: dict[TemplateName, Template] = {
    "standard": Template(_steps(10, 2, 3, 2, 3), warmup_days=7, burst_days=14, sustain_days=21,
                         wrapup_days=7,
                         reviews=(("Daily check", "daily", "burst"),
                                  ("Weekly analysis", "weekly", None),
                                  ("Monthly review", "monthly", None))),
    "flash_sale": Template(_steps(5, 1, 1, 1, 1), warmup_days=2, burst_days=3, sustain_days=0,
                           wrapup_days=2, reviews=(("Daily check", "daily", None),)),
    "brand": Template(_steps(20, 3, 5, 3, 5), warmup_days=14, burst_days=28, sustain_days=56,
                      wrapup_days=14,
                      reviews=(("Weekly analysis", "weekly", None),
                               ("Monthly review", "monthly", None),
                               ("Quarterly review", "quarterly", None))),
}


@dataclass(frozen=True)
class PlannedMilestone:
    kind: str
    name: str
    due_date: date
    lag_days: int        # after the previous milestone of the chain
    window_hours: int | None = None


@dataclass(frozen=True)
class PlannedPhase:
    kind: str
    start_date: date
    end_date: date


@dataclass(frozen=True)
class Layout:
    start_date: date
    end_date: date
    milestones: tuple[PlannedMilestone, ...]    # the chain, then the contingency window
    phases: tuple[PlannedPhase, ...]


def lay_out(name: TemplateName, launch: date, market: str) -> Layout:
    """Place a template's milestones back from `launch` in `market`'s working days.

    >>> [m.due_date.isoformat() for m in lay_out("flash_sale", date(2026, 12, 28), "US").milestones][:2]
    ['2026-12-14', '2026-12-21']
    """
    template = TEMPLATES[name]
    dates = [launch]
    for step in reversed(template.steps[1:]):
        dates.insert(0, add_working_days(dates[0], -step.lag_days, market))
    milestones = [PlannedMilestone(s.kind, s.name, d, s.lag_days)
                  for s, d in zip(template.steps, dates)]
    milestones.append(PlannedMilestone("contingency", "Launch contingency window", launch, 0,
                                       CONTINGENCY_HOURS))
    phases: list[PlannedPhase] = []
    day = launch - timedelta(days=template.warmup_days)
    for kind, days in (("warmup", template.warmup_days), ("burst", template.burst_days),
                       ("sustain", template.sustain_days), ("wrapup", template.wrapup_days)):
        if days:
            phases.append(PlannedPhase(kind, day, day + timedelta(days=days - 1)))
            day += timedelta(days=days)
    return Layout(start_date=min(dates[0], phases[0].start_date), end_date=phases[-1].end_date,
                  milestones=tuple(milestones), phases=tuple(phases))
