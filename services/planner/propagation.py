"""Calendar changes reaching the planner: the consumer of the calendar's event feed.

For each event about a campaign the planner has tasks for, the campaign's generated tasks are
brought in line with its milestones as the calendar reports them now, its status is kept (a
cancelled or completed campaign's unstarted tasks leave the next schedule), and every stored
schedule containing the campaign is marked stale by that event when anything it was made from
changed.

Why the current state and not the event's own data: one path covers every event type
(creations, moves, cascades, deletions, campaign dates, market, priority, status), and it makes
applying an event again change nothing. An event re-applied finds the tasks already matching
the calendar, so it changes no task and marks no schedule; an old event applied after newer
changes brings the tasks to the newest state, never back to an older one. The states are read
over HTTP once per batch, before the events' transactions: a transaction that holds SQLite's
write lock never waits on the network.

`campaign.deleted` (a draft removed) is the one event applied from itself: the calendar no
longer knows the campaign. Its generated tasks that have not started go, with what the planner
kept of it, and the schedules containing it are marked stale; applied again, it finds nothing
left to remove and marks nothing.
"""
import logging
from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from services.planner import schedules
from services.planner.models import CampaignState, Task, event_consumer, utcnow
from services.planner.resources import templates
from services.planner.tasks import TaskChanges, fetch_campaign, follow_milestones
from shared.client import ServiceClient
from shared.events import Event, EventConsumer
from shared.workers import WorkerPool

logger = logging.getLogger("marketplan.planner")

CONSUMER_NAME = "calendar"
DELETED = "campaign.deleted"


def followed(session: Session, campaign_ids: set[str]) -> set[str]:
    """The campaigns among these that the planner has tasks or a stored state for."""
    if not campaign_ids:
        return set()
    with_tasks = session.exec(select(Task.campaign_id).distinct()
                              .where(col(Task.campaign_id).in_(campaign_ids))).all()
    with_state = session.exec(select(CampaignState.campaign_id)
                              .where(col(CampaignState.campaign_id).in_(campaign_ids))).all()
    return {c for c in (*with_tasks, *with_state) if c is not None}


def _detail(status: str, closed_now: bool, changes: TaskChanges) -> str:
    if closed_now:
        return (f"campaign {status}: its tasks that have not started leave the next schedule; "
                + changes.summary())
    return changes.summary()


def apply_event(session: Session, event: Event, campaign: dict[str, Any]) -> list[str]:
    """Stage what the campaign's current state (read after `event`) changes in the planner;
    return the ids of the schedules it newly marked stale."""
    state = session.get(CampaignState, campaign["id"])
    was_closed = state is not None and state.status in schedules.CLOSED
    if state is None:
        state = CampaignState(campaign_id=campaign["id"], status=campaign["status"])
    changes = TaskChanges()
    if state.generated:
        changes = follow_milestones(session, campaign, templates(session))[1]
    closed_now = campaign["status"] in schedules.CLOSED and not was_closed
    state.sqlmodel_update({"status": campaign["status"], "synced_at": utcnow()})
    session.add(state)
    if not changes and not closed_now:
        return []
    return schedules.mark_stale(session, campaign_id=campaign["id"], event_id=event.id,
                                event_type=event.type, occurred_at=event.occurred_at,
                                detail=_detail(campaign["status"], closed_now, changes))


def apply_deletion(session: Session, event: Event, campaign_id: str) -> list[str]:
    """Stage the removal of the deleted campaign's unstarted generated tasks and its state;
    return the ids of the schedules it newly marked stale."""
    state = session.get(CampaignState, campaign_id)
    # Started work and hand-made tasks stay: someone did or decided that work.
    tasks = session.exec(select(Task).where(Task.campaign_id == campaign_id,
                                            col(Task.milestone_id).is_not(None),
                                            col(Task.start).is_(None))).all()
    if state is None and not tasks:
        return []
    for task in tasks:
        session.delete(task)
    if state is not None:
        session.delete(state)
    session.flush()
    removed = TaskChanges(removed=tuple(sorted(t.id for t in tasks)))
    return schedules.mark_stale(session, campaign_id=campaign_id, event_id=event.id,
                                event_type=event.type, occurred_at=event.occurred_at,
                                detail=f"campaign deleted: {removed.summary()}")


class PlannerConsumer(EventConsumer):
    """The shared consumer, reading the campaigns a batch is about before applying it, and
    re-planning the schedules it made stale when `auto_replan` is on."""

    def __init__(self, *, engine: Engine, calendar: ServiceClient, workers: WorkerPool,
                 grace_seconds: float, auto_replan: bool, poll_seconds: float, lease_seconds: float):
        super().__init__(name=CONSUMER_NAME, engine=engine, table=event_consumer,
                         calendar=calendar, apply=self._apply, poll_seconds=poll_seconds,
                         lease_seconds=lease_seconds)
        self.read_engine = engine
        self.workers = workers
        self.grace_seconds = grace_seconds
        self.auto_replan = auto_replan
        self._campaigns: dict[str, dict[str, Any]] = {}
        self._marked: list[str] = []

    def fetch(self, cursor: str | None) -> tuple[list[Event], bool]:
        """The next events, with the current state of each followed campaign they are about."""
        events, more = super().fetch(cursor)
        with Session(self.read_engine) as session:
            ids = followed(session, {e.campaign_id for e in events if e.campaign_id})
        # Read after the events, so each state includes at least the changes they report.
        # A campaign the calendar no longer knows has nothing left to follow.
        states = {i: fetch_campaign(self.calendar, i) for i in sorted(ids)}
        self._campaigns = {i: state for i, state in states.items() if state is not None}
        return events, more

    def _apply(self, session: Session, event: Event) -> None:
        if event.type == DELETED and event.campaign_id is not None:
            self._marked += apply_deletion(session, event, event.campaign_id)
            return
        campaign = self._campaigns.get(event.campaign_id or "")
        if campaign is not None:
            self._marked += apply_event(session, event, campaign)

    def poll_once(self) -> int:
        """Apply the waiting events; then re-plan what they made stale, if asked to."""
        applied = super().poll_once()
        marked, self._marked = list(dict.fromkeys(self._marked)), []
        if self.auto_replan and marked:
            with Session(self.engine) as session:
                made = schedules.replan_stale(session=session, schedule_ids=marked,
                                              workers=self.workers,
                                              grace_seconds=self.grace_seconds,
                                              as_of=date.today())
            logger.info("re-planned stale schedules %s as %s", marked, made)
        return applied
