from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.client import split_urls
from shared.settings import BaseServiceSettings, Port


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    port: Port = 8000
    # Each service's address, or several comma-separated (its processes, balanced over:
    # gateway/upstreams.py), e.g. `http://127.0.0.1:8002,http://127.0.0.1:8012`.
    calendar_url: str = "http://127.0.0.1:8001"
    budget_url: str = "http://127.0.0.1:8002"
    planner_url: str = "http://127.0.0.1:8003"
    keys_file: str = "var/api_keys.json"
    # Seconds for a whole upstream answer. Above the longest solve a client may ask for (60 s)
    # plus the solvers' margin and the worker grace, so a solve at its limit is answered by the
    # service (its best plan, or a solve-time-limit problem), never cut off here as a 504.
    upstream_timeout: float = Field(default=75.0, gt=0)
    upstream_connect_timeout: float = Field(default=2.0, gt=0)
    # Idle pooled connections are dropped before uvicorn's own keep-alive timeout (5 s) can
    # close them under a request.
    upstream_keepalive: float = Field(default=2.0, gt=0, lt=5)
    # Extra tries of a request that could not connect (it never left, so any method is safe).
    upstream_connect_retries: int = Field(default=2, ge=0, le=10)
    # Seconds between probes of each address's /readyz (a service with several addresses):
    # how soon a process that answers again is back in, and one that hangs is out.
    upstream_probe_interval: float = Field(default=0.5, gt=0, le=10)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # Per gateway process; see gateway/limits.py for the bounds with several processes.
    auth_failures_per_minute: int = Field(default=10, ge=1)
    solves_per_key: int = Field(default=2, ge=1)
    # /metrics answers admin keys only, unless the gateway's port is private to Prometheus.
    metrics_public: bool = False
    # Origins of browser frontends allowed to call the API (CORS), comma-separated, e.g.
    # `https://plan.example.com,http://localhost:5173`; none by default.
    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("calendar_url", "budget_url", "planner_url")
    @classmethod
    def _has_an_address(cls, value: str) -> str:
        if not split_urls(value):
            raise ValueError("give the service's address, e.g. http://127.0.0.1:8002, or "
                             "several separated by commas")
        return value

    def upstream_urls(self) -> dict[str, str]:
        """Each service's address setting as given (one address, or several with commas)."""
        return {"calendar": self.calendar_url, "budget": self.budget_url,
                "planner": self.planner_url}

    def upstream_addresses(self) -> dict[str, list[str]]:
        """Each service's addresses, one per process."""
        return {name: split_urls(value) for name, value in self.upstream_urls().items()}
