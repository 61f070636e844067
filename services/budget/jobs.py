"""The budget's long solves as durable jobs (`shared.jobs`): their kinds, who may see them, and
the work a `JobRunner` does for each — the very use cases the synchronous routes call, so a
job's `result` is exactly the synchronous answer.

A job's solve runs in the service's worker pool like a synchronous one; its progress is the
optimizer's own (incumbent, bound, gap). A cancel stops the solve through the pool: the
optimizer hears the stop (`optimizer.solve(..., stop=)`) and answers its best plan so far
(`feasible`, with its gap), and the job ends `cancelled` with that plan as its result; a cancel
that comes before any plan was found ends it with neither result nor error.
"""
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from services.budget import whatif
from services.budget.ledger import funding_whatif, plans
from services.budget.ledger.tables import idempotency_record, job
from services.budget.whatif import OptimizationRequest
from shared.db import write_engine
from shared.jobs import JobCancelled, JobContext, JobKind, JobQueue, Work
from shared.workers import WorkerPool

OPTIMIZE, PLAN, CAMPAIGN_FUNDING = "optimize", "plan", "campaign_funding"
# The roles each call's route admits (gateway/policy.py): only they may see its jobs.
WHATIF_ROLES = ("admin", "planner", "finance")
PLANNER_ROLES = ("admin", "planner")

JOBS = JobQueue(service="budget", table=job, idempotency=idempotency_record,
                kinds=[JobKind(OPTIMIZE, WHATIF_ROLES), JobKind(PLAN, PLANNER_ROLES),
                       JobKind(CAMPAIGN_FUNDING, WHATIF_ROLES)])


Answer = TypeVar("Answer")


def _until_cancelled(context: JobContext, solve: Callable[[], Answer]) -> Answer:
    """`solve()`; stopped by a cancel before the optimizer found any plan, it is a cancel, not
    the time limit's "no plan" problem."""
    try:
        return solve()
    except whatif.SolveTimeLimit:
        if context.cancelled():
            raise JobCancelled from None
        raise


def work(*, engine: Engine, workers: WorkerPool, grace_seconds: float) -> dict[str, Work]:
    """The runner's callable for each job kind."""
    def optimize(context: JobContext) -> whatif.OptimizationPublic:
        return _until_cancelled(context, lambda: whatif.optimize_budget(
            request=OptimizationRequest.model_validate(context.body), workers=workers,
            grace_seconds=grace_seconds, progress=context.progress,
            cancelled=context.cancelled))

    def plan(context: JobContext) -> plans.PlanPublic:
        # The job was queued by the synchronous route's own checks: it always has its record.
        idempotency = context.idempotency
        assert idempotency is not None
        with Session(write_engine(engine)) as session:
            return _until_cancelled(context, lambda: plans.create_plan(
                session=session, idempotency=idempotency,
                budget_id=context.params["budget_id"],
                plan_in=plans.PlanCreate.model_validate(context.body), workers=workers,
                grace_seconds=grace_seconds, caller=context.caller,
                progress=context.progress, cancelled=context.cancelled))

    def campaign_funding(context: JobContext) -> funding_whatif.FundingOptimizationPublic:
        with Session(engine) as session:
            return _until_cancelled(context, lambda: funding_whatif.optimize_funding(
                session=session, budget_id=context.params["budget_id"],
                request=funding_whatif.FundingOptimizeRequest.model_validate(context.body),
                workers=workers, grace_seconds=grace_seconds, progress=context.progress,
                cancelled=context.cancelled))

    return {OPTIMIZE: optimize, PLAN: plan,
            CAMPAIGN_FUNDING: campaign_funding}
