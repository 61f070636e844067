"""The event consumer: each calendar event applied once, in order, by one process at a time."""
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlmodel import Session

from shared.client import ServiceClient
from shared.db import create_db_engine, service_registry
from shared.events import EventConsumer, LeaseLost, consumer_table
from shared.settings import DatabaseSettings
from tests.shared.held import Held

metadata = service_registry().metadata
cursors = consumer_table(metadata)
effects = Table("effect", metadata, Column("event_id", String(100), primary_key=True),
                Column("position", Integer, nullable=False))


class Feed:
    """The calendar's feed contract (`after`, `limit` → `items`, `next_cursor`) over a list."""

    def __init__(self, count: int):
        self.events = [{"id": f"ev{i:04d}", "type": "milestone.moved", "campaign_id": "cmp1",
                        "occurred_at": datetime(2027, 1, 1, tzinfo=UTC).isoformat(),
                        "data": {"position": i}} for i in range(1, count + 1)]
        self.calls = 0
        self.pruned_through: str | None = None     # events up to this id are no longer kept

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        after, limit = request.url.params.get("after"), int(request.url.params["limit"])
        if self.pruned_through is not None and (after or "") < self.pruned_through:
            return httpx.Response(410, json={"status": 410, "detail": "no longer kept",
                                             "pruned_through": self.pruned_through})
        start = 0 if after is None else [e["id"] for e in self.events].index(after) + 1
        page = self.events[start:start + limit]
        more = start + limit < len(self.events)
        return httpx.Response(200, json={"items": page,
                                         "next_cursor": page[-1]["id"] if more else None})


@pytest.fixture
def engine(database_url):
    engine = create_db_engine(DatabaseSettings(database_url=database_url, port=1))
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def consumer(engine, feed: Feed, *, failing: set[int] = frozenset(), lease_seconds: float = 10.0,
             batch: int = 4, resync=None) -> EventConsumer:
    def apply(session: Session, event) -> None:
        position = event.data["position"]
        session.execute(insert(effects).values(event_id=event.id, position=position))
        if position in failing:
            raise RuntimeError(f"cannot apply event {position}")

    client = ServiceClient(name="calendar", base_url="http://calendar", secret=b"s" * 32,
                           caller_service="test", transport=httpx.MockTransport(feed.handle))
    return EventConsumer(name="calendar", engine=engine, table=cursors, calendar=client,
                         apply=apply, resync=resync, lease_seconds=lease_seconds, batch=batch)


def applied(engine) -> list[int]:
    with Session(engine) as session:
        return list(session.execute(select(effects.c.position).order_by(effects.c.position))
                    .scalars())


def test_every_event_is_applied_once_in_order_across_pages(engine):
    worker = consumer(engine, Feed(10))
    assert worker.poll_once() == 10          # three pages of 4, 4 and 2
    assert worker.poll_once() == 0           # nothing new: a poll applies nothing
    assert applied(engine) == list(range(1, 11))
    status = worker.status()
    assert (status.cursor, status.applied, status.pending, status.last_error) == \
        ("ev0010", 10, 0, None)


def test_new_events_are_picked_up_after_the_cursor(engine):
    feed = Feed(3)
    worker = consumer(engine, feed)
    worker.poll_once()
    feed.events += Feed(5).events[3:]
    assert worker.poll_once() == 2
    assert applied(engine) == [1, 2, 3, 4, 5]


def test_a_failing_event_rolls_back_alone_and_is_retried(engine):
    feed, failing = Feed(6), {4}
    worker = consumer(engine, feed, failing=failing)
    assert worker.poll_once() == 3
    # Event 4's own effect was rolled back with its cursor move: nothing half-applied.
    assert applied(engine) == [1, 2, 3]
    assert worker.poll_once() == 0       # still failing: retried, not skipped
    status = worker.status()
    assert status.cursor == "ev0003" and "cannot apply event 4" in status.last_error
    failing.clear()
    assert worker.poll_once() == 3
    assert applied(engine) == [1, 2, 3, 4, 5, 6]
    assert worker.status().last_error is None


def test_a_restarted_consumer_continues_from_its_stored_cursor(engine):
    feed = Feed(5)
    consumer(engine, feed, batch=2, lease_seconds=0.2).poll_once()
    feed.events += Feed(8).events[5:]
    # A new process (a new holder) on the same database after the first died without
    # releasing its lease: once the lease lapses it goes on where the first stopped.
    restarted = consumer(engine, feed)
    assert restarted.poll_once() == 0
    time.sleep(0.3)
    assert restarted.poll_once() == 3
    assert applied(engine) == list(range(1, 9))


def test_only_the_lease_holder_applies(engine):
    feed = Feed(3)
    holder, other = consumer(engine, feed), consumer(engine, feed)
    assert holder.acquire_lease()
    assert not other.acquire_lease()
    assert other.poll_once() == 0
    assert holder.poll_once() == 3
    assert applied(engine) == [1, 2, 3]


def test_a_holder_that_lost_its_lease_cannot_apply_again(engine):
    feed = Feed(4)
    slow = consumer(engine, feed, lease_seconds=0.2)
    assert slow.acquire_lease()
    cursor = slow.cursor()
    time.sleep(0.3)                      # the slow process pauses past its lease
    taker = consumer(engine, feed)
    assert taker.poll_once() == 4
    first_event = taker.fetch(cursor)[0][0]
    with pytest.raises(LeaseLost):
        slow.apply_page([first_event], cursor)
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(effects)).scalar_one() == 4


def test_events_no_longer_kept_make_the_consumer_resync_and_go_on(engine):
    feed, resyncs = Feed(8), []
    worker = consumer(engine, feed, resync=lambda session: resyncs.append("resync"))
    assert worker.poll_once() == 8
    feed.events += Feed(12).events[8:]
    feed.pruned_through = "ev0010"           # 9 and 10 were pruned before this consumer saw them
    assert worker.poll_once() == 2           # resynced from current state, then 11 and 12
    assert resyncs == ["resync"]
    assert applied(engine) == [1, 2, 3, 4, 5, 6, 7, 8, 11, 12]
    assert worker.status().last_error is None


def test_without_a_resync_a_gone_feed_is_an_error_kept_for_sync(engine):
    feed = Feed(3)
    feed.pruned_through = "ev0002"
    worker = consumer(engine, feed)
    assert worker.poll_once() == 0
    assert "cannot resync" in worker.status().last_error


def test_a_stop_during_a_poll_ends_its_page_then_gives_the_lease_up(engine):
    """Cancelling the polling task does not stop its thread: the page in flight is finished,
    no further page is taken, and the lease is given up only after that, for good."""
    feed = Feed(12)
    feed.handle = held = Held(feed.handle)  # type: ignore[method-assign]
    held.cancel_inside(consumer(engine, feed).run)
    time.sleep(0.3)     # room for a thread left running to go on, as it did before
    assert applied(engine) == [1, 2, 3, 4]
    assert consumer(engine, feed).status().holder is None
