from services.budget.models import BudgetModel
from shared.migrations import run_migrations

run_migrations(BudgetModel.metadata)
