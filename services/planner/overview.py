"""One campaign's dates, money and work in one answer: the campaign from the calendar, its
funding from the budget, its tasks from the planner's own tables and newest schedule.

The other services are asked at once, each for at most a short time; one that cannot answer
is named in `partial` and the rest is still answered, so a service that is down never turns
the overview into an error. Only the calendar saying the campaign does not exist is a 404.
"""
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, col, select

from services.planner import schedules, solving
from services.planner.hours import HoursOut, hours_out
from services.planner.models import Task
from services.planner.peers import start
from shared.client import ServiceClient
from shared.errors import NotFound, Problem
from shared.types import Money, Ratio

logger = logging.getLogger("marketplan.planner")

Peer = Literal["calendar", "budget"]


class GateDecision(BaseModel):
    decision: Literal["passed", "rejected"]
    approver: str
    comment: str | None = None
    at: datetime


class CampaignMilestone(BaseModel):
    id: str = Field(description="In a what-if, a placeholder (`planned-1`, …) that its tasks "
                    "refer to.")
    kind: str
    name: str
    due_date: date
    status: str | None = None
    decision: GateDecision | None = Field(None, description="A review gate's latest decision.")


class CampaignPhase(BaseModel):
    kind: str
    start_date: date
    end_date: date


class CampaignObjective(BaseModel):
    kpi: str
    target: Ratio
    unit: str | None = None
    deadline: date


class CampaignView(BaseModel):
    """The campaign as the calendar reports it (or, in a what-if, would create it)."""

    id: str | None = Field(None, description="Null in a what-if (nothing is stored).")
    name: str
    status: str | None = None
    objective: CampaignObjective
    channels: list[str]
    market: str
    time_zone: str
    priority: int
    start_date: date
    end_date: date
    phases: list[CampaignPhase]
    milestones: list[CampaignMilestone]


class FundingPhaseView(BaseModel):
    kind: str
    start_date: date | None = None
    end_date: date | None = None
    amount: Money


class FundingPeriodView(BaseModel):
    period: str
    amount: Money


class FundingLineView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel_id: str
    channel_kind: str
    amount: Money
    per_phase: list[FundingPhaseView] = []
    per_period: list[FundingPeriodView] = []
    spent: Money | None = None
    return_: Money | None = Field(None, alias="return")
    roi: Ratio | None = None


class FundingKpiView(BaseModel):
    kpi: str
    target: Ratio
    actual: Ratio | None = None
    progress: Ratio | None = None


class FundingView(BaseModel):
    """What one budget funds of the campaign, as the budget service reports it."""

    model_config = ConfigDict(populate_by_name=True)

    budget_id: str
    campaign_id: str
    currency: str
    lines: list[FundingLineView]
    committed: Money
    spent: Money | None = None
    return_: Money | None = Field(None, alias="return")
    roi: Ratio | None = None
    kpi: FundingKpiView | None = None


class WorkTask(BaseModel):
    id: str
    name: str
    milestone_id: str | None
    skill: str
    effort_hours: HoursOut
    earliest_start: date | None
    deadline: date | None
    resource: str | None = Field(description="Where the schedule put it (or its pinned resource).")
    start: date | None
    finish: date | None


class ScheduleRef(BaseModel):
    id: str
    created_at: datetime
    stale: bool = Field(description="Calendar changes since it was made changed its tasks, or "
                        "some of the campaign's tasks are not in it: re-plan it.")
    stale_reasons: list[schedules.StaleReason]
    unscheduled: list[str] = Field(description="The campaign's tasks this schedule lacks.")


class CampaignWork(BaseModel):
    tasks: list[WorkTask]
    late: list[solving.LatePublic]
    schedule: ScheduleRef | None = Field(description="The newest stored schedule holding the "
                                         "campaign's tasks; null if none does.")


class CampaignOverview(BaseModel):
    campaign_id: str
    campaign: CampaignView | None = Field(description="Null when the calendar did not answer.")
    money: list[FundingView] | None = Field(description="One entry per budget funding the "
                                            "campaign; null when the budget did not answer.")
    work: CampaignWork
    partial: list[Peer] = Field(description="The services that could not answer in time.")


def campaign_view(campaign: dict[str, Any]) -> CampaignView:
    """The calendar's campaign (or preview) as the overview shows it."""
    return CampaignView.model_validate(campaign | {"milestones": [
        m | {"decision": m.get("approval")} for m in campaign.get("milestones", [])]})


def work_task(task: Task, assignment: dict[str, Any] | None) -> WorkTask:
    """A stored task with where and when a schedule put it."""
    return WorkTask(id=task.id, name=task.name, milestone_id=task.milestone_id, skill=task.skill,
                    effort_hours=hours_out(task.effort), earliest_start=task.earliest_start,
                    deadline=task.deadline,
                    resource=assignment["resource"] if assignment else task.resource_id,
                    start=assignment["start"] if assignment else task.start,
                    finish=assignment["finish"] if assignment else None)


def campaign_work(session: Session, campaign_id: str) -> CampaignWork:
    """The campaign's tasks as its newest schedule placed them, late ones with reasons."""
    tasks = session.exec(select(Task).where(Task.campaign_id == campaign_id)
                         .order_by(col(Task.id))).all()
    ids = {t.id for t in tasks}
    found = schedules.newest_holding(session, campaign_id, ids) if tasks else None
    if found is None:
        return CampaignWork(tasks=[work_task(t, None) for t in tasks], late=[], schedule=None)
    by_task = {a["task"]: a for a in found.assignments}
    reasons = schedules.stale_reasons(session, found.schedule_id)
    unscheduled = sorted(ids - by_task.keys())
    return CampaignWork(
        tasks=[work_task(t, by_task.get(t.id)) for t in tasks],
        late=[solving.LatePublic.model_validate(x) for x in found.late],
        schedule=ScheduleRef(id=found.schedule_id, created_at=found.created_at,
                             stale=bool(reasons or unscheduled), stale_reasons=reasons,
                             unscheduled=unscheduled))


def _read(client: ServiceClient, path: str, timeout: float) -> tuple[int, Any]:
    response = client.request("GET", path, timeout=timeout)
    return response.status_code, response.json() if response.status_code == 200 else None


def _answer(peer: Peer, future: Any) -> tuple[int | None, Any]:
    """A peer's (status, JSON body), or (None, None) when it could not answer."""
    try:
        status, body = future.result()
    except (Problem, ValueError) as failure:
        logger.warning("campaign overview without the %s service: %s", peer, failure)
        return None, None
    return status, body


def read_overview(*, session: Session, calendar: ServiceClient, budget: ServiceClient,
                  campaign_id: str, timeout: float) -> CampaignOverview:
    """Compose the campaign's overview; a service that cannot answer is listed in `partial`."""
    quoted = quote(campaign_id, safe="")
    with ThreadPoolExecutor(max_workers=2) as executor:
        asked_calendar = start(executor, lambda: _read(
            calendar, f"/api/v1/calendar/campaigns/{quoted}", timeout))
        asked_budget = start(executor, lambda: _read(
            budget, f"/api/v1/budget/campaigns/{quoted}/funding", timeout))
        work = campaign_work(session, campaign_id)
        calendar_status, campaign = _answer("calendar", asked_calendar)
        budget_status, funding = _answer("budget", asked_budget)
    if calendar_status == 404:
        raise NotFound(f"The calendar has no campaign {campaign_id!r}.")
    partial: list[Peer] = []
    view = money = None
    try:
        view = campaign_view(campaign) if calendar_status == 200 else None
    except ValidationError as invalid:
        logger.warning("the calendar's campaign %s is not as expected: %s", campaign_id, invalid)
    if view is None:
        partial.append("calendar")
    try:
        money = ([FundingView.model_validate(item) for item in funding["items"]]
                 if budget_status == 200 else None)
    except (ValidationError, KeyError, TypeError) as invalid:
        logger.warning("the budget's funding of %s is not as expected: %s", campaign_id, invalid)
    if money is None:
        partial.append("budget")
    return CampaignOverview(campaign_id=campaign_id, campaign=view, money=money, work=work,
                            partial=partial)
