from pathlib import Path

from fastapi import FastAPI

from services.budget.config import BudgetSettings
from shared.service_app import create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: BudgetSettings | None = None) -> FastAPI:
    """Build the budget service app (uvicorn calls this as a factory)."""
    return create_service_app(name="budget", settings=settings or BudgetSettings(),
                              migrations=MIGRATIONS,
                              description="Budgets, channels, the allocation optimizer, the emergency reserve and actuals.")
