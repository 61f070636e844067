from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, Port


class CalendarSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALENDAR_")

    port: Port = 8001
    database_url: str = "sqlite:///var/calendar.db"
