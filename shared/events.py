"""Consuming the calendar's event feed: a durable cursor, each event applied exactly once.

A consumer (budget, planner) keeps one row in its own database: the id of the last event it
applied, and a lease. Each event is applied in one transaction together with the advance of
that cursor, so an event is never applied twice nor skipped, whatever crashes in between: a
redelivered event is behind the cursor and changes nothing; an event whose transaction rolled
back is fetched again. With several processes of one service, only the lease holder applies
events; a holder that dies loses the lease when it lapses and another process takes over.
Before each event the holder re-checks, inside the event's transaction, that it still holds the
lease and that the cursor is where it left it, so even a paused holder that lost its lease
cannot apply an event a second time.
"""
import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlmodel import Session

from shared.client import ServiceClient
from shared.db import write_engine

logger = logging.getLogger("marketplan.events")

TABLE_NAME = "event_consumer"
EVENTS_PATH = "/api/v1/calendar/events"


def consumer_table(metadata: MetaData) -> Table:
    """Define the consumer's cursor-and-lease table on a service's own metadata."""
    return Table(
        TABLE_NAME, metadata,
        Column("name", String(50), primary_key=True),
        Column("cursor", String(100), nullable=True),
        Column("holder", String(200), nullable=True),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("applied", BigInteger, nullable=False, default=0),
        Column("applied_at", DateTime(timezone=True), nullable=True),
        Column("pending", BigInteger, nullable=False, default=0),
        Column("oldest_pending_at", DateTime(timezone=True), nullable=True),
        Column("last_error", Text, nullable=True),
        Column("last_error_at", DateTime(timezone=True), nullable=True),
    )


@dataclass(frozen=True)
class Event:
    """One change the calendar committed, as its feed serves it."""
    id: str
    type: str
    campaign_id: str | None
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> "Event":
        return cls(id=item["id"], type=item["type"], campaign_id=item.get("campaign_id"),
                   occurred_at=datetime.fromisoformat(item["occurred_at"]),
                   data=item.get("data") or {})


class SyncStatus(BaseModel):
    """How far this service has applied the calendar's events."""
    consumer: str
    cursor: str | None
    applied: int
    applied_at: datetime | None
    pending: int
    lag_seconds: float
    holder: str | None
    lease_until: datetime | None
    last_error: str | None
    last_error_at: datetime | None


Apply = Callable[[Session, Event], None]
# Brings the service's copy of every campaign it follows up to the calendar's current state;
# called when the events since the cursor are no longer kept, in the transaction that moves
# the cursor past them.
Resync = Callable[[Session], None]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(instant: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns: they were written in UTC.
    if instant is not None and instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant


class LeaseLost(Exception):
    """Another process holds the lease, or moved the cursor: this one must stop applying."""


class _PartlyApplied(Exception):
    """A page's events were applied up to `applied`, then `error` stopped the next one."""

    def __init__(self, applied: int, error: Exception):
        super().__init__(str(error))
        self.applied, self.error = applied, error


class FeedRestarted(Exception):
    """The feed no longer holds the events after the cursor (retention, or a restored
    calendar): the consumer must resync from current state and go on from `restart_at`."""

    def __init__(self, detail: str, restart_at: str):
        super().__init__(detail)
        self.restart_at = restart_at


class EventConsumer:
    """Applies the calendar's events to one service's database, once each, in feed order."""

    def __init__(self, *, name: str, engine: Engine, table: Table, calendar: ServiceClient,
                 apply: Apply, resync: Resync | None = None, poll_seconds: float = 0.5,
                 lease_seconds: float = 10.0, batch: int = 100):
        self.name = name
        self.engine = write_engine(engine)
        self.table = table
        self.calendar = calendar
        self.apply = apply
        self.resync = resync
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        self._last_error: str | None = None
        self._stopping = threading.Event()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _row(self, session: Session, *, lock: bool = False) -> Any:
        query = select(self.table).where(self.table.c.name == self.name)
        if lock:
            query = query.with_for_update()
        row = session.execute(query).first()
        if row is None:
            session.execute(insert(self.table).values(name=self.name, applied=0, pending=0))
            session.flush()
            row = session.execute(query).first()
        return row

    def acquire_lease(self) -> bool:
        """Take or renew the lease; False while another live process holds it."""
        with Session(self.engine) as session:
            row = self._row(session, lock=True)
            now = _now()
            lease_until = _aware(row.lease_until)
            if row.holder not in (None, self.holder) and lease_until and lease_until > now:
                session.rollback()
                return False
            session.execute(update(self.table).where(self.table.c.name == self.name)
                            .values(holder=self.holder, lease_until=now + self.lease))
            session.commit()
            return True

    def release_lease(self) -> None:
        """Give the lease up at shutdown, so another process need not wait for it to lapse."""
        with Session(self.engine) as session:
            session.execute(update(self.table).where(self.table.c.name == self.name,
                                                     self.table.c.holder == self.holder)
                            .values(holder=None, lease_until=None))
            session.commit()

    def cursor(self) -> str | None:
        with Session(self.engine) as session:
            cursor: str | None = self._row(session).cursor
            session.commit()
            return cursor

    def fetch(self, cursor: str | None) -> tuple[list[Event], bool]:
        """The next events after `cursor`, and whether more are waiting behind them."""
        params: dict[str, Any] = {"limit": self.batch}
        if cursor is not None:
            params["after"] = cursor
        response = self.calendar.request("GET", EVENTS_PATH, params=params)
        if response.status_code == 410:
            problem = response.json()
            restart_at = problem.get("pruned_through") or problem.get("last")
            if restart_at is not None:
                raise FeedRestarted(problem.get("detail", "events gone"), str(restart_at))
        if response.status_code != 200:
            raise RuntimeError(f"the calendar's event feed answered {response.status_code}: "
                               f"{response.text[:300]}")
        body = response.json()
        events = [Event.from_json(item) for item in body["items"]]
        return events, body.get("next_cursor") is not None and len(events) == self.batch

    def apply_page(self, events: list[Event], expected_cursor: str | None) -> None:
        """Apply `events` and move the cursor past the last, in one transaction: a bulk of
        thousands of events is a few transactions, not one per event."""
        with Session(self.engine) as session:
            row = self._row(session, lock=True)
            if row.holder != self.holder or row.cursor != expected_cursor:
                session.rollback()
                raise LeaseLost(f"{self.name}: the lease or the cursor moved under this process")
            for event in events:
                self.apply(session, event)
            session.execute(update(self.table).where(self.table.c.name == self.name).values(
                cursor=events[-1].id, applied=self.table.c.applied + len(events),
                applied_at=_now(), last_error=None, last_error_at=None))
            session.commit()

    def _apply_events(self, events: list[Event], cursor: str | None) -> int:
        """Apply a page; if it fails as a whole, one event per transaction, so that those
        before the failing one are applied and it alone is rolled back (and retried at the
        next poll). Return how many were applied; raise _PartlyApplied on a failure."""
        try:
            self.apply_page(events, cursor)
            return len(events)
        except LeaseLost as lost:
            raise _PartlyApplied(0, lost) from lost
        except Exception:
            pass
        for count, event in enumerate(events):
            try:
                self.apply_page([event], cursor)
            except Exception as error:
                raise _PartlyApplied(count, error) from error
            cursor = event.id
        return len(events)

    def restart(self, restarted: FeedRestarted, expected_cursor: str | None) -> None:
        """Resync from current state and move the cursor to where the feed starts again."""
        if self.resync is None:
            raise RuntimeError(f"{restarted} (this consumer cannot resync by itself)")
        with Session(self.engine) as session:
            row = self._row(session, lock=True)
            if row.holder != self.holder or row.cursor != expected_cursor:
                session.rollback()
                raise LeaseLost(f"{self.name}: the lease or the cursor moved under this process")
            self.resync(session)
            session.execute(update(self.table).where(self.table.c.name == self.name).values(
                cursor=restarted.restart_at, last_error=None, last_error_at=None))
            session.commit()
        logger.warning("%s: %s; resynced and restarted the feed at %s", self.name, restarted,
                       restarted.restart_at)

    def _note_backlog(self, events: list[Event], more: bool) -> None:
        with Session(self.engine) as session:
            self._row(session)
            session.execute(update(self.table).where(self.table.c.name == self.name).values(
                pending=len(events) + (self.batch if more else 0),
                oldest_pending_at=events[0].occurred_at if events else None))
            session.commit()

    def _note_error(self, error: Exception) -> None:
        with Session(self.engine) as session:
            self._row(session)
            session.execute(update(self.table).where(self.table.c.name == self.name).values(
                last_error=f"{type(error).__name__}: {error}"[:2000], last_error_at=_now()))
            session.commit()

    def poll_once(self) -> int:
        """Apply every event waiting on the feed (while holding the lease); return how many."""
        applied = 0
        try:
            while not self._stopping.is_set() and self.acquire_lease():
                cursor = self.cursor()
                try:
                    events, more = self.fetch(cursor)
                except FeedRestarted as restarted:
                    self.restart(restarted, cursor)
                    continue
                self._note_backlog(events, more)
                applied += self._apply_events(events, cursor) if events else 0
                self._note_backlog([], False)
                if not more:
                    break
        except _PartlyApplied as partly:
            applied += partly.applied
            self._failed(partly.error)
        except Exception as error:  # kept visible at /sync and retried at the next poll
            self._failed(error)
        else:
            self._last_error = None
        return applied

    def _failed(self, error: Exception) -> None:
        if isinstance(error, LeaseLost):
            logger.info("%s", error)
            return
        message = f"{type(error).__name__}: {error}"
        # One traceback per new error, not one every poll while the calendar is down.
        logger.warning("applying calendar events failed: %s", message,
                       exc_info=error if message != self._last_error else None)
        self._last_error = message
        try:
            self._note_error(error)
        except Exception as unrecorded:  # the database itself is out of reach or unmigrated
            logger.warning("could not record the event consumer's error: %s", unrecorded)

    async def run(self) -> None:
        """Poll the feed until cancelled (the service's lifespan owns this task)."""
        polling: asyncio.Task[int] | None = None
        try:
            while True:
                polling = asyncio.create_task(asyncio.to_thread(self.poll_once))
                await asyncio.shield(polling)
                await asyncio.sleep(self.poll_seconds)
        finally:
            # A cancelled await leaves its thread running: it ends after the page it is on,
            # before the lease is given up, so it cannot take the lease back afterwards nor
            # use the clients the lifespan closes next.
            self._stopping.set()
            if polling is not None:
                await asyncio.wait([polling])
            await asyncio.to_thread(self.release_lease)

    def status(self) -> SyncStatus:
        """The cursor, the backlog and the last error, for `GET /api/v1/<service>/sync`."""
        with Session(self.engine) as session:
            row = self._row(session)
            session.commit()
        oldest = _aware(row.oldest_pending_at)
        lag = (_now() - oldest).total_seconds() if oldest and row.pending else 0.0
        return SyncStatus(consumer=row.name, cursor=row.cursor, applied=row.applied,
                          applied_at=_aware(row.applied_at), pending=row.pending,
                          lag_seconds=max(lag, 0.0), holder=row.holder,
                          lease_until=_aware(row.lease_until), last_error=row.last_error,
                          last_error_at=_aware(row.last_error_at))
