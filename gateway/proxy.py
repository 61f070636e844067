"""The hot path: authenticate, authorize and forward `/api/v1/<service>/...` upstream.

Written as a plain ASGI endpoint on an aiohttp client: bench/gateway.py measured httpx's
default transport as the bottleneck (see docs/benchmarks.md).
"""
import asyncio

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway.auth import KeyStore, authorize, feed_caller
from shared.errors import GatewayTimeout, NotFound, Problem, ServiceUnavailable
from shared.internal_auth import sign
from shared.requests import request_id_header

# RFC 9110 §7.6.1 hop-by-hop headers, plus what the gateway itself sets or must not pass on
# (the caller's API key never reaches a service; a client cannot forge an identity).
DROPPED_REQUEST_HEADERS = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length",
    b"authorization", b"x-request-id",
})
DROPPED_RESPONSE_HEADERS = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "x-request-id",
    "date", "server",
})
# Methods that are safe to resend when a pooled connection turned out to be dead.
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


def create_session(*, timeout: float, connect_timeout: float) -> aiohttp.ClientSession:
    """One long-lived pooled client per upstream, made in the gateway's lifespan."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout, connect=connect_timeout),
        connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=30),
        auto_decompress=False,  # pass bodies through byte for byte
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    )


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over {limit} bytes; send less at once "
                                  "(split bulk requests into batches).")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class Proxy:
    """ASGI endpoint for `/api/...`; errors are raised as problems for the caller to render."""

    def __init__(self, *, upstreams: dict[str, str], keys: KeyStore, secret: bytes,
                 max_body_bytes: int):
        self.upstreams = upstreams
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.keys = keys
        self.secret = secret
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        authorization = next((v.decode("latin-1") for k, v in scope["headers"]
                              if k == b"authorization"), None)
        caller = feed_caller(method, path, authorization)
        if caller is None:
            caller = self.keys.authenticate(authorization)
            authorize(caller, method, path)
        service = path.split("/", 4)[3] if path.startswith("/api/v1/") else ""
        if service not in self.sessions:
            raise NotFound(f"No service answers {path}; API paths start with /api/v1/ and "
                           f"one of: {', '.join(sorted(self.upstreams))}.")
        raw_path = scope.get("raw_path") or path.encode()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k not in DROPPED_REQUEST_HEADERS and not k.startswith(b"x-marketplan-")]
        headers.extend(sign(self.secret, method=method, path=raw_path.decode("latin-1"),
                            caller=caller).items())
        headers.extend(request_id_header().items())
        url = self.upstreams[service] + raw_path.decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        body = await _read_body(receive, self.max_body_bytes)
        status, response_headers, content = await self._forward(
            service, method, URL(url, encoded=True), headers, body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*response_headers,
                                (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})

    async def _forward(self, service: str, method: str, url: URL, headers: list, body: bytes):
        session = self.sessions[service]
        for attempt in (1, 2):
            try:
                async with session.request(method, url, headers=headers, data=body or None,
                                           allow_redirects=False) as response:
                    content = await response.read()
                    kept = [(k, v) for k, v in response.raw_headers
                            if k.decode("latin-1").lower() not in DROPPED_RESPONSE_HEADERS]
                    return response.status, kept, content
            except asyncio.TimeoutError:
                raise GatewayTimeout(f"The {service} service did not answer in time; try "
                                     "again, or narrow the request.") from None
            except aiohttp.ServerDisconnectedError:
                # A pooled keep-alive connection to a restarted service: resend once if safe.
                if attempt == 2 or method not in RETRYABLE_METHODS:
                    break
            except aiohttp.ClientError:
                break
        raise ServiceUnavailable(f"The {service} service is unavailable right now; the other "
                                 "services keep working. Try again shortly.", service=service)
