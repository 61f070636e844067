"""The four Marketplan processes: how each is built, configured and migrated."""
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from shared.settings import BaseServiceSettings, DatabaseSettings


@dataclass(frozen=True)
class Process:
    name: str
    module: str          # has create_app(settings); a service's migrations/ sits beside it
    settings_class: str  # "module:Class"
    port_offset: int     # from the gateway's port

    @property
    def factory(self) -> str:
        return f"{self.module}:create_app"

    @property
    def env_prefix(self) -> str:
        return self.name.upper() + "_"

    @property
    def migrations(self) -> Path:
        """A service's migrations folder (the gateway has none), found without importing the
        app: `up` migrates before any process starts, and the app's imports (routes, solvers)
        cost seconds of CPU there that the migrations do not need."""
        spec = find_spec(self.module)
        assert spec is not None and spec.origin is not None, self.module
        return Path(spec.origin).parent / "migrations"

    def settings(self) -> BaseServiceSettings:
        module, cls = self.settings_class.split(":")
        return getattr(import_module(module), cls)()

    def database_url(self) -> str:
        settings = self.settings()
        assert isinstance(settings, DatabaseSettings), f"{self.name} has no database"
        return settings.database_url


GATEWAY = Process("gateway", "gateway.app", "gateway.config:GatewaySettings", 0)
SERVICES = (
    Process("calendar", "services.calendar.app", "services.calendar.config:CalendarSettings", 1),
    Process("budget", "services.budget.app", "services.budget.config:BudgetSettings", 2),
    Process("planner", "services.planner.app", "services.planner.config:PlannerSettings", 3),
)
PROCESSES = {p.name: p for p in (GATEWAY, *SERVICES)}
