"""Authentication of calls between Marketplan processes.

The gateway (and a service calling another) signs each call with HMAC-SHA256 over the
timestamp, method, raw path and the caller's identity, using the shared internal secret.
A service accepts an `/api/` call only with a valid, fresh signature, so a direct call that
bypasses the gateway is a 401, and the caller's role cannot be forged.
"""
import hashlib
import hmac
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import Forbidden, Unauthorized, problem_response

Role = Literal["admin", "planner", "finance", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)

PRINCIPAL_HEADER = "x-marketplan-principal"
ROLE_HEADER = "x-marketplan-role"
TIMESTAMP_HEADER = "x-marketplan-timestamp"
SIGNATURE_HEADER = "x-marketplan-signature"
# Clocks of processes on one host or cluster agree to well within this.
MAX_CLOCK_SKEW_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str
    role: str


current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)


def _signature(secret: bytes, timestamp: str, method: str, path: str, caller: Caller) -> str:
    message = "\n".join((timestamp, method.upper(), path, caller.principal, caller.role))
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, *, method: str, path: str, caller: Caller,
         now: float | None = None) -> dict[str, str]:
    """Return the headers that authenticate one call of `caller` to `method path`."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        PRINCIPAL_HEADER: caller.principal,
        ROLE_HEADER: caller.role,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: _signature(secret, timestamp, method, path, caller),
    }


def verify(secret: bytes, *, method: str, path: str, headers: dict[str, str],
           now: float | None = None) -> Caller:
    """Return the signed caller of this call, or raise Unauthorized."""
    try:
        caller = Caller(headers[PRINCIPAL_HEADER], headers[ROLE_HEADER])
        timestamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        age = abs((time.time() if now is None else now) - int(timestamp))
    except (KeyError, ValueError):
        raise Unauthorized("This service is reached only through the Marketplan gateway; "
                           "send the request to the gateway with an API key.") from None
    expected = _signature(secret, timestamp, method, path, caller)
    if not hmac.compare_digest(expected, signature) or age > MAX_CLOCK_SKEW_SECONDS:
        raise Unauthorized("The internal credential of this call is invalid or expired; "
                           "send the request through the Marketplan gateway.")
    if caller.role not in ROLES:
        raise Unauthorized(f"Unknown role {caller.role!r} in the internal credential.")
    return caller


class InternalAuthMiddleware:
    """Reject every `/api/` call that lacks a valid internal signature (pure ASGI, cheap)."""

    def __init__(self, app: ASGIApp, secret: bytes):
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k.startswith(b"x-marketplan-")}
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        try:
            caller = verify(self.secret, method=scope["method"], path=path, headers=headers)
        except Unauthorized as problem:
            await problem_response(problem)(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        token = current_caller.set(caller)
        try:
            await self.app(scope, receive, send)
        finally:
            current_caller.reset(token)


def get_caller(request: Request) -> Caller:
    return request.state.caller


CallerDep = Annotated[Caller, Depends(get_caller)]



def require_roles(*roles: Role):
    """A dependency that returns the caller if their role is one of `roles`, else a 403.

    The gateway already limits each role; this keeps a service's own rules true for every
    signed caller (another service included).
    """
    def dependency(request: Request) -> Caller:
        caller: Caller = request.state.caller
        if caller.role not in roles:
            raise Forbidden(f"Role {caller.role!r} may not do this; it needs one of: "
                            f"{', '.join(roles)}. Ask an admin for a key with such a role.")
        return caller
    return Depends(dependency)
