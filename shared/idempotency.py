"""Idempotency-Key: a replayed create returns the first response, once per caller.

The rule for every service: the use case owns its transaction. It stages its rows, calls
`idempotency.record(session, answer)` to stage the key's record in the same transaction, and
commits once, so a request leaves both or neither. A replay never reaches the use case: the
dependency finds the stored answer first and raises `Replay`, which renders it as it was.
"""
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from shared.db import WriteSessionDep
from shared.errors import UnprocessableContent
from shared.prefer import prefers_async

TABLE_NAME = "idempotency_record"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_LENGTH = 255


def idempotency_table(metadata: MetaData) -> Table:
    """Define the idempotency table on a service's own metadata."""
    return Table(
        TABLE_NAME, metadata,
        Column("principal", String(200), primary_key=True),
        Column("key", String(KEY_LENGTH), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def fingerprint(method: str, path: str, body: Any) -> str:
    """Hash what makes two requests "the same" for an idempotency key."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Replay(Exception):
    """The stored first answer to a replayed key; rendered as it was, marked as a replay."""

    def __init__(self, status_code: int, body: Any):
        super().__init__(status_code)
        self.status_code = status_code
        self.body = body


@dataclass(frozen=True)
class Idempotency:
    """A create request's optional `Idempotency-Key`, bound to its caller and request."""

    table: Table
    principal: str
    key: str | None
    fingerprint: str

    def check(self, session: Session) -> None:
        """Raise `Replay` if this key already has an answer (422 if the request differs)."""
        if self.key is None:
            return
        row = session.execute(select(self.table).where(
            self.table.c.principal == self.principal, self.table.c.key == self.key)).first()
        if row is None:
            return
        if row.fingerprint != self.fingerprint:
            raise UnprocessableContent(
                f"Idempotency-Key {self.key!r} was already used for a different request. Use a "
                "new key for a new request, or resend exactly the first request to get its "
                "answer.")
        raise Replay(row.status_code, json.loads(row.response_body))

    def record(self, session: Session, answer: Any, *, status_code: int = 201) -> None:
        """Stage this key's record of `answer` in the caller's transaction (no commit).

        A concurrent request with the same key that committed first makes the insert fail
        (PostgreSQL waits for it here; SQLite's writers queue earlier): this request's own
        rows are rolled back and the winner's answer is replayed instead."""
        if self.key is None:
            return
        try:
            session.execute(insert(self.table).values(
                principal=self.principal, key=self.key, fingerprint=self.fingerprint,
                status_code=status_code, created_at=datetime.now(UTC),
                response_body=json.dumps(jsonable_encoder(answer), default=str)))
            session.flush()
        except IntegrityError:
            session.rollback()
            self.check(session)
            raise


def _idempotency_key(key: Annotated[str | None, Header(
        alias=IDEMPOTENCY_HEADER, min_length=1, max_length=KEY_LENGTH,
        description="Makes the create safe to retry: the same key and body within the same "
                    "caller return the first answer (`Idempotent-Replayed: true`); a different "
                    "body with a used key is a 422. A UUID is a good choice.")] = None,
                     ) -> str | None:
    return key


async def _request_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("latin-1")


def idempotency_dependency(table: Table) -> Any:
    """A dependency giving create routes an `Idempotency` on the service's own `table`.

    It checks for a stored answer before the route runs, so a replayed slow create (a solve)
    is answered without doing the work again; the read ends there, holding no lock. It is a
    plain `def`, so FastAPI runs its database read in the threadpool: on the event loop, a
    read waiting for SQLite's write lock would stall the very request that holds it."""
    def dependency(request: Request, key: Annotated[str | None, Depends(_idempotency_key)],
                   body: Annotated[Any, Depends(_request_body)],
                   session: WriteSessionDep) -> Idempotency:
        idempotency = Idempotency(
            table=table, principal=request.state.caller.principal, key=key,
            fingerprint=fingerprint(request.method, request.url.path + "?" + request.url.query,
                                    body))
        # An asynchronous retry is answered by the job the first request made (the job queue
        # finds it by its key): replaying the resource that job stored would change the answer.
        if prefers_async(request.headers.getlist("prefer")):
            return idempotency
        try:
            idempotency.check(session)
        finally:
            session.rollback()
        return idempotency
    return Depends(dependency)


async def _render_replay(_request: Request, replay: Exception) -> JSONResponse:
    assert isinstance(replay, Replay)
    return JSONResponse(replay.body, status_code=replay.status_code,
                        headers={REPLAYED_HEADER: "true"})


def install_replay_handler(app: FastAPI) -> None:
    """Render `Replay` as the stored first answer."""
    app.add_exception_handler(Replay, _render_replay)
