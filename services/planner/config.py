from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, Port


class PlannerSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLANNER_")

    port: Port = 8003
    database_url: str = "sqlite:///var/planner.db"
