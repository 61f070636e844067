from pathlib import Path

from fastapi import FastAPI

from services.planner.config import PlannerSettings
from shared.service_app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: PlannerSettings | None = None) -> FastAPI:
    """Build the planner service app (uvicorn calls this as a factory)."""
    return create_service_app(name="planner", settings=settings or PlannerSettings(),
                              migrations=MIGRATIONS,
                              description="Teams, tasks and resource scheduling across campaigns.")
