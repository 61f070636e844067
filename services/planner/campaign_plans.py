"""Plan a campaign: what it would get from all three services, and (on `commit`) creating it
all or nothing.

The what-if asks the calendar what the campaign would be (its preview: milestones, phases),
gives it the planner's template tasks, schedules them with every campaign's current work in
the worker pool while the budget optimises its funding, and stores nothing.

The commit then makes it, in order: the campaign (calendar), its tasks (planner), its funding
(budget). Each step is a call to one service that either happens or not, so there is no
transaction across them: when a step fails, the ones before it are undone in reverse order
(DELETE funding, delete the tasks, DELETE the draft campaign) and the answer names the failed
step and whether the undo completed. The calendar create carries an `Idempotency-Key` derived
from the caller's, so a retry after a crash finds the campaign made the first time instead of
making a second one.
"""
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from services.planner import engine, schedules, solving
from services.planner.hours import hours_out
from services.planner.overview import (
    CampaignView,
    FundingPhaseView,
    FundingView,
    WorkTask,
    campaign_view,
)
from services.planner.peers import BadGateway, refused, start
from services.planner.resources import templates
from services.planner.tasks import (
    StepTask,
    milestone_work,
    remove_campaign_tasks,
    stage_campaign_tasks,
)
from shared.channels import ChannelKind
from shared.client import ServiceClient
from shared.errors import Problem, ServiceUnavailable, invalid_fields
from shared.idempotency import IDEMPOTENCY_HEADER, KEY_LENGTH, Idempotency
from shared.internal_auth import Caller
from shared.types import Amount, Identifier, Money, Name, Ratio, Share, StrictModel, TimeLimit
from shared.versioning import version_etag
from shared.workers import WorkerPool

logger = logging.getLogger("marketplan.planner")

Step = Literal["campaign", "tasks", "funding"]
PhaseKind = Literal["warmup", "burst", "sustain", "wrapup"]
# Before it is created, the campaign and its milestones go by these ids.
PLANNED = "planned"
# Objectives whose target is money: the funding is asked to reach it.
REVENUE_KPIS = ("revenue", "return")
ROAS_KPI = "roas"
# A what-if answers in a few seconds; a commit can afford the same.
DEFAULT_TIME_LIMIT = 2


class IdempotencyKeyRequired(Problem):
    status, slug, title = 428, "idempotency-key-required", "Idempotency-Key required"


class PlanObjective(StrictModel):
    kpi: Identifier = Field(examples=["revenue"])
    target: Decimal = Field(allow_inf_nan=False, examples=["250000"])
    unit: Identifier | None = None
    deadline: date


class CampaignPlanCreate(StrictModel):
    name: Name
    template: Identifier = Field(examples=["standard"], description="A calendar template: its "
                                 "milestones and phases, placed back from launch_date.")
    launch_date: date
    adjust: Literal["next_working_day"] | None = Field(
        None, description="A launch_date that is not a working day of the market moves to the "
        "next one (without it, such a launch is a 422).")
    market: Identifier = Field(examples=["US"])
    time_zone: Identifier = Field(examples=["America/New_York"])
    channels: list[ChannelKind] = Field(min_length=1, max_length=20)
    priority: int = Field(3, ge=1, le=5)
    objective: PlanObjective
    owner: Identifier | None = Field(None, description="Default: the caller.")
    budget_id: Identifier = Field(description="The budget that funds it.")
    ceiling: Amount = Field(description="At most this much of the budget's plan for it.")
    phase_weights: dict[PhaseKind, Share] | None = Field(
        None, description="How its money is spread over its phases; default: the budget's.")
    time_limit_seconds: TimeLimit = Field(
        DEFAULT_TIME_LIMIT, description="For scheduling its work with the others'.")
    commit: bool = Field(False, description="Create the campaign, its tasks and its funding "
                         "(all or nothing; `Idempotency-Key` required). Default: a what-if.")


class SaturatedResource(BaseModel):
    resource: str
    weeks: list[solving.UtilisationPublic] = Field(description="Its full weeks while the "
                                                   "campaign's work is due.")
    reason: str


class PlanWork(BaseModel):
    tasks: list[WorkTask] = Field(description="The campaign's tasks, where they would go.")
    late: list[solving.LatePublic] = Field(description="The campaign's tasks that would be late.")
    others_late: list[solving.LatePublic] = Field(description="Other campaigns' tasks late in "
                                                  "the same schedule.")
    saturated: list[SaturatedResource]
    status: Literal["optimal", "feasible"]
    weighted_lateness_days: int = Field(description="Σ priority × working days late, all work.")
    solver: solving.ScheduleSolverPublic


class ChannelMoney(BaseModel):
    channel_id: str
    amount: Money


class PlanFundingLine(BaseModel):
    channel_id: str
    channel_kind: str
    amount: Money
    per_phase: list[FundingPhaseView]
    expected_return: Money
    marginal_roi: Ratio | None = None


class PlanFunding(BaseModel):
    """The budget's optimised funding for the campaign (what-if)."""

    lines: list[PlanFundingLine]
    total: Money
    expected_return: Money
    target_reached: bool | None
    status: str
    uncommitted: list[ChannelMoney] = Field(description="What each channel's plan had left.")


class CampaignPlanPublic(BaseModel):
    committed: bool
    campaign: CampaignView
    work: PlanWork
    funding: PlanFunding
    funded: FundingView | None = Field(description="After a commit: the funding as stored.")


def _campaign_body(plan_in: CampaignPlanCreate, caller: Caller) -> dict[str, Any]:
    body = plan_in.model_dump(mode="json", include={
        "name", "template", "launch_date", "adjust", "market", "time_zone", "channels",
        "priority", "objective"}, exclude_none=True)
    return body | {"owner": plan_in.owner or caller.principal}


def _target_return(plan_in: CampaignPlanCreate) -> Decimal | None:
    objective = plan_in.objective
    if objective.kpi in REVENUE_KPIS:
        return objective.target
    if objective.kpi == ROAS_KPI:   # return per unit spent, over the whole ceiling
        # With the ceiling's decimals: the budget takes no more than its currency has.
        return (objective.target * plan_in.ceiling).quantize(plan_in.ceiling)
    return None


def _preview(calendar: ServiceClient, body: dict[str, Any]) -> dict[str, Any]:
    response = calendar.request("POST", "/api/v1/calendar/campaigns/preview", json=body)
    if response.status_code != 200:
        raise refused(service="calendar", what="Previewing the campaign", response=response)
    campaign: dict[str, Any] = response.json()
    # Nothing is stored yet: placeholder ids, so that its tasks can be named.
    return campaign | {"id": campaign.get("id") or PLANNED, "milestones": [
        m | {"id": m.get("id") or f"{PLANNED}-{i + 1}"}
        for i, m in enumerate(campaign.get("milestones", []))]}


def _optimize(budget: ServiceClient, plan_in: CampaignPlanCreate,
              campaign: dict[str, Any]) -> PlanFunding:
    body = {"start_date": campaign["start_date"], "end_date": campaign["end_date"],
            "phases": [{k: p[k] for k in ("kind", "start_date", "end_date")}
                       for p in campaign.get("phases", [])],
            "channels": plan_in.channels, "ceiling": str(plan_in.ceiling),
            "target_return": None if (target := _target_return(plan_in)) is None
            else str(target)}
    if plan_in.phase_weights is not None:
        body["phase_weights"] = {k: str(v) for k, v in plan_in.phase_weights.items()}
    response = budget.request(
        "POST", f"/api/v1/budget/budgets/{quote(plan_in.budget_id, safe='')}"
        "/campaign-funding/optimize", json=body)
    if response.status_code == 404:
        # The one id in this call is the body's budget: the caller's field to fix, not a path.
        raise invalid_fields([("budget_id", f"there is no budget {plan_in.budget_id!r}; give "
                                            "the id of a budget (GET /api/v1/budget/budgets)")])
    if response.status_code != 200:
        raise refused(service="budget", what="Optimising the campaign's funding",
                      response=response)
    return PlanFunding.model_validate(response.json())


def _engine_tasks(work: list[StepTask], as_of: date) -> tuple[engine.Task, ...]:
    # Work that has not started cannot be done before today.
    return tuple(engine.Task(
        id=t.id, skill=t.values["skill"], effort=t.values["effort"],
        campaign=t.values["campaign_id"], earliest_start=max(t.earliest_start, as_of),
        deadline=t.values["deadline"], priority=t.values["priority"],
        predecessors=tuple(t.values["predecessors"]), max_per_day=t.values["max_per_day"])
        for t in work)


def _saturated(schedule: solving.SchedulePublic, tasks: tuple[engine.Task, ...],
               late: list[solving.LatePublic]) -> list[SaturatedResource]:
    """The resources the campaign's work uses that are full while it is due, and those its
    late tasks waited for."""
    ids = {t.id for t in tasks}
    used = {a.resource for a in schedule.assignments if a.task in ids}
    first = min((t.earliest_start for t in tasks if t.earliest_start), default=None)
    last = max((t.deadline for t in tasks if t.deadline), default=None)
    window = set() if first is None or last is None else {
        f"{d.isocalendar().year}-W{d.isocalendar().week:02d}"
        for d in (date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1))}
    waited = {x.resource: x for x in late}
    answer = []
    for resource in sorted(used | waited.keys()):
        full = [u for u in schedule.utilisation
                if u.resource == resource and u.week in window and u.hours >= u.capacity]
        if not full and resource not in waited:
            continue
        reasons = []
        if full:
            reasons.append(f"{resource} is fully booked in {', '.join(u.week for u in full)} "
                           "while the campaign's work is due")
        if resource in waited:
            reasons.append(f"the campaign's task {waited[resource].task} is late on it: "
                           f"{waited[resource].reason}")
        answer.append(SaturatedResource(resource=resource, weeks=full, reason="; ".join(reasons)))
    return answer


def _work(schedule: solving.SchedulePublic, tasks: tuple[engine.Task, ...],
          names: dict[str, str]) -> PlanWork:
    ids = {t.id for t in tasks}
    by_task = {a.task: a for a in schedule.assignments}
    late = [x for x in schedule.late if x.task in ids]
    return PlanWork(
        tasks=[WorkTask(id=t.id, name=names[t.id], milestone_id=t.id.rsplit("-", 1)[0],
                        skill=t.skill, effort_hours=hours_out(t.effort),
                        earliest_start=t.earliest_start, deadline=t.deadline,
                        resource=by_task[t.id].resource, start=by_task[t.id].start,
                        finish=by_task[t.id].finish) for t in tasks],
        late=late, others_late=[x for x in schedule.late if x.task not in ids],
        saturated=_saturated(schedule, tasks, late), status=schedule.status,
        weighted_lateness_days=schedule.objective.weighted_lateness_days, solver=schedule.solver)


def whatif(*, session: Session, calendar: ServiceClient, budget: ServiceClient,
           workers: WorkerPool, grace_seconds: float, caller: Caller, plan_in: CampaignPlanCreate,
           progress: solving.OnProgress | None = None, cancelled: solving.IsCancelled | None = None,
           ) -> tuple[CampaignPlanPublic, dict[str, Any]]:
    """Answer what the campaign would get (storing nothing), with the preview it came from."""
    campaign = _preview(calendar, _campaign_body(plan_in, caller))
    as_of = date.today()
    work = milestone_work(campaign, templates(session))
    tasks = _engine_tasks(work, as_of)
    names = {t.id: t.values["name"] for t in work}
    problem = schedules.whatif_problem(session, extra=tasks, as_of=as_of,
                                       time_limit=plan_in.time_limit_seconds)
    session.rollback()   # no transaction stays open while the solver and the budget work
    with ThreadPoolExecutor(max_workers=1) as executor:
        funding = start(executor, lambda: _optimize(budget, plan_in, campaign))
        schedule = solving.solve(problem=problem, workers=workers, grace_seconds=grace_seconds,
                                 progress=progress, cancelled=cancelled,
                                 rename=schedules.task_fields(problem))
        answer = CampaignPlanPublic(committed=False,
                                    campaign=campaign_view(campaign | {"id": None}),
                                    work=_work(schedule, tasks, names), funding=funding.result(),
                                    funded=None)
    return answer, campaign


def _derived_key(key: str) -> str:
    # Stable per plan key and short enough for any service's key column.
    return "campaign-plan:" + hashlib.sha256(key.encode()).hexdigest()[:KEY_LENGTH - 14]


def _renamed(work: PlanWork, planned: dict[str, Any], created: dict[str, Any]) -> PlanWork:
    """The what-if's work under the created milestones' ids (same template, same order)."""
    ids = {p["id"]: c["id"] for p, c in zip(planned["milestones"], created["milestones"],
                                              strict=False)
           if (p["kind"], p["due_date"]) == (c["kind"], c["due_date"])}

    def task_id(old: str) -> str:
        milestone, _, step = old.rpartition("-")
        return f"{ids[milestone]}-{step}" if milestone in ids else old

    return work.model_copy(update={
        "tasks": [t.model_copy(update={"id": task_id(t.id),
                                       "milestone_id": ids.get(t.milestone_id or "",
                                                               t.milestone_id)})
                  for t in work.tasks],
        "late": [x.model_copy(update={"task": task_id(x.task),
                                      "chain": [task_id(c) for c in x.chain]})
                 for x in work.late]})


class _Steps:
    """The commit's steps done so far, and their undo."""

    def __init__(self, *, session: Session, calendar: ServiceClient, budget: ServiceClient,
                 budget_id: str):
        self.session, self.calendar, self.budget = session, calendar, budget
        self.budget_id = budget_id
        self.campaign_id: str | None = None
        # The version the calendar created: the undo deletes that version only, never a
        # campaign someone changed in the meantime.
        self.campaign_version: int | None = None
        self.reached: list[Step] = []

    def undo(self) -> list[str]:
        """Undo every step reached (the failed one too: its call may have taken effect before
        the failure), newest first; return what could not be undone."""
        left = []
        undos: dict[Step, tuple[str, Callable[[], None]]] = {
            "funding": (f"the funding of campaign {self.campaign_id} in budget "
                        f"{self.budget_id}", self._delete_funding),
            "tasks": (f"the tasks of campaign {self.campaign_id}", self._delete_tasks),
            "campaign": (f"the draft campaign {self.campaign_id}", self._delete_campaign)}
        for step in reversed(self.reached):
            what, undo = undos[step]
            try:
                undo()
            except (Problem, SQLAlchemyError) as failure:
                logger.error("could not undo %s: %s", what, failure)
                left.append(what)
        return left

    def _delete_funding(self) -> None:
        response = self.budget.request(
            "DELETE", f"/api/v1/budget/budgets/{quote(self.budget_id, safe='')}/campaigns/"
            f"{quote(self.campaign_id or '', safe='')}")
        if response.status_code not in (204, 404):
            raise refused(service="budget", what="Deleting the funding", response=response)

    def _delete_tasks(self) -> None:
        self.session.rollback()
        remove_campaign_tasks(session=self.session, campaign_id=self.campaign_id or "")

    def _delete_campaign(self) -> None:
        response = self.calendar.request(
            "DELETE", f"/api/v1/calendar/campaigns/{quote(self.campaign_id or '', safe='')}",
            headers={"If-Match": version_etag(self.campaign_version or 0)})
        if response.status_code not in (204, 404):
            raise refused(service="calendar", what="Deleting the campaign", response=response)


def _failed(cause: Problem, step: Step, campaign_id: str | None, left: list[str]) -> Problem:
    undone = not left
    detail = (f"Step '{step}' of the commit failed: {cause.detail} "
              + ("Every earlier step was undone: nothing was created. Send the plan again with "
                 "a new Idempotency-Key." if undone else
                 "Some earlier steps could not be undone and remain: " + "; ".join(left)
                 + ". Send the same request again (same Idempotency-Key) to finish the plan."))
    failure = type(cause)(detail, **(cause.extra | {"step": step, "undone": undone,
                                                    "campaign_id": campaign_id, "left": left}))
    failure.headers = cause.headers
    return failure


def _inject(step: Step, fail_step: Step | None) -> None:
    if step == fail_step:
        raise BadGateway(f"an injected failure (PLANNER_FAIL_STEP={step}, a test hook).")


def require_key(plan_in: CampaignPlanCreate, idempotency: Idempotency) -> None:
    """Refuse a commit without an Idempotency-Key (428)."""
    if plan_in.commit and idempotency.key is None:
        raise IdempotencyKeyRequired(
            f"A commit creates a campaign, its tasks and its funding: send an "
            f"`{IDEMPOTENCY_HEADER}` (a UUID) so that a retry cannot create them twice.")


def plan_campaign(*, session: Session, idempotency: Idempotency, calendar: ServiceClient,
                  budget: ServiceClient, workers: WorkerPool, grace_seconds: float,
                  caller: Caller, plan_in: CampaignPlanCreate, fail_step: Step | None = None,
                  progress: solving.OnProgress | None = None,
                  cancelled: solving.IsCancelled | None = None) -> CampaignPlanPublic:
    """Plan a campaign across the services; with `commit`, create it all or nothing.

    Cancelled (`cancelled()` true) after the what-if, a commit creates nothing: the what-if's
    answer comes back uncommitted."""
    require_key(plan_in, idempotency)
    answer, planned = whatif(session=session, calendar=calendar, budget=budget, workers=workers,
                             grace_seconds=grace_seconds, caller=caller, plan_in=plan_in,
                             progress=progress, cancelled=cancelled)
    if not plan_in.commit or (cancelled is not None and cancelled()):
        return answer
    assert idempotency.key is not None
    steps = _Steps(session=session, calendar=calendar, budget=budget, budget_id=plan_in.budget_id)
    step: Step = "campaign"
    try:
        steps.reached.append(step)
        response = calendar.request("POST", "/api/v1/calendar/campaigns",
                                    json=_campaign_body(plan_in, caller),
                                    headers={IDEMPOTENCY_HEADER: _derived_key(idempotency.key)})
        if response.status_code not in (200, 201):
            raise refused(service="calendar", what="Creating the campaign", response=response)
        created: dict[str, Any] = response.json()
        steps.campaign_id, steps.campaign_version = created["id"], created.get("version")
        _inject(step, fail_step)

        step = "tasks"
        steps.reached.append(step)
        try:
            stage_campaign_tasks(session, created)
            session.commit()
        except SQLAlchemyError as error:
            logger.error("could not store the tasks of campaign %s: %s", created["id"], error)
            raise ServiceUnavailable("The planner's database could not store the campaign's "
                                     "tasks; try again shortly.") from None
        _inject(step, fail_step)

        step = "funding"
        steps.reached.append(step)
        response = budget.request(
            "PUT", f"/api/v1/budget/budgets/{quote(plan_in.budget_id, safe='')}/campaigns/"
            f"{quote(created['id'], safe='')}",
            json={"lines": [{"channel_id": line.channel_id, "amount": str(line.amount)}
                            for line in answer.funding.lines if line.amount > 0]}
            | ({"phase_weights": {k: str(v) for k, v in plan_in.phase_weights.items()}}
               if plan_in.phase_weights is not None else {}))
        if response.status_code not in (200, 201):
            raise refused(service="budget", what="Funding the campaign", response=response)
        funded = FundingView.model_validate(response.json())
        _inject(step, fail_step)
    except Problem as cause:
        session.rollback()
        # Before the calendar named the campaign there is nothing to undo: a retry with the
        # same key reaches the same campaign through the derived key.
        left = steps.undo() if steps.campaign_id else []
        failure = _failed(cause, step, steps.campaign_id, left)
        if steps.campaign_id and not left:
            # The calendar would replay the deleted campaign to the derived key: a retry with
            # this key gets this answer, and a new key plans afresh.
            idempotency.record(session, failure.body(), status_code=failure.status)
            session.commit()
        raise failure from None
    committed = answer.model_copy(update={
        "committed": True, "campaign": campaign_view(created),
        "work": _renamed(answer.work, planned, created), "funded": funded})
    idempotency.record(session, committed)
    session.commit()
    return committed
