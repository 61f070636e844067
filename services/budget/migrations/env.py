from services.budget.ledger.tables import BudgetModel
from shared.migrations import run_migrations

run_migrations(BudgetModel.metadata)
