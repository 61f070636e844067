"""Idempotency-Key storage: a replayed create returns the first response, once per caller."""
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

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
