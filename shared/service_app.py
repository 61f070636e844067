"""The one way a Marketplan service app is put together, with the HTTP habits every route
shares: HEAD and OPTIONS, a right `Allow`, no redirect to an internal address, `Location` and
`ETag` on a 201, `Link` on a page, unknown query parameters refused, `Accept` honoured, gzip."""
import gc
import json
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import backend_name, check_database, create_db_engine
from shared.errors import (
    NotAcceptable,
    ServiceUnavailable,
    UnsupportedMediaType,
    install_error_handlers,
    invalid_fields,
)
from shared.idempotency import install_replay_handler
from shared.internal_auth import CallerDep, InternalAuthMiddleware
from shared.metrics import install_metrics
from shared.migrations import heads, is_current
from shared.openapi import RouteFacts, install_openapi, route_facts
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

    @router.get("/status", response_model=ServiceStatus, operation_id=f"read_{name}_status")
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
                       description: str, nonces: Table, routers: tuple[APIRouter, ...] = (),
                       resources: Callable[[FastAPI], AbstractAsyncContextManager] | None = None,
                       ) -> FastAPI:
    """Build a service: engine in the lifespan, RFC 9457 errors, internal auth (refusing a
    replayed credential through the service's `nonces` table), request ids, metrics, health,
    and `GET /api/v1/<name>/status`. `resources(app)` opens and closes the service's own
    long-lived resources inside the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = create_db_engine(settings)
        async with resources(app) if resources else nullcontext():
            freeze_startup_heap()
            yield
        app.state.engine.dispose()

    # Operation ids are the route functions' names (`create_campaign`), as clients call them;
    # the gateway's merge keeps them unique across services.
    app = FastAPI(title=f"Marketplan {name}", version=VERSION, description=description,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  generate_unique_id_function=lambda route: route.name,
                  redirect_slashes=False, dependencies=[Depends(check_request)],
                  # No OpenTelemetry here (Prometheus metrics and request ids instead); left
                  # on, FastAPI looks for a provider on every request.
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    install_error_handlers(app)
    install_replay_handler(app)
    # Added first = innermost: inside the internal auth, which checks the method as sent.
    app.add_middleware(HttpConventions)
    # Level 1: a year's variance (720 KiB) compresses in 4.6 ms instead of level 6's 13 ms, to
    # 95 KB instead of 71: the time is the answer's, the bytes cross a data centre's network.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL)
    # Metrics and request ids also cover rejected direct calls.
    app.add_middleware(InternalAuthMiddleware, nonces=nonces,
                       secret=settings.internal_secret.get_secret_value().encode())
    install_metrics(app)
    install_request_id(app)
    app.include_router(_health_router())
    app.include_router(_status_router(name, migrations))
    for router in routers:
        app.include_router(router)
    app.state.route_facts = route_facts(app)
    install_openapi(app, app.state.route_facts)
    return app


def freeze_startup_heap() -> None:
    """Put every object made by startup (modules, classes, schemas) beyond the garbage
    collector: a full collection scanned them all, ~100 ms of a large answer's time every few
    dozen requests (a month's calendar: p95 88 -> 41 ms in process, p50 38 -> 29)."""
    gc.collect()
    gc.freeze()


# Below about one packet, compressing saves nothing a client would notice.
GZIP_MINIMUM_BYTES = 1400
# Level 1 (see `create_service_app`); `shared.kept` gzips kept answers at the same level.
GZIP_LEVEL = 1


def _accepts(accept: str, media_types: frozenset[str]) -> bool:
    """Whether an `Accept` header admits one of `media_types` (RFC 9110 §12.5.1)."""
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        kind, _, _sub = media.partition("/")
        for offered in media_types:
            if media in ("*/*", "", offered) or media == f"{offered.split('/')[0]}/*":
                return True
            # An error or a JSON answer is also fine for a client that takes problem+json.
            if media == "application/problem+json" and kind == "application":
                return True
    return False


def _json_media(content_type: str) -> bool:
    """Whether a `Content-Type` names JSON (`application/json` or a `+json` type), as FastAPI
    reads a body as JSON."""
    media = content_type.split(";")[0].strip().lower()
    kind, _, sub = media.partition("/")
    return kind == "application" and (sub == "json" or sub.endswith("+json"))


def _has_body(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def check_request(request: Request) -> None:
    """Refuse query parameters the route does not take (a typo must not widen a filter), one
    given twice (every one takes a single value: `kind=a&kind=b` would be read as `kind=b`,
    dropping what the caller sent), an `Accept` the route cannot answer (406) and a body sent
    as something other than JSON (415: FastAPI would read it as bytes and answer that the body
    is not an object, hiding the header that is wrong)."""
    facts: RouteFacts | None = request.app.state.route_facts.get(id(request.scope.get("route")))
    if facts is None:
        return
    unknown = sorted({name for name in request.query_params if name not in facts.query_names})
    if unknown:
        taken = ", ".join(sorted(facts.query_names)) or "none"
        raise invalid_fields([(name, f"unknown query parameter; this route takes: {taken}")
                              for name in unknown], where="query")
    names = [name for name, _ in request.query_params.multi_items()]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise invalid_fields([(name, "this parameter may be given once") for name in repeated],
                             where="query")
    sent = request.headers.get("content-type")
    if facts.takes_json and not _json_media(sent or "") and _has_body(request):
        raise UnsupportedMediaType(
            f"This route takes a JSON body, sent {f'as `{sent}`' if sent else 'with no type'}; "
            "send it with `Content-Type: application/json`.",
            headers={"Accept": "application/json"})
    accept = request.headers.get("accept")
    if accept and not _accepts(accept, facts.media_types):
        raise NotAcceptable(f"This route answers {', '.join(sorted(facts.media_types))} only; "
                            f"send `Accept: {sorted(facts.media_types)[0]}` or no Accept.")


NEXT_CURSOR = re.compile(rb'"next_cursor":\s*"([^"]+)"\s*}\s*$')


class HttpConventions:
    """The HTTP habits of every route, from the routes themselves (pure ASGI).

    - OPTIONS answers 204 with `Allow`; a 405 names every method of the path, not one route's.
    - HEAD is a GET without its body (FastAPI routes declare GET only).
    - A trailing slash is a 308 to the path without it, as a relative reference: the client's
      base URL (the gateway's) stays, never this process's own address.
    - A 201 names the created resource in `Location` (where a GET route serves `<path>/{id}`)
      with its `ETag` (where that route is versioned); a page with `next_cursor` gets a
      `Link: <…>; rel="next"`.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    @staticmethod
    def _allowed(scope: Scope, path: str) -> set[str]:
        facts: dict[int, RouteFacts] = scope["app"].state.route_facts
        methods = {m for f in facts.values() if f.route.path_regex.match(path)
                   for m in f.methods}
        return methods | ({"HEAD"} if "GET" in methods else set()) | (
            {"OPTIONS"} if methods else set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if path.endswith("/") and self._allowed(scope, path.rstrip("/")):
            target = path.rstrip("/") + (f"?{scope['query_string'].decode('latin-1')}"
                                         if scope["query_string"] else "")
            await _empty(send, 308, [(b"location", target.encode("latin-1"))])
            return
        if method == "OPTIONS" and (allowed := self._allowed(scope, path)):
            await _empty(send, 204, [(b"allow", ", ".join(sorted(allowed)).encode())])
            return
        head = method == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_conventions(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 405:
                    headers = [(k, v) for k, v in message["headers"] if k != b"allow"]
                    allowed = ", ".join(sorted(self._allowed(scope, path))).encode()
                    message = {**message, "headers": [*headers, (b"allow", allowed)]}
                facts = scope["app"].state.route_facts.get(id(scope.get("route")))
                if facts is not None and (status == 201 or (status == 200 and facts.paged)):
                    start = message  # held until the body shows what to link to
                    return
            elif start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks)
                message = {**message, "body": body}
                await send({**start, "headers": [*start["headers"],
                                                 *self._links(scope, start["status"], body)]})
            if head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_conventions)

    def _links(self, scope: Scope, status: int, body: bytes) -> list[tuple[bytes, bytes]]:
        path = scope["path"]
        if status == 200:
            found = NEXT_CURSOR.search(body[-2048:])
            if not found:
                return []
            query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"))
                     if k != "cursor"] + [("cursor", found.group(1).decode())]
            return [(b"link", f'<{path}?{urlencode(query)}>; rel="next"'.encode())]
        facts: RouteFacts = scope["app"].state.route_facts[id(scope["route"])]
        created = facts.created
        if created is None:
            return []
        try:
            answer = json.loads(body)
        except ValueError:
            return []
        name = list(created.route.param_convertors)[-1]
        key = answer.get(name, answer.get("id")) if isinstance(answer, dict) else None
        if key is None:
            return []
        headers = [(b"location", f"{path}/{quote(str(key), safe='')}".encode())]
        if created.versioned and isinstance(answer.get("version"), int):
            headers.append((b"etag", f'"{answer["version"]}"'.encode()))
        return headers


async def _empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
