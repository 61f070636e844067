"""The hot path: authenticate, authorize and forward `/api/v1/<service>/...` upstream.

Written as a plain ASGI endpoint on an aiohttp client: bench/gateway.py measured httpx's
default transport as the bottleneck (see docs/benchmarks.md).
"""
import asyncio
from contextlib import nullcontext

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway.auth import KeyStore, feed_caller
from gateway.limits import ConcurrencyLimit, FailureLimit
from gateway.policy import authorize, runs_solver
from gateway.upstreams import Pool, Upstream
from shared.errors import GatewayTimeout, NotFound, Problem, ServiceUnavailable, Unauthorized
from shared.internal_auth import Caller, sign
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
# A HEAD answer has no body to measure: the upstream's length (of the GET) is passed on.
DROPPED_HEAD_RESPONSE_HEADERS = DROPPED_RESPONSE_HEADERS - {"content-length"}
# Safe methods (RFC 9110 §9.2.1) ride pooled keep-alive connections and are resent when a
# pooled connection turns out to be closed. Every other method gets a fresh connection, so it
# is never written onto a connection the upstream has already closed, and a failure after
# connecting is never resent: the upstream may have applied it.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# First pause before resending a request that never left; doubled on each further try.
RETRY_BACKOFF_SECONDS = 0.05
# An answer of known length up to this is read whole and sent in one piece (the hot path); a
# longer one, or one of unknown length (a streamed CSV export), is passed on chunk by chunk,
# so the gateway holds one chunk of it at a time whatever its size.
WHOLE_ANSWER_BYTES = 256 * 1024
CHUNK_BYTES = 64 * 1024


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Request body too large"


def create_session(*, timeout: float, connect_timeout: float, keepalive: float | None
                   ) -> aiohttp.ClientSession:
    """A long-lived client for one upstream, made in the gateway's lifespan: pooled keep-alive
    connections kept `keepalive` seconds, or (None) a fresh connection for every request."""
    connector = (aiohttp.TCPConnector(limit=200, force_close=True) if keepalive is None
                 else aiohttp.TCPConnector(limit=200, keepalive_timeout=keepalive))
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout, connect=connect_timeout),
        connector=connector,
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

    def __init__(self, *, upstreams: dict[str, Pool], keys: KeyStore, secret: bytes,
                 max_body_bytes: int, failures: FailureLimit, solves: ConcurrencyLimit,
                 connect_retries: int):
        # Each address's clients are made in the app's lifespan (gateway/upstreams.py).
        self.upstreams = upstreams
        self.keys = keys
        self.secret = secret
        self.max_body_bytes = max_body_bytes
        self.failures = failures
        self.solves = solves
        self.connect_retries = connect_retries

    def authenticate(self, client: str, authorization: str | None) -> Caller:
        """The caller of an API key; failures are counted per client address."""
        self.failures.check(client)
        try:
            return self.keys.authenticate(authorization)
        except Unauthorized:
            self.failures.failed(client)
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        authorization = next((v.decode("latin-1") for k, v in scope["headers"]
                              if k == b"authorization"), None)
        caller = feed_caller(method, path, authorization)
        if caller is None:
            caller = self.authenticate(client_address(scope), authorization)
            authorize(caller, method, path)
        service = path.split("/", 4)[3] if path.startswith("/api/v1/") else ""
        pool = self.upstreams.get(service)
        if pool is None:
            raise NotFound(f"No service answers {path}; API paths start with /api/v1/ and "
                           f"one of: {', '.join(sorted(self.upstreams))}.")
        target = (scope.get("raw_path") or path.encode()).decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        body = await _read_body(receive, self.max_body_bytes)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k not in DROPPED_REQUEST_HEADERS and not k.startswith(b"x-marketplan-")]
        headers.extend(sign(self.secret, method=method, path=target, body=body,
                            caller=caller).items())
        headers.extend(request_id_header().items())
        with self.solves.slot(caller.principal) if runs_solver(method, path) else nullcontext():
            await self._forward(pool, method, target, headers, body, send)

    async def _forward(self, pool: Pool, method: str, target: str, headers: list,
                       body: bytes, send: Send) -> None:
        """Send to the pool's best address; what never left goes to the next one at once, and
        round the pool again after a pause while tries are left."""
        safe = method in SAFE_METHODS
        tried: list[Upstream] = []
        rounds = 0
        for _attempt in range(len(pool.members) + self.connect_retries):
            upstream = pool.pick(tried)
            if upstream is None:  # every address failed once: pause, then try them again
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** rounds)
                rounds += 1
                tried.clear()
                upstream = pool.pick(tried)
                assert upstream is not None
            tried.append(upstream)
            session = upstream.session if safe else upstream.write_session
            try:
                with upstream.busy():
                    return await self._send(session, method, URL(upstream.url + target,
                                                                 encoded=True), headers, body,
                                            send)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                upstream.mark_down()
                continue  # no connection was made, so the request never left: resend it
            except TimeoutError:
                raise GatewayTimeout(f"The {pool.name} service did not answer in time; try "
                                     "again, or narrow the request.") from None
            except aiohttp.ClientConnectionError:
                if safe:
                    continue  # a pooled connection the service had closed; safe to resend
                # A fresh connection broke after the request was sent: its process may have
                # died (the probe brings it back if not), and the request may have been
                # applied, so it is not resent here (a retry with the same Idempotency-Key is).
                upstream.mark_down()
                raise ServiceUnavailable(
                    f"The {pool.name} service closed the connection before answering; the "
                    "request may or may not have been applied. Send it again with the same "
                    "Idempotency-Key (or check before repeating an update).",
                    service=pool.name) from None
            except aiohttp.ClientError:
                break
        raise ServiceUnavailable(f"The {pool.name} service is unavailable right now; the "
                                 "other services keep working. Try again shortly.",
                                 service=pool.name)

    @staticmethod
    async def _send(session: aiohttp.ClientSession, method: str, url: URL, headers: list,
                    body: bytes, send: Send) -> None:
        async with session.request(method, url, headers=headers, data=body or None,
                                   allow_redirects=False) as response:
            connection = response.connection
            if response.status >= 500 and connection and connection.protocol:
                # A service that failed may close the connection right after its answer
                # without saying so (uvicorn does after an unhandled error): never pool such
                # a connection.
                connection.protocol.force_close()
            dropped = DROPPED_HEAD_RESPONSE_HEADERS if method == "HEAD" else DROPPED_RESPONSE_HEADERS
            kept = [(k, v) for k, v in response.raw_headers
                    if k.decode("latin-1").lower() not in dropped]
            length = response.content_length
            if method == "HEAD" or (length is not None and length <= WHOLE_ANSWER_BYTES):
                # Read whole before anything is sent, so a failure here can still be resent
                # or answered as a problem.
                content = await response.read()
                if method != "HEAD":  # a HEAD answer keeps the length of the GET it stands for
                    kept.append((b"content-length", str(len(content)).encode()))
                await send({"type": "http.response.start", "status": response.status,
                            "headers": kept})
                await send({"type": "http.response.body", "body": content})
                return
            if length is not None:
                kept.append((b"content-length", str(length).encode()))
            await send({"type": "http.response.start", "status": response.status,
                        "headers": kept})
            try:
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (aiohttp.ClientError, TimeoutError) as broken:
                # The answer started, so no problem can replace it and nothing may be resent:
                # the client's connection is cut (never a clean end), so it sees it is partial.
                raise _CutShort(f"the upstream answer broke off: {broken!r}") from broken
            await send({"type": "http.response.body", "body": b""})


class _CutShort(Exception):
    """An upstream answer that broke off after its first bytes were passed on."""


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"
