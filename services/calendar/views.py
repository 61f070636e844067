"""Read-side views across campaigns: the calendar for a date range (its conflicts:
`conflicts.py`)."""
from collections.abc import Iterable, Iterator
from datetime import date
from itertools import islice

from pydantic import BaseModel, Field
from sqlmodel import Session, col

from services.calendar.campaigns import Status
from services.calendar.milestones import MilestonePublic, milestones_public
from services.calendar.models import Campaign, Milestone, Phase
from services.calendar.phases import PhasePublic, phase_public
from services.calendar.store import CAMPAIGN_ORDER, read_rows, rows_of
from shared.channels import ChannelKind
from shared.errors import invalid_fields
from shared.pagination import Page, decode_cursor, encode_cursor

MAX_RANGE_DAYS = 731
# A milestone's columns these views never answer.
UNANSWERED = ("created_at", "updated_at")


class CalendarEntryPublic(BaseModel):
    campaign_id: str
    name: str
    owner: str
    channels: list[ChannelKind]
    status: str
    priority: int
    start_date: date
    end_date: date
    phases: list[PhasePublic] = Field(description="Those that overlap the range.")
    milestones: list[MilestonePublic] = Field(description="Those due in the range.")


def check_range(start: date, end: date) -> None:
    """Raise a 422 on the query's `to` unless `start..end` holds at most `MAX_RANGE_DAYS`
    days, both ends included."""
    if end < start:
        raise invalid_fields([("to", f"`to` ({end}) is before `from` ({start})")], where="query")
    # Counted as the days it holds, `from` and `to` both included.
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise invalid_fields([("to", f"a range holds at most {MAX_RANGE_DAYS} days, `from` and "
                                     f"`to` included ({start}..{end} holds "
                                     f"{(end - start).days + 1})")], where="query")


def campaigns_in(session: Session, start: date, end: date, *, channel: str | None = None,
                 status: str | None = None, owner: str | None = None,
                 after: str | None = None, without: Iterable[str] = ()) -> Iterator[Campaign]:
    """Campaigns overlapping start..end, by id, filtered (channels live in a JSON list, so
    that filter is applied here, the same way on SQLite and PostgreSQL), as read-only rows
    (without the columns named in `without`)."""
    statement = rows_of(Campaign, without=without).where(col(Campaign.start_date) <= end,
                                        col(Campaign.end_date) >= start)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    if owner is not None:
        statement = statement.where(Campaign.owner == owner)
    while True:
        batch = read_rows(session, (statement.where(Campaign.id > after) if after else statement)
                          .order_by(Campaign.id).limit(200))
        for campaign in batch:
            if channel is None or channel in campaign.channels:
                yield campaign
        if len(batch) < 200:
            return
        after = batch[-1].id


def read_calendar(*, session: Session, start: date, end: date, channel: str | None,
                  status: Status | None, owner: str | None, limit: int,
                  cursor: str | None) -> Page[CalendarEntryPublic]:
    """List everything between `start` and `end`: campaigns with their phases and milestones."""
    check_range(start, end)
    after = str(decode_cursor(cursor, CAMPAIGN_ORDER)[0]) if cursor else None
    page = list(islice(campaigns_in(session, start, end, channel=channel, status=status,
                                    owner=owner, after=after), limit + 1))
    next_cursor = encode_cursor([page[limit - 1].id]) if len(page) > limit else None
    page = page[:limit]
    # The page's phases and milestones in one query each (and one each for the milestones'
    # dependencies and decisions), not four per campaign; read as rows, not ORM objects.
    ids = [campaign.id for campaign in page]
    phases: dict[str, list[Phase]] = {i: [] for i in ids}
    for phase in read_rows(session, rows_of(Phase).where(
            col(Phase.campaign_id).in_(ids), col(Phase.start_date) <= end,
            col(Phase.end_date) >= start)
            .order_by(col(Phase.start_date), col(Phase.id))):
        phases[phase.campaign_id].append(phase)
    due = read_rows(session, rows_of(Milestone, without=UNANSWERED).where(
        col(Milestone.campaign_id).in_(ids), col(Milestone.due_date) >= start,
        col(Milestone.due_date) <= end).order_by(col(Milestone.due_date), col(Milestone.id)))
    milestones: dict[str, list[MilestonePublic]] = {i: [] for i in ids}
    for milestone in milestones_public(session, due):
        milestones[milestone.campaign_id].append(milestone)
    entries = [CalendarEntryPublic(
        campaign_id=campaign.id, name=campaign.name, owner=campaign.owner,
        channels=campaign.channels, status=campaign.status, priority=campaign.priority,
        start_date=campaign.start_date, end_date=campaign.end_date,
        phases=[phase_public(p) for p in phases[campaign.id]],
        milestones=milestones[campaign.id]) for campaign in page]
    return Page[CalendarEntryPublic](items=entries, next_cursor=next_cursor)
