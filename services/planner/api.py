from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from services.planner import campaign_plans, overview, resources, schedules, solving, tasks
from services.planner.config import PlannerSettings
from services.planner.jobs import CAMPAIGN_PLAN, JOBS, REPLAN, SCHEDULE, SOLVE
from services.planner.models import idempotency_record
from services.planner.propagation import PlannerConsumer
from shared.client import ServiceClient
from shared.db import SessionDep, WriteSessionDep
from shared.events import SyncStatus
from shared.idempotency import Idempotency, idempotency_dependency
from shared.internal_auth import Caller, require_roles
from shared.jobs import ASYNC_RESPONSES, PreferAsyncDep
from shared.pagination import CursorQuery, LimitQuery, Page
from shared.types import Identifier
from shared.versioning import version_etag
from shared.workers import WorkerPool

router = APIRouter(prefix="/api/v1/planner", tags=["planner"])


def _workers(request: Request) -> WorkerPool:
    workers: WorkerPool = request.app.state.workers
    return workers


def _calendar(request: Request) -> ServiceClient:
    calendar: ServiceClient = request.app.state.calendar
    return calendar


def _budget(request: Request) -> ServiceClient:
    budget: ServiceClient = request.app.state.budget
    return budget


def _settings(request: Request) -> PlannerSettings:
    settings: PlannerSettings = request.app.state.settings
    return settings


def _consumer(request: Request) -> PlannerConsumer:
    consumer: PlannerConsumer = request.app.state.consumer
    return consumer


def _grace(request: Request) -> float:
    grace: float = request.app.state.settings.solve_grace_seconds
    return grace


WorkersDep = Annotated[WorkerPool, Depends(_workers)]
CalendarDep = Annotated[ServiceClient, Depends(_calendar)]
BudgetDep = Annotated[ServiceClient, Depends(_budget)]
SettingsDep = Annotated[PlannerSettings, Depends(_settings)]
GraceDep = Annotated[float, Depends(_grace)]
ConsumerDep = Annotated[PlannerConsumer, Depends(_consumer)]
PlannerDep = Annotated[Caller, require_roles("admin", "planner")]
IdempotencyDep = Annotated[Idempotency, idempotency_dependency(idempotency_record)]
IfMatch = Annotated[str | None, Header(description="The ETag of the version you changed.")]


@router.post("/solve", response_model=solving.SchedulePublic, responses=ASYNC_RESPONSES)
def solve_schedule(body: solving.SolveRequest, session: WriteSessionDep, workers: WorkersDep,
                   grace: GraceDep, caller: PlannerDep, respond_async: PreferAsyncDep) -> Any:
    """Schedule tasks on resources without overload (a what-if: nothing is stored). A task no
    resource can do, a cycle of predecessors or a task longer than the horizon is a 422."""
    # The what-if stores nothing; queuing its job is the one write (`session`), and a session
    # opens no transaction until used.
    if respond_async:
        return JOBS.submit(session, kind=SOLVE, caller=caller, body=body)
    return solving.solve(problem=solving.to_problem(body), workers=workers, grace_seconds=grace)


@router.post("/resources", status_code=201, response_model=resources.ResourcePublic)
def create_resource(body: resources.ResourceCreate, session: WriteSessionDep,
                    idempotency: IdempotencyDep, caller: PlannerDep) -> resources.ResourcePublic:
    """Add a team or person with skills, hours per day, market holidays and time off."""
    return resources.create_resource(session=session, idempotency=idempotency, resource_in=body)


@router.get("/resources", response_model=list[resources.ResourcePublic])
def read_resources(session: SessionDep) -> list[resources.ResourcePublic]:
    """List resources in the order they were added."""
    return resources.list_resources(session=session)


@router.patch("/resources/{resource_id}", response_model=resources.ResourcePublic)
def update_resource(resource_id: str, body: resources.ResourceUpdate, session: WriteSessionDep,
                    response: Response, caller: PlannerDep,
                    if_match: IfMatch = None) -> resources.ResourcePublic:
    """Change a resource's capacity, skills or days off (`If-Match` required)."""
    public = resources.update_resource(session=session, resource_id=resource_id, update=body,
                                       if_match=if_match)
    response.headers["ETag"] = version_etag(public.version)
    return public


@router.get("/task-templates", response_model=list[resources.TaskTemplatePublic])
def read_task_templates(session: SessionDep) -> list[resources.TaskTemplatePublic]:
    """List the work each milestone kind needs before it (the playbook's defaults unless edited)."""
    return resources.list_templates(session=session)


@router.put("/task-templates/{milestone_kind}", response_model=resources.TaskTemplatePublic)
def put_task_template(milestone_kind: str, body: resources.TaskTemplateUpdate,
                      session: WriteSessionDep, caller: PlannerDep) -> resources.TaskTemplatePublic:
    """Replace the work a milestone kind needs."""
    return resources.put_template(session=session, kind=milestone_kind, template_in=body)


@router.post("/tasks", status_code=201, response_model=tasks.TaskPublic)
def create_task(body: tasks.TaskCreate, session: WriteSessionDep, idempotency: IdempotencyDep,
                caller: PlannerDep) -> tasks.TaskPublic:
    """Add a task by hand."""
    return tasks.create_task(session=session, idempotency=idempotency, task_in=body)


# Typed like the calendar's ids, so a malformed one is this request's 422, not the calendar's.
CampaignId = Annotated[Identifier, Path()]
CampaignFilter = Annotated[Identifier | None, Query(description="Only this campaign's.")]


@router.get("/tasks", response_model=list[tasks.TaskPublic])
def read_tasks(session: SessionDep,
               campaign_id: CampaignFilter = None) -> list[tasks.TaskPublic]:
    """List tasks, optionally of one campaign."""
    return tasks.list_tasks(session=session, campaign_id=campaign_id)


@router.post("/campaigns/{campaign_id}/tasks", response_model=list[tasks.TaskPublic])
def generate_tasks(campaign_id: CampaignId, session: WriteSessionDep, calendar: CalendarDep,
                   caller: PlannerDep) -> list[tasks.TaskPublic]:
    """Make or refresh a campaign's tasks from its milestones (read from the calendar service)
    and the task templates; running it again after milestones moved updates the tasks."""
    return tasks.generate_tasks(session=session, calendar=calendar, campaign_id=campaign_id)


@router.post("/schedules", status_code=201, response_model=schedules.StoredSchedulePublic,
             responses=ASYNC_RESPONSES)
def create_schedule(body: schedules.ScheduleCreate, session: WriteSessionDep,
                    idempotency: IdempotencyDep, workers: WorkersDep, grace: GraceDep,
                    caller: PlannerDep, respond_async: PreferAsyncDep) -> Any:
    """Schedule the stored tasks (all campaigns or the chosen ones) and keep the schedule."""
    if respond_async:
        # An unknown campaign is a 422 now, not a failed job later.
        schedules.check_campaigns(session, body.campaign_ids)
        return JOBS.submit(session, kind=SCHEDULE, caller=caller, body=body,
                           idempotency=idempotency)
    return schedules.create_schedule(session=session, idempotency=idempotency, schedule_in=body,
                                     workers=workers, grace_seconds=grace, caller=caller)


@router.get("/schedules/{schedule_id}", response_model=schedules.StoredSchedulePublic)
def read_schedule(schedule_id: str, session: SessionDep) -> schedules.StoredSchedulePublic:
    """Read a stored schedule."""
    return schedules.read_schedule(session=session, schedule_id=schedule_id)


@router.post("/schedules/{schedule_id}/replan", status_code=201,
             response_model=schedules.StoredSchedulePublic, responses=ASYNC_RESPONSES)
def replan_schedule(schedule_id: str, body: schedules.ReplanCreate, session: WriteSessionDep,
                    idempotency: IdempotencyDep, workers: WorkersDep, grace: GraceDep,
                    caller: PlannerDep, respond_async: PreferAsyncDep) -> Any:
    """Schedule again after milestones or capacity changed: started work stays, as few other
    tasks as possible move (`schedule.moved` says how many)."""
    if respond_async:
        # A schedule that is not there is a 404 now, not a failed job later.
        schedules.read_schedule(session=session, schedule_id=schedule_id)
        return JOBS.submit(session, kind=REPLAN, caller=caller, body=body,
                           params={"schedule_id": schedule_id}, idempotency=idempotency)
    return schedules.replan(session=session, idempotency=idempotency, schedule_id=schedule_id,
                            replan_in=body, workers=workers, grace_seconds=grace, caller=caller)


@router.get("/campaigns/{campaign_id}/overview", response_model=overview.CampaignOverview)
def read_campaign_overview(campaign_id: CampaignId, session: SessionDep, calendar: CalendarDep,
                           budget: BudgetDep, settings: SettingsDep) -> overview.CampaignOverview:
    """Show a campaign's dates (calendar), money (budget) and work (its tasks in their newest
    schedule) in one answer; a service that cannot answer in time is listed in `partial`."""
    return overview.read_overview(session=session, calendar=calendar, budget=budget,
                                  campaign_id=campaign_id,
                                  timeout=settings.overview_timeout_seconds)


CAMPAIGN_PLAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "Committed: the campaign, its tasks and its funding were created.",
          "model": campaign_plans.CampaignPlanPublic},
    **ASYNC_RESPONSES}


@router.post("/campaign-plans", response_model=campaign_plans.CampaignPlanPublic,
             responses=CAMPAIGN_PLAN_RESPONSES)
def create_campaign_plan(body: campaign_plans.CampaignPlanCreate, response: Response,
                         session: WriteSessionDep, idempotency: IdempotencyDep,
                         calendar: CalendarDep, budget: BudgetDep, workers: WorkersDep,
                         grace: GraceDep, settings: SettingsDep, caller: PlannerDep,
                         respond_async: PreferAsyncDep) -> Any:
    """Plan a campaign across the services: its milestones and phases, its tasks scheduled with
    the work already planned, its funding optimised (a what-if, 200). With `"commit": true`
    (and an `Idempotency-Key`), create its campaign, tasks and funding all or nothing (201)."""
    if respond_async:
        campaign_plans.require_key(body, idempotency)
        return JOBS.submit(session, kind=CAMPAIGN_PLAN, caller=caller, body=body,
                           idempotency=idempotency)
    answer = campaign_plans.plan_campaign(
        session=session, idempotency=idempotency, calendar=calendar, budget=budget,
        workers=workers, grace_seconds=grace, caller=caller, plan_in=body,
        fail_step=settings.fail_step)
    if answer.committed:
        response.status_code = 201
    return answer


@router.get("/sync", response_model=SyncStatus)
def read_sync(consumer: ConsumerDep) -> SyncStatus:
    """Show how far the planner has applied the calendar's events: cursor, backlog, last error."""
    return consumer.status()


@router.get("/tasks/{task_id}", response_model=tasks.TaskPublic)
def read_task(task_id: str, session: SessionDep) -> tasks.TaskPublic:
    """Read a task, with `warnings` saying why no schedule can place it, if so."""
    return tasks.read_task(session=session, task_id=task_id)


@router.patch("/tasks/{task_id}", response_model=tasks.TaskPublic)
def update_task(task_id: str, body: tasks.TaskUpdate, session: WriteSessionDep,
                caller: PlannerDep) -> tasks.TaskPublic:
    """Change a task; a generated task's dates follow its milestone and its other terms its
    template (409): only its pin (`resource_id`, `start`) changes here."""
    return tasks.update_task(session=session, task_id=task_id, update=body)


@router.delete("/tasks/{task_id}", status_code=204)
def delete_task(task_id: str, session: WriteSessionDep, caller: PlannerDep) -> None:
    """Delete a hand-made task that has not started (409 otherwise)."""
    tasks.delete_task(session=session, task_id=task_id)


@router.get("/resources/{resource_id}", response_model=resources.ResourcePublic)
def read_resource(resource_id: str, session: SessionDep,
                  response: Response) -> resources.ResourcePublic:
    """Read a resource; its `ETag` is what a PATCH sends as `If-Match`."""
    public = resources.read_resource(session=session, resource_id=resource_id)
    response.headers["ETag"] = version_etag(public.version)
    return public


@router.delete("/resources/{resource_id}", status_code=204)
def delete_resource(resource_id: str, session: WriteSessionDep, caller: PlannerDep) -> None:
    """Delete a resource no started task holds (409 otherwise); its unstarted pins are lifted."""
    resources.delete_resource(session=session, resource_id=resource_id)


@router.get("/schedules", response_model=Page[resources.StoredScheduleSummary])
def read_schedules(session: SessionDep, limit: LimitQuery = 50,
                   cursor: CursorQuery = None) -> Page[resources.StoredScheduleSummary]:
    """List stored schedules, newest first, each with whether it is stale."""
    return resources.list_schedules(session=session, limit=limit, cursor=cursor)


@router.get("/task-templates/{milestone_kind}/preview", response_model=list[tasks.TaskPreview])
def preview_task_template(milestone_kind: str, session: SessionDep,
                          due_date: Annotated[date, Query(description="The milestone's date.")],
                          market: Annotated[resources.Market, Query(
                              description="Its working days (ISO country, e.g. US).")]
                          ) -> list[tasks.TaskPreview]:
    """List the tasks the template would make for a milestone of this kind on `due_date`."""
    return tasks.preview_template(session=session, kind=milestone_kind, due_date=due_date,
                                  market=market)


@router.get("/skills", response_model=list[resources.SkillPublic])
def read_skills(session: SessionDep) -> list[resources.SkillPublic]:
    """List the skills the resources have and the task templates need."""
    return resources.list_skills(session=session)
