import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from services.budget import jobs
from services.budget.api import router
from services.budget.config import BudgetSettings
from services.budget.ledger.kept import KeptAnswers
from services.budget.ledger.tables import internal_nonce
from services.budget.propagation import BudgetConsumer
from shared.client import ServiceClient
from shared.jobs import JobRunner
from shared.service_app import create_service_app
from shared.workers import WorkerPool

MIGRATIONS = Path(__file__).parent / "migrations"
logger = logging.getLogger("marketplan.budget")


def create_app(settings: BudgetSettings | None = None) -> FastAPI:
    """Build the budget service app (uvicorn calls this as a factory)."""
    settings = settings or BudgetSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        app.state.workers = WorkerPool(settings.solver_workers, preload=("services.budget.optimizer",))
        app.state.workers.start()
        app.state.kept = KeptAnswers(settings.kept_answers_bytes)
        app.state.calendar = ServiceClient(
            name="calendar", base_url=settings.calendar_url, caller_service="budget",
            secret=settings.internal_secret.get_secret_value().encode())
        app.state.consumer = BudgetConsumer(engine=app.state.engine, calendar=app.state.calendar,
                                            poll_seconds=settings.events_poll_seconds,
                                            lease_seconds=settings.events_lease_seconds)
        polling = (asyncio.create_task(app.state.consumer.run())
                   if settings.events_poll_seconds > 0 else None)
        # One job per solver worker: a job holds one for its whole solve.
        app.state.runner = JobRunner(
            jobs.JOBS, engine=app.state.engine, concurrency=settings.solver_workers,
            lease_seconds=settings.job_lease_seconds,
            work=jobs.work(engine=app.state.engine, workers=app.state.workers,
                           grace_seconds=settings.solve_grace_seconds))
        running = asyncio.create_task(app.state.runner.run()) if settings.run_jobs else None
        yield
        if running is not None:
            # Before the worker pool closes: the runner hands its running jobs back to the
            # queue (another process, or this one restarted, runs them), then the pool's
            # closing ends their solves.
            running.cancel()
            with suppress(asyncio.CancelledError):
                await running
        if polling is not None:
            polling.cancel()
            try:
                with suppress(asyncio.CancelledError):
                    await polling
            except SQLAlchemyError as error:
                # The consumer gives its lease up as it stops; with the database out of reach
                # the lease lapses by itself (shared/events.py), and the stop goes on.
                logger.warning("the event consumer's lease was not released: %s", error)
        app.state.calendar.close()
        app.state.workers.close()

    return create_service_app(name="budget", settings=settings, migrations=MIGRATIONS,
                              description="Budgets, channels, the allocation optimizer, the "
                                          "emergency reserve and actuals.",
                              nonces=internal_nonce, routers=(router, jobs.JOBS.router()),
                              resources=resources)
