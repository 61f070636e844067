"""The one way a Marketplan service app is put together."""
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from importlib.metadata import version
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from shared.db import backend_name, check_database, create_db_engine
from shared.errors import ServiceUnavailable, install_error_handlers
from shared.idempotency import install_replay_handler
from shared.internal_auth import CallerDep, InternalAuthMiddleware
from shared.metrics import install_metrics
from shared.migrations import heads, is_current
from shared.requests import current_request_id, install_request_id
from shared.settings import DatabaseSettings

VERSION = version("marketplan")


class Health(BaseModel):
    status: str


class ServiceStatus(BaseModel):
    service: str
    version: str
    database: str
    schema_current: bool
    principal: str
    role: str
    request_id: str | None


def _status_router(name: str, migrations: Path) -> APIRouter:
    router = APIRouter(prefix=f"/api/v1/{name}", tags=[name])
    newest = heads(migrations)

    @router.get("/status", response_model=ServiceStatus)
    def read_status(request: Request, caller: CallerDep) -> ServiceStatus:
        """Show that this service is reached, which database it uses, and who is calling."""
        engine = request.app.state.engine
        return ServiceStatus(service=name, version=VERSION, database=backend_name(engine),
                             schema_current=is_current(engine, newest),
                             principal=caller.principal, role=caller.role,
                             request_id=current_request_id())

    return router


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    async def read_health() -> Health:
        """Answer while the process is alive."""
        return Health(status="ok")

    @router.get("/readyz", response_model=Health)
    def read_readiness(request: Request) -> Health:
        """Answer 200 when the database is reachable, else 503."""
        try:
            check_database(request.app.state.engine)
        except SQLAlchemyError:
            raise ServiceUnavailable("The database is not reachable.") from None
        return Health(status="ready")

    return router


def create_service_app(*, name: str, settings: DatabaseSettings, migrations: Path,
                       description: str, routers: tuple[APIRouter, ...] = (),
                       resources: Callable[[FastAPI], AbstractAsyncContextManager] | None = None,
                       ) -> FastAPI:
    """Build a service: engine in the lifespan, RFC 9457 errors, internal auth, request ids,
    metrics, health, and `GET /api/v1/<name>/status`. `resources(app)` opens and closes the
    service's own long-lived resources inside the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = create_db_engine(settings)
        async with resources(app) if resources else nullcontext():
            yield
        app.state.engine.dispose()

    app = FastAPI(title=f"Marketplan {name}", version=VERSION, description=description,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  generate_unique_id_function=lambda route: f"{name}_{route.name}")
    app.state.settings = settings
    install_error_handlers(app)
    install_replay_handler(app)
    # Added first = innermost: metrics and request ids also cover rejected direct calls.
    app.add_middleware(InternalAuthMiddleware,
                       secret=settings.internal_secret.get_secret_value().encode())
    install_metrics(app)
    install_request_id(app)
    app.include_router(_health_router())
    app.include_router(_status_router(name, migrations))
    for router in routers:
        app.include_router(router)
    return app
