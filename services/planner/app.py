from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.planner.api import router
from services.planner.config import PlannerSettings
from shared.client import ServiceClient
from shared.service_app import create_service_app
from shared.workers import WorkerPool

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: PlannerSettings | None = None) -> FastAPI:
    """Build the planner service app (uvicorn calls this as a factory)."""
    settings = settings or PlannerSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        app.state.workers = WorkerPool(settings.solver_workers,
                                       preload="services.planner.engine.cp_sat")
        app.state.workers.start()
        app.state.calendar = ServiceClient(
            name="calendar", base_url=settings.calendar_url, caller_service="planner",
            secret=settings.internal_secret.get_secret_value().encode())
        yield
        app.state.calendar.close()
        app.state.workers.close()

    return create_service_app(name="planner", settings=settings, migrations=MIGRATIONS,
                              description="Teams, tasks and resource scheduling across campaigns.",
                              routers=(router,), resources=resources)
