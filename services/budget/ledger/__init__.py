"""The budget ledger: what the service stores — budgets, channels, plan versions, the reserve's
draws, actuals, the audit log — with the use cases that change it and the API shapes that show
it. The optimizer (`services.budget.optimizer`) is pure and knows nothing of this."""
