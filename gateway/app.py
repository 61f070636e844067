"""The gateway: the one public entry point. Auth, routing, merged OpenAPI; no business logic."""
import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import swagger_ui
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from gateway.headers import SecurityHeaders
from gateway.limits import ConcurrencyLimit, FailureLimit
from gateway.openapi import fetch_service_docs, gateway_problems, merge
from gateway.proxy import Proxy, client_address, create_session
from gateway.upstreams import Pool, Upstream
from shared.errors import Forbidden, Problem, ServiceUnavailable, install_error_handlers, problem_response
from shared.internal_auth import Caller
from shared.metrics import install_metrics
from shared.requests import install_request_id, request_id_header
from shared.service_app import GZIP_MINIMUM_BYTES, VERSION, Health, freeze_startup_heap

# Swagger UI as shipped in the swagger-ui-py wheel: /docs works without internet.
SWAGGER_UI_ASSETS = Path(swagger_ui.__file__).parent / "static"
# What a browser client may send and read across origins (CORS), beyond the safelisted ones.
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-Match",
                        "If-None-Match", "Prefer", "X-Request-ID"]
CORS_RESPONSE_HEADERS = ["ETag", "Location", "Link", "Idempotent-Replayed", "Retry-After",
                         "X-Request-ID", "Allow"]


class ProxyDispatch:
    """Send `/api/` calls straight to the proxy, past FastAPI's router, dependency and
    exception layers, which bench/gateway.py measured at a fifth of the gateway's time."""

    # What the router would record for a matched route; metrics label proxied calls by it.
    route = SimpleNamespace(path="/api/{path:path}")

    def __init__(self, app: ASGIApp, proxy: Proxy):
        self.app = app
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        try:
            await self.proxy(scope, receive, send)
        except Problem as problem:
            await problem_response(problem)(scope, receive, send)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway app (uvicorn calls this as a factory)."""
    settings = settings or GatewaySettings()
    pools = {name: Pool(name, urls) for name, urls in settings.upstream_addresses().items()}
    proxy = Proxy(upstreams=pools, keys=KeyStore(settings.keys_file),
                  secret=settings.internal_secret.get_secret_value().encode(),
                  max_body_bytes=settings.max_body_bytes,
                  failures=FailureLimit(settings.auth_failures_per_minute),
                  solves=ConcurrencyLimit(settings.solves_per_key),
                  connect_retries=settings.upstream_connect_retries)

    def authenticate_admin(scope: Scope) -> Caller:
        authorization = next((v.decode("latin-1") for k, v in scope["headers"]
                              if k == b"authorization"), None)
        caller = proxy.authenticate(client_address(scope), authorization)
        if caller.role != "admin":
            raise Forbidden("Only an admin key may read /metrics (or set "
                            "GATEWAY_METRICS_PUBLIC=true where the port is private).")
        return caller

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        timeouts = {"timeout": settings.upstream_timeout,
                    "connect_timeout": settings.upstream_connect_timeout}
        members = [member for pool in pools.values() for member in pool.members]
        for member in members:
            member.session = create_session(**timeouts, keepalive=settings.upstream_keepalive)
            member.write_session = create_session(**timeouts, keepalive=None)
        # One address has nowhere else to send a request: only pools of several are watched.
        watching = [asyncio.create_task(pool.watch(settings.upstream_probe_interval))
                    for pool in pools.values() if len(pool.members) > 1]
        freeze_startup_heap()
        yield
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        await asyncio.gather(*(session.close() for member in members
                               for session in (member.session, member.write_session)))

    gateway_problems()  # walked once here, not in the first request for the document
    app = FastAPI(title="Marketplan API", version=VERSION, lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None,
                  description="Budgets, campaign calendar and team scheduling of the marketing "
                              "department. Every `/api/` call needs `Authorization: Bearer <key>`.",
                  generate_unique_id_function=lambda route: route.name,
                  separate_input_output_schemas=False,
                  # The gateway exports no OpenTelemetry (it has Prometheus metrics and request
                  # ids); left on, FastAPI looks for a provider in os.environ on every request:
                  # 6 % of the gateway's time under bench/gateway.py (py-spy).
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    install_error_handlers(app)
    # Added first = innermost. The gateway's own answers (the merged document above all) are
    # compressed here; services compress their own, which the proxy passes through as is.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=6)
    # Metrics and request ids cover proxied calls too.
    app.add_middleware(ProxyDispatch, proxy=proxy)
    install_metrics(app)
    install_request_id(app)
    # Every answer gets the headers, errors and 404s included.
    app.add_middleware(SecurityHeaders, authenticate_admin=authenticate_admin,
                       metrics_public=settings.metrics_public)
    if settings.cors_origins:
        # Outermost: a preflight is answered before any key is asked for, and every answer
        # to an allowed origin, errors included, carries its CORS headers.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=CORS_REQUEST_HEADERS,
                           expose_headers=CORS_RESPONSE_HEADERS, max_age=600)
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI_ASSETS), name="docs_assets")

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def read_health() -> Health:
        """Answer while the gateway process is alive."""
        return Health(status="ok")

    @app.get("/readyz", tags=["health"])
    async def read_readiness() -> JSONResponse:
        """Report each service's readiness; 503 unless all are ready."""

        async def probe(name: str) -> str:
            """A service is ready when one of its processes is."""
            answers = await asyncio.gather(*(ready(member) for member in pools[name].members))
            return "ready" if any(answers) else "unavailable"

        async def ready(member: Upstream) -> bool:
            try:
                async with member.session.get(
                        member.url + "/readyz", headers=request_id_header(),
                        timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return response.status == 200
            except (TimeoutError, aiohttp.ClientError):
                return False

        names = sorted(pools)
        states = dict(zip(names, await asyncio.gather(*(probe(n) for n in names))))
        if all(state == "ready" for state in states.values()):
            return JSONResponse({"status": "ready", "upstreams": states})
        down = [name for name, state in states.items() if state != "ready"]
        raise ServiceUnavailable(f"Not ready: {', '.join(down)} did not answer /readyz.",
                                 upstreams=states)

    @app.get("/openapi.json", include_in_schema=False)
    async def read_openapi() -> JSONResponse:
        chosen = {name: pool.first_healthy() for name, pool in pools.items()}
        docs, missing = await fetch_service_docs(
            {name: member.session for name, member in chosen.items()},
            {name: member.url for name, member in chosen.items()}, headers=request_id_header())
        merged = merge(app.openapi(), docs)
        if missing:
            merged["info"]["description"] += (
                f"\n\n**Not shown: {', '.join(missing)} (unavailable right now).**")
        return JSONResponse(merged)

    @app.get("/docs", include_in_schema=False)
    async def read_docs(request: Request) -> HTMLResponse:
        assets = "/docs/assets/"
        return get_swagger_ui_html(openapi_url=str(request.url_for("read_openapi").path),
                                   title="Marketplan API",
                                   swagger_js_url=assets + "swagger-ui-bundle.js",
                                   swagger_css_url=assets + "swagger-ui.css",
                                   swagger_favicon_url=assets + "favicon-32x32.png")

    app.state.settings = settings
    return app
