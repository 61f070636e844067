"""The planner's long solves as durable jobs (`shared.jobs`): their kinds, who may see them, and
the work a `JobRunner` does for each — the very use cases the synchronous routes call, so a
job's `result` is exactly the synchronous answer.

A job's search runs in the service's worker pool like a synchronous one; its progress is
CP-SAT's own (incumbent, bound, gap: weighted lateness in working days). A cancel stops the
search through the pool: the engine returns its best schedule so far, which the job keeps as
its result (`cancelled`, with the schedule stored for the stored kinds); with none, the job
ends `cancelled` with no result.
"""

from sqlalchemy import Engine
from sqlmodel import Session

from services.planner import campaign_plans, schedules, solving
from services.planner.models import idempotency_record, job
from shared.client import ServiceClient
from shared.db import write_engine
from shared.idempotency import Idempotency
from shared.jobs import JobContext, JobKind, JobQueue, Work
from shared.workers import WorkerPool

SOLVE, SCHEDULE, REPLAN, CAMPAIGN_PLAN = "solve", "schedule", "replan", "campaign_plan"
# The roles each call's route admits (`PlannerDep`): only they may see its jobs.
ROLES = ("admin", "planner")

JOBS = JobQueue(service="planner", table=job, idempotency=idempotency_record,
                kinds=[JobKind(kind, ROLES) for kind in (SOLVE, SCHEDULE, REPLAN, CAMPAIGN_PLAN)])


def _idempotency(context: JobContext) -> Idempotency:
    # Every stored kind is queued through the synchronous route's own key checks: it always
    # has its record.
    assert context.idempotency is not None
    return context.idempotency


def work(*, engine: Engine, workers: WorkerPool, grace_seconds: float, calendar: ServiceClient,
         budget: ServiceClient, fail_step: campaign_plans.Step | None) -> dict[str, Work]:
    """The runner's callable for each job kind."""
    def solve(context: JobContext) -> solving.SchedulePublic:
        problem = solving.to_problem(solving.SolveRequest.model_validate(context.body))
        return solving.solve(problem=problem, workers=workers, grace_seconds=grace_seconds,
                             progress=context.progress, cancelled=context.cancelled)

    def schedule(context: JobContext) -> schedules.StoredSchedulePublic:
        with Session(write_engine(engine)) as session:
            return schedules.create_schedule(
                session=session, idempotency=_idempotency(context),
                schedule_in=schedules.ScheduleCreate.model_validate(context.body),
                workers=workers, grace_seconds=grace_seconds, caller=context.caller,
                progress=context.progress, cancelled=context.cancelled)

    def replan(context: JobContext) -> schedules.StoredSchedulePublic:
        with Session(write_engine(engine)) as session:
            return schedules.replan(
                session=session, idempotency=_idempotency(context),
                schedule_id=context.params["schedule_id"],
                replan_in=schedules.ReplanCreate.model_validate(context.body), workers=workers,
                grace_seconds=grace_seconds, caller=context.caller,
                progress=context.progress, cancelled=context.cancelled)

    def campaign_plan(context: JobContext) -> campaign_plans.CampaignPlanPublic:
        with Session(write_engine(engine)) as session:
            return campaign_plans.plan_campaign(
                session=session, idempotency=_idempotency(context), calendar=calendar,
                budget=budget, workers=workers, grace_seconds=grace_seconds,
                caller=context.caller,
                plan_in=campaign_plans.CampaignPlanCreate.model_validate(context.body),
                fail_step=fail_step, progress=context.progress, cancelled=context.cancelled)

    return {SOLVE: solve, SCHEDULE: schedule,
            REPLAN: replan, CAMPAIGN_PLAN: campaign_plan}
