from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings


class PlannerSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLANNER_")

    port: int = 8003
    database_url: str = "sqlite:///var/planner.db"
