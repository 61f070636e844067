"""Security headers on every answer of the gateway, and who may read its `/metrics`."""
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import Problem, problem_response

# JSON, problem+json, CSV and iCalendar answers load nothing and may not be framed.
STRICT_CSP = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI (/docs) is an HTML page that loads its script, style and icon from this origin
# (/docs/assets) and runs one inline script, then calls this origin for the document and API.
DOCS_CSP = (b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self'; "
            b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# API answers carry budgets and plans for one key (and feeds are bearer URLs): never stored
# by a browser or a shared cache. Conditional requests (ETag/If-None-Match) still work.
API_CACHE_CONTROL = b"no-store"


class SecurityHeaders:
    """Add the security headers to every answer (pure ASGI: it also covers proxied calls and
    errors rendered by inner layers); keep `/metrics` to admins unless it is public."""

    def __init__(self, app: ASGIApp, authenticate_admin: Callable[[Scope], object],
                 metrics_public: bool):
        self.app = app
        self.authenticate_admin = authenticate_admin
        self.metrics_public = metrics_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        added = [*COMMON_HEADERS,
                 (b"content-security-policy", DOCS_CSP if path == "/docs" else STRICT_CSP)]
        api = path.startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.extend(h for h in added if h[0] not in names)
                if api and b"cache-control" not in names:
                    headers.append((b"cache-control", API_CACHE_CONTROL))
                message = {**message, "headers": headers}
            await send(message)

        if path == "/metrics" and not self.metrics_public:
            try:
                self.authenticate_admin(scope)
            except Problem as problem:
                await problem_response(problem)(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)

