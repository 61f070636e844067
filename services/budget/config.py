from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, Port


class BudgetSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUDGET_")

    port: Port = 8002
    database_url: str = "sqlite:///var/budget.db"
