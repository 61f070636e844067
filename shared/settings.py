"""Settings every process shares; each process subclasses with its own env prefix."""
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Good enough on a laptop, refused anywhere else (see `_refuse_default_secret`).
DEV_INTERNAL_SECRET = "marketplan-development-only-internal-secret"

Environment = Literal["development", "test", "production"]
Port = Annotated[int, Field(ge=1, le=65535)]


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Shared by all processes, so read without the per-service prefix.
    environment: Environment = Field(default="development", validation_alias="MARKETPLAN_ENV")
    internal_secret: SecretStr = Field(
        default=SecretStr(DEV_INTERNAL_SECRET),
        validation_alias="MARKETPLAN_INTERNAL_SECRET",
        min_length=32,
    )
    log_level: str = Field(default="INFO", validation_alias="MARKETPLAN_LOG_LEVEL")

    host: str = "127.0.0.1"
    port: Port

    @model_validator(mode="after")
    def _refuse_default_secret(self):
        if self.environment == "production" and (
            self.internal_secret.get_secret_value() == DEV_INTERNAL_SECRET
        ):
            raise ValueError(
                "MARKETPLAN_INTERNAL_SECRET must be set to a private value of at least 32 "
                "characters when MARKETPLAN_ENV=production"
            )
        return self


class DatabaseSettings(BaseServiceSettings):
    database_url: str
    # Seconds a writer waits for a SQLite lock before giving up.
    sqlite_busy_timeout: float = 30.0
    db_pool_size: int = 10
