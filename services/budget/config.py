from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, Port


class BudgetSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUDGET_")

    port: Port = 8002
    database_url: str = "sqlite:///var/budget.db"
    # Processes that run optimizer solves; each holds one solve at a time.
    solver_workers: int = Field(2, ge=1, le=64)
    # A solve is stopped this long after its own time limit (model building, answer assembly).
    solve_grace_seconds: float = Field(30, gt=0)
    # Campaigns linked to a budget are checked there.
    calendar_url: str = "http://127.0.0.1:8001"
    # Seconds between reads of the calendar's event feed; 0 turns the consumer off (the sync
    # status still answers), e.g. for a process that only serves requests.
    events_poll_seconds: float = Field(0.5, ge=0, le=300)
