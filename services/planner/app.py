import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI

from services.planner import jobs
from services.planner.api import router
from services.planner.config import PlannerSettings
from services.planner.models import internal_nonce
from services.planner.propagation import PlannerConsumer
from shared.client import ServiceClient
from shared.jobs import JobRunner
from shared.service_app import create_service_app
from shared.workers import WorkerPool

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: PlannerSettings | None = None) -> FastAPI:
    """Build the planner service app (uvicorn calls this as a factory)."""
    settings = settings or PlannerSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        # The solve function's own module too: unpickling it on a first call imported the
        # web stack in the worker, out of that solve's deadline.
        app.state.workers = WorkerPool(
            settings.solver_workers,
            preload=("services.planner.engine.cp_sat", "services.planner.solving"))
        app.state.workers.start()
        app.state.calendar = ServiceClient(
            name="calendar", base_url=settings.calendar_url, caller_service="planner",
            secret=settings.internal_secret.get_secret_value().encode())
        app.state.budget = ServiceClient(
            name="budget", base_url=settings.budget_url, caller_service="planner",
            secret=settings.internal_secret.get_secret_value().encode())
        app.state.consumer = PlannerConsumer(
            engine=app.state.engine, calendar=app.state.calendar, workers=app.state.workers,
            grace_seconds=settings.solve_grace_seconds, auto_replan=settings.auto_replan,
            poll_seconds=settings.events_poll_seconds,
            lease_seconds=settings.events_lease_seconds)
        polling = (asyncio.create_task(app.state.consumer.run())
                   if settings.events_poll_seconds > 0 else None)
        # One job per solver worker: a job holds one for its whole search.
        app.state.runner = JobRunner(
            jobs.JOBS, engine=app.state.engine, concurrency=settings.solver_workers,
            lease_seconds=settings.job_lease_seconds,
            work=jobs.work(engine=app.state.engine, workers=app.state.workers,
                           grace_seconds=settings.solve_grace_seconds,
                           calendar=app.state.calendar, budget=app.state.budget,
                           fail_step=settings.fail_step))
        running = asyncio.create_task(app.state.runner.run()) if settings.run_jobs else None
        yield
        if running is not None:
            # Before the worker pool closes: the runner hands its running jobs back to the
            # queue (another process, or this one restarted, runs them), then the pool's
            # closing ends their searches.
            running.cancel()
            with suppress(asyncio.CancelledError):
                await running
        if polling is not None:
            polling.cancel()
            with suppress(asyncio.CancelledError):
                await polling
        app.state.calendar.close()
        app.state.budget.close()
        app.state.workers.close()

    return create_service_app(name="planner", settings=settings, migrations=MIGRATIONS,
                              description="Teams, tasks and resource scheduling across campaigns.",
                              nonces=internal_nonce, routers=(router, jobs.JOBS.router()),
                              resources=resources)
