from pathlib import Path

from fastapi import FastAPI

from services.calendar.api import router
from services.calendar.config import CalendarSettings
from shared.service_app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CalendarSettings | None = None) -> FastAPI:
    """Build the calendar service app (uvicorn calls this as a factory)."""
    return create_service_app(name="calendar", settings=settings or CalendarSettings(),
                              migrations=MIGRATIONS,
                              description="Campaigns, phases, milestones and calendar feeds.",
                              routers=(router,))
