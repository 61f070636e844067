"""Calendar changes reaching the budget: the consumer of the calendar's event feed.

For each event about a campaign a budget links, the budget keeps what it shows of the campaign
(name, status, dates, objective, phases) as the calendar reports it now; when that changed,
every budget linking the campaign gets a new version (its representation, and so its ETag,
changed). A funded campaign's money is phased over the phases kept here when it is read, so a
`phase.changed`, `milestone.moved` or `campaign.updated` that moves the phases re-phases its
funding. `campaign.deleted` (a draft removed) drops the campaign's links and funding in every
budget, with an audit entry in each; applied again it finds nothing left to drop. Events about
other campaigns are skipped, and still move the cursor past them.

Why the current state and not the event's own data: one path covers every event type, an event
applied again finds the state already stored and changes nothing, and an old event applied
after newer ones can never bring an older state back. The states are read over HTTP once per
batch, before the events' transactions: a transaction holding SQLite's write lock never waits
on the network.

A page of events is applied in one transaction with the cursor's move past its last event.
One transaction per event cost 7.8 ms (SQLite) and 11.9 ms (PostgreSQL) an event at load
11-23, nearly all of it the transaction, so a bulk create of 300 campaigns (3,000 events) kept
the budget 25-40 s behind; most such events are about campaigns no budget links and change
nothing here. A page is still all or nothing: an event that fails rolls the page back, and
the next poll fetches it again from the cursor.
"""
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from services.budget.ledger import audit, campaigns
from services.budget.ledger.tables import event_consumer, utcnow
from shared.client import ServiceClient
from shared.events import Event, EventConsumer
from shared.internal_auth import Caller

CONSUMER_NAME = "calendar"
# The most the calendar's feed serves per page: fewer fetches and bookkeeping transactions.
PAGE = 500
# Who the audit log names for changes the calendar's events make.
CALENDAR = Caller(principal="service:calendar", role="service")
DELETED = "campaign.deleted"


def drop_deleted(session: Session, event: Event) -> None:
    """Stage the removal of a campaign the calendar deleted, from every budget."""
    assert event.campaign_id is not None
    for budget in campaigns.drop(session, event.campaign_id):
        audit.record(session, budget_id=budget.id, caller=CALENDAR, action=DELETED,
                     target=event.campaign_id, changes={
                         "event_id": event.id, "campaign_ids": budget.campaign_ids,
                         "detail": "the calendar deleted the campaign: its link and funding "
                                   "are gone"})


def apply_event(session: Session, event: Event, state: dict[str, Any]) -> None:
    """Stage the campaign's current `state` (read after `event`) in the budget."""
    if not campaigns.store(session, state, event_id=event.id):
        return
    for budget in campaigns.budgets_linking(session, state["id"]):
        budget.version += 1
        budget.updated_at = utcnow()
        session.add(budget)


class BudgetConsumer(EventConsumer):
    """The shared consumer, reading the linked campaigns a page is about before applying it
    (pages of PAGE events: a bulk of template campaigns is thousands)."""

    def __init__(self, *, engine: Engine, calendar: ServiceClient, poll_seconds: float, lease_seconds: float):
        super().__init__(name=CONSUMER_NAME, engine=engine, table=event_consumer,
                         calendar=calendar, apply=self._apply, poll_seconds=poll_seconds,
                         lease_seconds=lease_seconds, batch=PAGE)
        self.read_engine = engine
        self._states: dict[str, dict[str, Any]] = {}

    def fetch(self, cursor: str | None) -> tuple[list[Event], bool]:
        """The next events, with the current state of each linked campaign they are about."""
        events, more = super().fetch(cursor)
        with Session(self.read_engine) as session:
            ids = campaigns.linked(session, {e.campaign_id for e in events if e.campaign_id})
        # Read after the events, so each state includes at least the changes they report.
        # A campaign the calendar no longer knows keeps its last known state.
        states = {i: campaigns.fetch_campaign(self.calendar, i) for i in sorted(ids)}
        self._states = {i: state for i, state in states.items() if state is not None}
        return events, more

    def _apply(self, session: Session, event: Event) -> None:
        if event.type == DELETED and event.campaign_id:
            drop_deleted(session, event)
            return
        state = self._states.get(event.campaign_id or "")
        if state is not None:
            apply_event(session, event, state)
