"""A tiny service with two long POSTs, wired to shared/jobs.py as a real service would be.

`POST /api/v1/jobtest/solve` is a what-if (200, stores nothing; admin, planner, finance);
`POST /api/v1/jobtest/plans` creates a plan (201, Idempotency-Key; admin, planner). Both accept
`Prefer: respond-async`. The "solver" is a fake that adds values one step at a time, reporting
the sum so far as its incumbent and the total as its bound, and honours `cancelled()`; `hold`
makes it wait after its first step until the test releases it, so tests see states, not times.
"""
import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import Field
from sqlalchemy import Column, Engine, MetaData, String, Table, insert
from sqlmodel import Session

from shared.db import WriteSessionDep, create_db_engine, service_registry, write_engine
from shared.errors import install_error_handlers, invalid_fields
from shared.idempotency import (
    Idempotency,
    idempotency_dependency,
    idempotency_table,
    install_replay_handler,
)
from shared.ids import new_id
from shared.internal_auth import Caller, InternalAuthMiddleware, require_roles
from shared.jobs import (
    ASYNC_RESPONSES,
    JobContext,
    JobKind,
    JobQueue,
    JobRunner,
    PreferAsyncDep,
    Work,
    job_table,
)
from shared.requests import install_request_id
from shared.settings import DatabaseSettings
from shared.types import Money, StrictModel
from tests.conftest import TEST_SECRET

SERVICE = "jobtest"
WHATIF_ROLES = ("admin", "planner", "finance")
PLANNER_ROLES = ("admin", "planner")

metadata: MetaData = service_registry().metadata
jobs = job_table(metadata)
records = idempotency_table(metadata)
plans = Table("plan", metadata, Column("id", String(100), primary_key=True),
              Column("total", String(40), nullable=False))


@dataclass
class Controls:
    """The test's hands on the fake solver."""
    release: threading.Event = field(default_factory=threading.Event)
    cancel_sent: threading.Event = field(default_factory=threading.Event)
    gave_up: threading.Event = field(default_factory=threading.Event)
    # Slices of 20 ms the fake keeps holding once a cancel was sent (50: one second) before it
    # gives up waiting (`gave_up`) and carries on with the solve.
    slices_after_cancel: int = 50

    def hold(self, cancelled: Callable[[], bool]) -> None:
        waited = 0
        while not self.release.wait(0.02) and not cancelled():
            if self.cancel_sent.is_set():
                waited += 1
                if waited >= self.slices_after_cancel:
                    self.gave_up.set()
                    return


class SolveIn(StrictModel):
    values: list[Money] = Field(min_length=1, max_length=50)
    hold: bool = False


class SolveOut(StrictModel):
    total: Money
    picked: int
    status: Literal["optimal", "stopped"]


class PlanOut(StrictModel):
    id: str
    total: Money
    picked: int
    status: Literal["optimal", "stopped"]


def fake_solve(request: SolveIn, *, controls: Controls, progress: Callable[[dict], None],
               cancelled: Callable[[], bool]) -> SolveOut:
    """Add the values one by one; stopped early, answer the sum so far."""
    negative = [(f"values[{i}]", "must be at least 0") for i, v in enumerate(request.values)
                if v < 0]
    if negative:
        raise invalid_fields(negative)
    bound, best = sum(request.values, Decimal(0)), Decimal(0)
    for picked, value in enumerate(request.values):
        if cancelled():
            return SolveOut(total=best, picked=picked, status="stopped")
        best += value
        progress({"incumbent": best, "bound": bound, "gap": (bound - best) / bound if bound else 0})
        if request.hold and picked == 0:
            controls.hold(cancelled)
    return SolveOut(total=best, picked=len(request.values), status="optimal")


def create_plan(*, session: Session, idempotency: Idempotency, plan_in: SolveIn,
                controls: Controls, progress: Callable[[dict], None] = lambda _values: None,
                cancelled: Callable[[], bool] = lambda: False) -> PlanOut:
    """Solve and keep the plan, with the key's record, in one transaction."""
    answer = fake_solve(plan_in, controls=controls, progress=progress, cancelled=cancelled)
    plan = PlanOut(id=new_id("plan"), **answer.model_dump())
    session.execute(insert(plans).values(id=plan.id, total=str(plan.total)))
    idempotency.record(session, plan)
    session.commit()
    return plan


def work(engine: Engine, controls: Controls) -> dict[str, Work]:
    """The job kinds' callables: the same use cases the synchronous routes call."""
    def solve(context: JobContext) -> SolveOut:
        return fake_solve(SolveIn.model_validate(context.body), controls=controls,
                          progress=context.progress, cancelled=context.cancelled)

    def plan(context: JobContext) -> PlanOut:
        assert context.idempotency is not None
        with Session(write_engine(engine)) as session:
            return create_plan(session=session, idempotency=context.idempotency,
                               plan_in=SolveIn.model_validate(context.body), controls=controls,
                               progress=context.progress, cancelled=context.cancelled)

    return {"solve": solve, "plan": plan}


def queue() -> JobQueue:
    return JobQueue(service=SERVICE, table=jobs, idempotency=records,
                    kinds=[JobKind("solve", WHATIF_ROLES), JobKind("plan", PLANNER_ROLES)])


def create_app(database_url: str, controls: Controls, *, run_jobs: bool = True,
               **runner_options: Any) -> FastAPI:
    settings = DatabaseSettings(database_url=database_url, port=1)
    job_queue = queue()
    router = APIRouter(prefix=f"/api/v1/{SERVICE}")
    idempotency_dep = Annotated[Idempotency, idempotency_dependency(records)]
    whatif_dep = Annotated[Caller, require_roles(*WHATIF_ROLES)]
    planner_dep = Annotated[Caller, require_roles(*PLANNER_ROLES)]

    @router.post("/solve", response_model=SolveOut, responses=ASYNC_RESPONSES)
    def solve(body: SolveIn, session: WriteSessionDep, caller: whatif_dep,
              respond_async: PreferAsyncDep) -> Any:
        """Add values (a what-if)."""
        if respond_async:
            return job_queue.submit(session, kind="solve", caller=caller, body=body)
        return fake_solve(body, controls=controls, progress=lambda _values: None,
                          cancelled=lambda: False)

    @router.post("/plans", status_code=201, response_model=PlanOut, responses=ASYNC_RESPONSES)
    def make_plan(body: SolveIn, session: WriteSessionDep, idempotency: idempotency_dep,
                  caller: planner_dep, respond_async: PreferAsyncDep) -> Any:
        """Make and keep a plan."""
        if respond_async:
            return job_queue.submit(session, kind="plan", caller=caller, body=body,
                                    idempotency=idempotency)
        return create_plan(session=session, idempotency=idempotency, plan_in=body,
                           controls=controls)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine = create_db_engine(settings)
        metadata.create_all(engine)
        app.state.runner = JobRunner(job_queue, engine=engine, work=work(engine, controls),
                                     **runner_options)
        task = asyncio.create_task(app.state.runner.run()) if run_jobs else None
        yield
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.queue = job_queue
    install_error_handlers(app)
    install_replay_handler(app)
    app.add_middleware(InternalAuthMiddleware, secret=TEST_SECRET.encode())
    install_request_id(app)
    app.include_router(router)
    app.include_router(job_queue.router())
    return app
