"""Authentication of calls between Marketplan processes.

The gateway (and a service calling another) signs each call with HMAC-SHA256, using the
shared internal secret, over the whole request: a timestamp, a random nonce, the method, the
path with its query, the SHA-256 of the body and the caller's identity (principal, role and,
when the caller has one, the name of its API key, percent-encoded so any name fits a header).
A service accepts an `/api/` call only with a valid signature made within `VALIDITY_SECONDS`,
so a direct call that bypasses the gateway is a 401, the caller's role and name cannot be
forged, and a captured credential cannot carry another body, query or path.

A replayed credential is refused by its nonce: a service records the nonce of every call that
can change state in its own database (`nonce_table`), so the refusal holds across all its
processes. A nonce only needs keeping while its credential is valid, so the table stays small.
Safe methods (GET, HEAD, OPTIONS) are not recorded: replaying one within the window returns
what anyone able to capture the credential could already read on the wire.
"""
import hashlib
import hmac
import secrets
import time
import urllib.parse
from collections.abc import Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

import httpx
from anyio import to_thread
from fastapi import Depends, Request
from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import write_engine
from shared.errors import Forbidden, ServiceUnavailable, Unauthorized, problem_response

Role = Literal["admin", "planner", "finance", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)

PRINCIPAL_HEADER = "x-marketplan-principal"
ROLE_HEADER = "x-marketplan-role"
NAME_HEADER = "x-marketplan-name"
TIMESTAMP_HEADER = "x-marketplan-timestamp"
NONCE_HEADER = "x-marketplan-nonce"
SIGNATURE_HEADER = "x-marketplan-signature"
# A credential is made just before its call is sent and checked on arrival; clocks of
# processes on one host or cluster (NTP) agree to well within a second. The window bounds how
# long a nonce must be kept.
VALIDITY_SECONDS = 30
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The gateway refuses bodies over 10 MiB; a direct call may not make a service buffer more.
MAX_SIGNED_BODY_BYTES = 16 * 1024 * 1024
NONCE_TABLE = "internal_nonce"
NONCE_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str
    role: str
    # The person's or system's name of the API key, shown next to the principal; keys made
    # before names existed, and services acting as themselves, have none.
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified credential: who calls, and the nonce and expiry that guard its replay."""
    caller: Caller
    nonce: str
    expires_at: int


current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)


def _signature(secret: bytes, *, timestamp: str, nonce: str, method: str, path: str,
               body: bytes, caller: Caller) -> str:
    fields = [timestamp, nonce, method.upper(), path, hashlib.sha256(body).hexdigest(),
              caller.principal, caller.role]
    # A nameless caller signs exactly what it signed before names existed; a name adds a line
    # (encoded: no newline in it), so neither adding nor removing one keeps the signature.
    if caller.name is not None:
        fields.append(_encode_name(caller.name))
    message = "\n".join(fields)
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def _encode_name(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def sign(secret: bytes, *, method: str, path: str, caller: Caller, body: bytes = b"",
         now: float | None = None) -> dict[str, str]:
    """Return the headers that authenticate one call of `caller`: `method` to `path` (the
    raw path with its query, as sent) carrying `body`."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(NONCE_LENGTH // 2)
    headers = {
        PRINCIPAL_HEADER: caller.principal,
        ROLE_HEADER: caller.role,
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: _signature(secret, timestamp=timestamp, nonce=nonce, method=method,
                                     path=path, body=body, caller=caller),
    }
    if caller.name is not None:
        headers[NAME_HEADER] = _encode_name(caller.name)
    return headers


class InternalAuth(httpx.Auth):
    """Sign each httpx request as `caller` (a Caller, or a function giving the current one):
    the credential covers the request exactly as sent, query and body included."""

    requires_request_body = True

    def __init__(self, secret: bytes, caller: Caller | Callable[[], Caller]):
        self.secret = secret
        self.caller = caller

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        caller = self.caller() if callable(self.caller) else self.caller
        request.headers.update(sign(self.secret, method=request.method,
                                    path=request.url.raw_path.decode("latin-1"),
                                    body=request.content, caller=caller))
        yield request


def verify(secret: bytes, *, method: str, path: str, body: bytes, headers: dict[str, str],
           now: float | None = None) -> Credential:
    """Return the credential of this call if its signature covers exactly this request and
    is fresh, or raise Unauthorized. Replays are the caller's to check (`NonceStore`)."""
    try:
        encoded_name = headers.get(NAME_HEADER)
        name = None if encoded_name is None else urllib.parse.unquote(encoded_name,
                                                                      errors="strict")
        caller = Caller(headers[PRINCIPAL_HEADER], headers[ROLE_HEADER], name)
        timestamp, nonce = headers[TIMESTAMP_HEADER], headers[NONCE_HEADER]
        signature = headers[SIGNATURE_HEADER]
        signed_at = int(timestamp)
    except (KeyError, ValueError):  # UnicodeDecodeError is a ValueError
        raise Unauthorized("This service is reached only through the Marketplan gateway; "
                           "send the request to the gateway with an API key.") from None
    expected = _signature(secret, timestamp=timestamp, nonce=nonce, method=method,
                          path=path, body=body, caller=caller)
    age = abs((time.time() if now is None else now) - signed_at)
    if not hmac.compare_digest(expected, signature) or age > VALIDITY_SECONDS:
        raise Unauthorized("The internal credential of this call is invalid or expired; "
                           "send the request through the Marketplan gateway.")
    if caller.role not in ROLES:
        raise Unauthorized(f"Unknown role {caller.role!r} in the internal credential.")
    return Credential(caller, nonce, signed_at + VALIDITY_SECONDS)


def nonce_table(metadata: MetaData) -> Table:
    """Define the table of used nonces on a service's own metadata (add it by migration)."""
    return Table(
        NONCE_TABLE, metadata,
        Column("nonce", String(NONCE_LENGTH), primary_key=True),
        # Unix seconds: after this the credential is refused as expired anyway.
        Column("expires_at", BigInteger, nullable=False, index=True),
    )


class NonceStore:
    """Records each nonce once, in the service's database, shared by all its processes."""

    def __init__(self, table: Table):
        self.table = table

    def claim(self, engine: Engine, credential: Credential, now: float | None = None) -> bool:
        """Record the credential's nonce; False if it was already used (a replay)."""
        now = time.time() if now is None else now
        try:
            with write_engine(engine).begin() as connection:
                # Expired nonces go as new ones come: the table holds one window's worth.
                connection.execute(delete(self.table).where(self.table.c.expires_at < int(now)))
                connection.execute(insert(self.table).values(nonce=credential.nonce,
                                                             expires_at=credential.expires_at))
        except IntegrityError:
            return False
        return True


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    messages, size, more = [], 0, True
    while more:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > MAX_SIGNED_BODY_BYTES:
            raise Unauthorized(f"A body over {MAX_SIGNED_BODY_BYTES} bytes is refused; send "
                               "the request through the Marketplan gateway.")
        more = message.get("more_body", False)
    return b"".join(m.get("body", b"") for m in messages), messages


class InternalAuthMiddleware:
    """Reject every `/api/` call without a valid internal credential for exactly this request,
    and (given `nonces`, the service's nonce table) every replayed credential of a write."""

    def __init__(self, app: ASGIApp, secret: bytes, nonces: Table | None = None):
        self.app = app
        self.secret = secret
        self.nonces = NonceStore(nonces) if nonces is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k.startswith(b"x-marketplan-")}
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            body, messages = await _read_body(receive)
            credential = verify(self.secret, method=scope["method"], path=target, body=body,
                                headers=headers)
            if self.nonces is not None and scope["method"] not in SAFE_METHODS:
                engine = scope["app"].state.engine
                try:
                    fresh = await to_thread.run_sync(self.nonces.claim, engine, credential)
                except SQLAlchemyError:
                    raise ServiceUnavailable("The service's database is not reachable; try "
                                             "again shortly.", headers={"Retry-After": "5"}) from None
                if not fresh:
                    raise Unauthorized("This internal credential was already used; every call "
                                       "needs a new one. Send the request through the gateway.")
        except (Unauthorized, ServiceUnavailable) as problem:
            await problem_response(problem)(scope, receive, send)
            return

        async def replay_body() -> Message:
            # The app reads the body the credential was checked against, then the live stream.
            return messages.pop(0) if messages else await receive()

        scope.setdefault("state", {})["caller"] = credential.caller
        token = current_caller.set(credential.caller)
        try:
            await self.app(scope, replay_body, send)
        finally:
            current_caller.reset(token)


def get_caller(request: Request) -> Caller:
    return request.state.caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_roles(*roles: Role):
    """A dependency that returns the caller if their role is one of `roles`, else a 403.

    The gateway already limits each role (gateway/policy.py); this keeps a service's own rules
    true for every signed caller (another service included).
    """
    def dependency(request: Request) -> Caller:
        caller: Caller = request.state.caller
        if caller.role not in roles:
            raise Forbidden(f"Role {caller.role!r} may not do this; it needs one of: "
                            f"{', '.join(roles)}. Ask an admin for a key with such a role.")
        return caller
    return Depends(dependency)
