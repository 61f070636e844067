from services.planner.models import PlannerModel
from shared.migrations import run_migrations

run_migrations(PlannerModel.metadata)
