from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, Port


class CalendarSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALENDAR_")

    port: Port = 8001
    database_url: str = "sqlite:///var/calendar.db"
    # The event feed keeps this many days of changes; a consumer that fell further behind
    # gets a 410 and starts over from the current state.
    event_retention_days: int = Field(30, ge=1, le=3650)
    event_prune_interval_seconds: float = Field(3600, gt=0)
