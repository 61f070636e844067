import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI

from services.calendar.answers import Answers
from services.calendar.api import router
from services.calendar.config import CalendarSettings
from services.calendar.models import internal_nonce
from services.calendar.outbox import prune_forever
from shared.service_app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CalendarSettings | None = None) -> FastAPI:
    """Build the calendar service app (uvicorn calls this as a factory)."""
    settings = settings or CalendarSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        app.state.answers = Answers()
        task = asyncio.create_task(prune_forever(
            app.state.engine, retention_days=settings.event_retention_days,
            interval_seconds=settings.event_prune_interval_seconds))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    return create_service_app(name="calendar", settings=settings, migrations=MIGRATIONS,
                              description="Campaigns, phases, milestones, calendar feeds and "
                                          "the event feed of every change.",
                              nonces=internal_nonce, routers=(router,), resources=resources)
