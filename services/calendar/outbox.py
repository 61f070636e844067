"""The calendar's event feed: a transactional outbox served in commit order.

Every use case that changes a campaign stages its events with `publish` in its own
transaction, so no change is without its event and no event without its change. Positions
come from the one-row `event_sequence` counter (see `models.EventSequence`), so they follow
commit order on PostgreSQL too, and the feed is a growing list read with `after=<id>`.

The contract a consumer (`shared/events.py`) relies on:
- `GET /api/v1/calendar/events?after=<id>&limit=<n>&campaign_id=<id>` answers
  `{"items": [{"id", "type", "campaign_id", "occurred_at", "data"}], "next_cursor"}`, oldest
  first; an event's `id` (a decimal string) is itself a valid `after`;
- `next_cursor` is the last item's id when the page is full (more may follow), else null;
- a reader never sees an event appear behind one it already read;
- events are kept `CALENDAR_EVENT_RETENTION_DAYS`; an `after` older than what is kept (or
  ahead of the feed, after a restore) is a 410: the consumer must start over from the
  services' current state and then follow the feed from its newest event.
"""
import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import Engine, delete, func, update
from sqlmodel import Session, col, select

from services.calendar.models import CalendarEvent, EventSequence, utcnow
from shared.db import write_engine
from shared.errors import Problem, invalid_fields

logger = logging.getLogger("marketplan.calendar.events")

SEQUENCE_ID = 1


class Gone(Problem):
    status, slug, title = 410, "events-gone", "Events no longer kept"


@dataclass(frozen=True)
class NewEvent:
    """A change to report: its type, the campaign it concerns and what changed."""

    type: str
    campaign_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


class EventPublic(BaseModel):
    id: str
    type: str
    campaign_id: str | None
    occurred_at: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None = None


def publish(session: Session, events: Sequence[NewEvent]) -> None:
    """Stage `events` at the next feed positions in the caller's transaction (no commit).

    Called last before the commit: the counter's row stays locked until then, and every
    other writer of events waits for it."""
    if not events:
        return
    last: int = session.execute(update(EventSequence).where(col(EventSequence.id) == SEQUENCE_ID)
                           .values(last=col(EventSequence.last) + len(events))
                           .returning(col(EventSequence.last))
                           .execution_options(synchronize_session=False)).scalar_one()
    now = utcnow()
    session.add_all(CalendarEvent(position=last - len(events) + i, type=event.type,
                                  campaign_id=event.campaign_id, occurred_at=now,
                                  data=jsonable_encoder(event.data))
                    for i, event in enumerate(events, start=1))


def last_position(session: Session) -> int:
    """The last position given out: it names the calendar's state, since every change takes
    the next one in its own transaction (feeds' ETags and kept answers are keyed by it)."""
    return session.exec(select(EventSequence.last).where(EventSequence.id == SEQUENCE_ID)).one()


def _position(after: str) -> int:
    if not after.isascii() or not after.isdigit() or len(after) > 18:
        raise invalid_fields([("after", "give the id of an event this feed served (a decimal "
                                        "number), or leave `after` out to read from the "
                                        "oldest event kept")], where="query")
    return int(after)


def read_events(*, session: Session, after: str | None, limit: int,
                campaign_id: str | None) -> EventPage:
    """The events after `after` in commit order (410 when `after` is no longer kept)."""
    sequence = session.get_one(EventSequence, SEQUENCE_ID)
    statement = select(CalendarEvent)
    if after is not None:
        position = _position(after)
        if position < sequence.pruned_through:
            raise Gone(f"Events up to {sequence.pruned_through} are no longer kept (retention); "
                       f"event {after} is among them. Start over: read the current state, then "
                       "follow the feed from its newest event.",
                       pruned_through=str(sequence.pruned_through))
        if position > sequence.last:
            raise Gone(f"Event {after} is ahead of this feed (its newest is {sequence.last}): "
                       "the calendar's database was restored. Start over: read the current "
                       "state, then follow the feed from its newest event.",
                       last=str(sequence.last))
        statement = statement.where(col(CalendarEvent.position) > position)
    if campaign_id is not None:
        statement = statement.where(CalendarEvent.campaign_id == campaign_id)
    rows = session.exec(statement.order_by(col(CalendarEvent.position)).limit(limit)).all()
    items = [EventPublic(id=str(row.position), type=row.type, campaign_id=row.campaign_id,
                         occurred_at=row.occurred_at, data=row.data) for row in rows]
    return EventPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


def prune_events(*, session: Session, before: datetime) -> int:
    """Delete the events that occurred before `before`; return how many went.

    Positions, not clocks, order the feed, so everything up to the newest such event goes,
    and `pruned_through` remembers where the kept feed starts."""
    through = session.exec(select(func.max(CalendarEvent.position))
                           .where(CalendarEvent.occurred_at < before)).one()
    if through is None:
        session.rollback()
        return 0
    deleted = session.exec(select(func.count()).where(col(CalendarEvent.position) <= through)
                           ).one()
    session.execute(delete(CalendarEvent).where(col(CalendarEvent.position) <= through))
    session.execute(update(EventSequence).where(col(EventSequence.id) == SEQUENCE_ID,
                                                col(EventSequence.pruned_through) < through)
                    .values(pruned_through=through))
    session.commit()
    return int(deleted)


async def prune_forever(engine: Engine, *, retention_days: int, interval_seconds: float) -> None:
    """Apply the retention now and every `interval_seconds` (the app's lifespan owns this)."""
    def once() -> None:
        with Session(write_engine(engine)) as session:
            gone = prune_events(session=session,
                                before=utcnow() - timedelta(days=retention_days))
        if gone:
            logger.info("pruned %d calendar events older than %d days", gone, retention_days)

    while True:
        try:
            await asyncio.to_thread(once)
        except Exception as error:  # retried at the next interval; the feed keeps serving
            logger.warning("pruning calendar events failed: %s", error, exc_info=error)
        await asyncio.sleep(interval_seconds)
