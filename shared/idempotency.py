"""Idempotency-Key storage: a replayed create returns the first response, once per caller."""
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from shared.db import get_write_session
from shared.errors import UnprocessableContent

TABLE_NAME = "idempotency_record"


def idempotency_table(metadata: MetaData) -> Table:
    """Define the idempotency table on a service's own metadata."""
    return Table(
        TABLE_NAME, metadata,
        Column("principal", String(200), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def fingerprint(method: str, path: str, body: Any) -> str:
    """Hash what makes two requests "the same" for an idempotency key."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any
    replayed: bool


def find_replay(session: Session, table: Table, *, principal: str, key: str,
                fingerprint: str) -> StoredResponse | None:
    """Return the stored first response for this key, or None; 422 if the request differs."""
    row = session.execute(select(table).where(table.c.principal == principal,
                                              table.c.key == key)).first()
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise UnprocessableContent(
            f"Idempotency-Key {key!r} was already used for a different request. Use a new "
            "key for a new request, or resend exactly the first request to get its answer.")
    return StoredResponse(row.status_code, json.loads(row.response_body), replayed=True)


def run_once(session: Session, table: Table, *, principal: str, key: str, fingerprint: str,
             create: Callable[[], tuple[int, Any]]) -> StoredResponse:
    """Run `create` (which stages rows without committing) at most once for this key.

    The record is committed in the same transaction as what `create` staged, so a request
    either leaves both or neither; a concurrent duplicate loses on the primary key, rolls
    back its own rows and answers with the winner's response.
    """
    if (stored := find_replay(session, table, principal=principal, key=key,
                              fingerprint=fingerprint)) is not None:
        return stored
    status_code, body = create()
    try:
        # PostgreSQL reports the duplicate here (after the winner commits), SQLite at commit.
        session.execute(insert(table).values(
            principal=principal, key=key, fingerprint=fingerprint, status_code=status_code,
            response_body=json.dumps(body, default=str), created_at=datetime.now(UTC)))
        session.commit()
    except IntegrityError:
        session.rollback()
        stored = find_replay(session, table, principal=principal, key=key,
                             fingerprint=fingerprint)
        if stored is None:
            raise
        return stored
    return StoredResponse(status_code, body, replayed=False)


IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass
class Idempotency:
    """A create request's session and optional `Idempotency-Key`, ready to run the create."""

    session: Session
    table: Table
    principal: str
    key: str | None
    fingerprint: str

    def replay(self) -> JSONResponse | None:
        """The stored answer to this key, if any, so a slow create (a solve) is not redone.

        Its transaction ends here, so no lock is held while the caller does slow work."""
        if self.key is None:
            return None
        stored = find_replay(self.session, self.table, principal=self.principal, key=self.key,
                             fingerprint=self.fingerprint)
        self.session.rollback()
        if stored is None:
            return None
        return JSONResponse(stored.body, status_code=stored.status_code,
                            headers={REPLAYED_HEADER: "true"})

    def create(self, create: Callable[[], Any], *, status_code: int = 201) -> JSONResponse:
        """Run `create` (stages rows, returns the answer) and commit; once per key."""
        def staged() -> tuple[int, Any]:
            return status_code, jsonable_encoder(create())

        if self.key is None:
            status, body = staged()
            self.session.commit()
            return JSONResponse(body, status_code=status)
        stored = run_once(self.session, self.table, principal=self.principal, key=self.key,
                          fingerprint=self.fingerprint, create=staged)
        headers = {REPLAYED_HEADER: "true"} if stored.replayed else None
        return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


def idempotency_dependency(table: Table):
    """A dependency giving create routes an `Idempotency` on the service's own `table`."""
    async def dependency(request: Request,
                         session: Session = Depends(get_write_session)) -> Idempotency:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not 1 <= len(key) <= 255:
            raise UnprocessableContent(
                "Idempotency-Key must be 1 to 255 characters; a UUID is a good choice.",
                errors=[{"in": "header", "field": IDEMPOTENCY_HEADER,
                         "detail": "1 to 255 characters", "type": "value_error"}])
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("latin-1")
        return Idempotency(session=session, table=table, principal=request.state.caller.principal,
                           key=key, fingerprint=fingerprint(request.method, str(request.url.path)
                                                            + "?" + request.url.query, body))
    return Depends(dependency)
