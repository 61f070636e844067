"""The budget applies the calendar's events a page per transaction: a bulk of thousands is
applied in a few transactions, each event once, in order; an event that fails is rolled back
alone (the events before it are applied, it is retried at the next poll), and a cursor moved by
another process stops it."""
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event, select, update
from sqlmodel import Session

from services.budget.app import MIGRATIONS
from services.budget.config import BudgetSettings
from services.budget.ledger.tables import LinkedCampaign, event_consumer
from services.budget.propagation import PAGE, BudgetConsumer
from shared.db import create_db_engine
from shared.events import Event
from tests.conftest import TEST_SECRET, migrated_database

LINKED = "cmp_linked"
# 1,234 events: 123 bulk-created campaigns no budget links, 10 events each, and four about a
# campaign a budget links, in the second page.
EVENTS = [{"id": f"{n + 1:08d}", "type": "milestone.created",
           "campaign_id": LINKED if n in (600, 700, 800, 900) else f"cmp_bulk_{n // 10}",
           "occurred_at": datetime.now(UTC).isoformat(), "data": {}} for n in range(1234)]


class Feed:
    """The calendar as the consumer calls it: its event feed and the linked campaign."""

    def __init__(self, on_fetch=None):
        self.on_fetch = on_fetch

    def request(self, method: str, path: str, params: dict[str, Any] | None = None):
        if path.startswith("/api/v1/calendar/campaigns/"):
            return httpx.Response(200, json={"id": LINKED, "name": "Renamed", "status": "planned",
                                             "start_date": "2027-01-04",
                                             "end_date": "2027-02-26"})
        if self.on_fetch is not None:
            self.on_fetch()
        assert params is not None
        start = int(params.get("after") or 0)
        items = EVENTS[start:start + params["limit"]]
        full = len(items) == params["limit"]
        return httpx.Response(200, json={"items": items,
                                         "next_cursor": items[-1]["id"] if full else None})


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path_factory):
    database_url = migrated_database(request, tmp_path_factory, MIGRATIONS, request.param)
    made = create_db_engine(BudgetSettings(database_url=database_url,
                                           internal_secret=TEST_SECRET))
    with Session(made) as session:
        session.add(LinkedCampaign(campaign_id=LINKED, name="Before", status="draft",
                                   synced_at=datetime.now(UTC)))
        session.commit()
    yield made
    made.dispose()


def consumer(engine, feed: Feed) -> BudgetConsumer:
    return BudgetConsumer(engine=engine, calendar=feed, poll_seconds=0.5,  # type: ignore[arg-type]
                          lease_seconds=10)


def linked_name(engine) -> str:
    with Session(engine) as session:
        row = session.get(LinkedCampaign, LINKED)
        assert row is not None
        return row.name


@pytest.fixture
def commits(engine) -> Iterator[list[int]]:
    counted: list[int] = []
    listener = lambda _connection: counted.append(1)  # noqa: E731
    event.listen(engine, "commit", listener)
    yield counted
    event.remove(engine, "commit", listener)


def test_a_bulk_is_applied_in_a_few_transactions_each_event_once(engine, commits):
    budget = consumer(engine, Feed())
    assert budget.poll_once() == len(EVENTS)
    status = budget.status()
    assert (status.cursor, status.applied, status.pending, status.last_error) == (
        EVENTS[-1]["id"], len(EVENTS), 0, None)
    assert linked_name(engine) == "Renamed"
    # Per page: the lease, the cursor, the backlog before and after, and the page itself;
    # one transaction per event would be 1,234 and more.
    pages = -(-len(EVENTS) // PAGE)
    assert len(commits) <= 5 * pages + 2
    assert budget.poll_once() == 0 and budget.status().applied == len(EVENTS)


def test_an_event_that_fails_is_rolled_back_alone_and_retried(engine):
    budget = consumer(engine, Feed())
    apply = budget.apply

    def failing(session: Session, event_: Event) -> None:
        apply(session, event_)
        if event_.id == EVENTS[950]["id"]:   # after the linked campaign's events of its page
            raise RuntimeError("a bad event")

    budget.apply = failing
    assert budget.poll_once() == 950           # every event before the failing one
    status = budget.status()
    assert (status.cursor, status.applied) == (EVENTS[949]["id"], 950)
    assert status.last_error == "RuntimeError: a bad event"
    assert linked_name(engine) == "Renamed"    # its page's earlier events were applied
    assert budget.poll_once() == 0             # still failing: retried, not skipped
    assert budget.status().cursor == EVENTS[949]["id"]
    budget.apply = apply
    assert budget.poll_once() == len(EVENTS) - 950
    status = budget.status()
    assert (status.cursor, status.applied, status.last_error) == (
        EVENTS[-1]["id"], len(EVENTS), None)
    assert linked_name(engine) == "Renamed"


def test_a_cursor_moved_by_another_process_stops_the_page(engine):
    moved = "00000007"

    def another_process_moves_the_cursor() -> None:
        with engine.begin() as connection:
            connection.execute(update(event_consumer).values(cursor=moved))

    budget = consumer(engine, Feed(on_fetch=another_process_moves_the_cursor))
    assert budget.poll_once() == 0
    with create_engine(engine.url).connect() as connection:
        row = connection.execute(select(event_consumer)).one()
    assert (row.cursor, row.applied) == (moved, 0)
    assert linked_name(engine) == "Before"
