from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, Port


class PlannerSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLANNER_")

    port: Port = 8003
    database_url: str = "sqlite:///var/planner.db"
    # Processes that run schedule solves (CP-SAT), each one solve at a time.
    solver_workers: int = Field(2, ge=1, le=64)
    # A solve is stopped this long after its own time limit.
    solve_grace_seconds: float = Field(30, gt=0)
    # Tasks are generated from the milestones this calendar service reports.
    calendar_url: str = "http://127.0.0.1:8001"
