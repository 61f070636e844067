"""Read-side views across campaigns: the calendar for a date range, and its conflicts."""
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from functools import partial
from itertools import islice
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.calendar.answers import At
from services.calendar.campaigns import Status
from services.calendar.graph import (
    CONTINGENCY_HOURS,
    MilestoneNode,
    Violation,
    violations,
    window_days,
)
from services.calendar.milestones import MilestonePublic, milestones_public
from services.calendar.models import Campaign, Milestone, Phase
from services.calendar.phases import PhasePublic, phase_public
from services.calendar.store import (
    CAMPAIGN_ORDER,
    dependencies_of,
    graph_of,
    read_rows,
    rows_of,
)
from shared.channels import ChannelKind
from shared.errors import invalid_fields
from shared.pagination import Page, decode_cursor, encode_cursor
from shared.workdays import is_working_day, next_working_day

MAX_RANGE_DAYS = 731
# What a found conflict keeps in memory, roughly (its tuple, ids and the rows it describes
# from are shared with the others), to bound what a process keeps.
FOUND_BYTES = 500
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
    """Raise a 422 on the query's `to` unless `start..end` is a range of at most
    `MAX_RANGE_DAYS`."""
    if end < start:
        raise invalid_fields([("to", f"`to` ({end}) is before `from` ({start})")], where="query")
    if (end - start).days > MAX_RANGE_DAYS:
        raise invalid_fields([("to", f"a range spans at most {MAX_RANGE_DAYS} days")], where="query")


def campaigns_in(session: Session, start: date, end: date, *, channel: str | None = None,
                 status: str | None = None, owner: str | None = None,
                 after: str | None = None) -> Iterator[Campaign]:
    """Campaigns overlapping start..end, by id, filtered (channels live in a JSON list, so
    that filter is applied here, the same way on SQLite and PostgreSQL), as read-only rows."""
    statement = rows_of(Campaign).where(col(Campaign.start_date) <= end,
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


ConflictKind = Literal["burst_overlap", "milestone_outside_window", "dependency_violated",
                       "launch_in_contingency", "non_working_day"]


class ConflictPublic(BaseModel):
    kind: ConflictKind
    detail: str
    campaign_ids: list[str]
    milestone_ids: list[str] = []
    channel: str | None = None
    start_date: date | None = Field(None, description="Where the conflict begins.")
    end_date: date | None = None


class ConflictSummaryPublic(BaseModel):
    total: int
    by_kind: dict[ConflictKind, int] = Field(description="Kinds with at least one conflict.")
    by_channel: dict[str, int] = Field(description="Conflicts on a channel (overlapping "
                                       "bursts, launches in a contingency window), by channel.")
    by_campaign: dict[str, int] = Field(description="The conflicts each campaign is in, by "
                                        "campaign id (a conflict of two counts for both).")


def _window(milestone: Milestone) -> tuple[date, date]:
    days = window_days(milestone.window_hours or CONTINGENCY_HOURS)
    return milestone.due_date - timedelta(days=days), milestone.due_date + timedelta(days=days)


class Found(NamedTuple):
    """A conflict as found: what the filters and the summary read, and how to describe it
    (built only for the conflicts answered: a busy month holds thousands)."""

    kind: ConflictKind
    channel: str | None
    campaign_ids: tuple[str, ...]
    describe: Callable[[], ConflictPublic]


def find_conflicts(*, session: Session, kept: At, start: date, end: date,
                   kind: ConflictKind | None = None, channel: str | None = None,
                   campaign_id: str | None = None) -> list[ConflictPublic]:
    """List the range's conflicts of `kind`, on `channel`, involving `campaign_id` (each
    filter when given): overlapping bursts on a channel, milestones outside their campaign
    window, broken dependencies, launches inside another campaign's contingency window on a
    channel, and milestones due on a day that is not a working day of their market.
    Cancelled campaigns are left out."""
    return [found.describe() for found in _kept_conflicts(session, kept, start, end)
            if (kind is None or found.kind == kind)
            and (channel is None or found.channel == channel)
            and (campaign_id is None or campaign_id in found.campaign_ids)]


def summarize_conflicts(*, session: Session, kept: At, start: date,
                        end: date) -> ConflictSummaryPublic:
    """Count the range's conflicts by kind, by channel and by campaign."""
    conflicts = _kept_conflicts(session, kept, start, end)
    return ConflictSummaryPublic(
        total=len(conflicts),
        by_kind=dict(sorted(Counter(c.kind for c in conflicts).items())),
        by_channel=dict(sorted(Counter(c.channel for c in conflicts if c.channel).items())),
        by_campaign=dict(sorted(Counter(i for c in conflicts for i in c.campaign_ids).items())))


def _kept_conflicts(session: Session, kept: At, start: date, end: date) -> list[Found]:
    # Found once per range and state of the calendar, for the list, each filter and the
    # summary: a frontend reads the summary, then one campaign's conflicts, then another's.
    return kept.value(("found", start, end), lambda: list(_conflicts(session, start, end)),
                      lambda found: FOUND_BYTES * len(found))


def _burst_overlap(a: Campaign, b: Campaign, channel: str, first: date,
                   last: date) -> ConflictPublic:
    # `milestone_ids` given: its default is deep-copied for each model (a fifth of
    # describing a month's thousands of overlaps).
    return ConflictPublic(
        kind="burst_overlap", channel=channel, campaign_ids=[a.id, b.id], milestone_ids=[],
        start_date=first, end_date=last,
        detail=f"{a.name!r} and {b.name!r} both burst on {channel} from {first} to {last}")


def _outside_window(campaign: Campaign, m: Milestone) -> ConflictPublic:
    return ConflictPublic(
        kind="milestone_outside_window", campaign_ids=[campaign.id], milestone_ids=[m.id],
        start_date=m.due_date, end_date=m.due_date,
        detail=f"{m.name!r} is due {m.due_date}, outside {campaign.name!r} "
               f"({campaign.start_date} to {campaign.end_date})")


def _non_working_day(campaign: Campaign, m: Milestone) -> ConflictPublic:
    return ConflictPublic(
        kind="non_working_day", campaign_ids=[campaign.id], milestone_ids=[m.id],
        start_date=m.due_date, end_date=m.due_date,
        detail=f"{m.name!r} is due {m.due_date.strftime('%A')} {m.due_date}, not a "
               f"working day in {campaign.market}; the next one is "
               f"{next_working_day(m.due_date, campaign.market)}")


def _dependency_violated(campaign: Campaign, before: MilestoneNode, after: MilestoneNode,
                         violation: Violation) -> ConflictPublic:
    return ConflictPublic(
        kind="dependency_violated", campaign_ids=[campaign.id],
        milestone_ids=[before.id, after.id], start_date=after.due_date,
        end_date=violation.required,
        detail=f"{after.name!r} is due {after.due_date} but must be at least "
               f"{violation.link.lag_days} working day(s) after {before.name!r} "
               f"({before.due_date}), so not before {violation.required}")


def _launch_in_contingency(other: Campaign, owner: Campaign, launch: Milestone,
                           window: Milestone, channel: str) -> ConflictPublic:
    first, last = _window(window)
    return ConflictPublic(
        kind="launch_in_contingency", channel=channel,
        campaign_ids=[other.id, owner.id], milestone_ids=[launch.id, window.id],
        start_date=first, end_date=last,
        detail=f"{other.name!r} launches on {launch.due_date}, inside the "
               f"contingency window of {owner.name!r} ({first} to {last}) on {channel}")


def _conflicts(session: Session, start: date, end: date) -> Iterator[Found]:
    """The conflicts of the range: those whose own dates meet it (an overlap of bursts,
    a contingency window), or whose milestone is due in it (one outside its campaign, one on
    a day off, the successor of a broken dependency); a campaign of the range has others."""
    check_range(start, end)
    # A milestone due in the range outside its campaign's dates belongs to the range even
    # when the campaign does not.
    outside = set(session.exec(select(Milestone.campaign_id).distinct().where(
        col(Milestone.due_date) >= start, col(Milestone.due_date) <= end)))
    campaigns = [c for c in campaigns_in(session, start, end) if c.status != "cancelled"]
    outside -= {c.id for c in campaigns}
    if outside:
        campaigns += [c for c in read_rows(session, rows_of(Campaign).where(
            col(Campaign.id).in_(outside)).order_by(Campaign.id)) if c.status != "cancelled"]
    ids = [c.id for c in campaigns]
    phases = read_rows(session, rows_of(Phase).where(col(Phase.campaign_id).in_(ids),
                                                     col(Phase.kind) == "burst"))
    milestones = read_rows(session, rows_of(Milestone, without=UNANSWERED)
                           .where(col(Milestone.campaign_id).in_(ids)))
    by_id = {c.id: c for c in campaigns}
    # Each campaign's channels as a set once, not twice per pair of overlapping bursts (a
    # month holds thousands of pairs).
    channels = {c.id: set(c.channels) for c in campaigns}
    own: dict[str, list[Milestone]] = {c.id: [] for c in campaigns}
    for milestone in milestones:
        own[milestone.campaign_id].append(milestone)

    overlaps: list[tuple[Phase, Phase]] = []
    bursts = sorted(phases, key=lambda p: (p.start_date, p.id))
    for i, a in enumerate(bursts):
        for b in bursts[i + 1:]:
            # By start date: once one starts after `a` ends, so do all the rest (a quarter
            # holds hundreds of bursts; comparing every pair was most of the answer's time).
            if b.start_date > a.end_date:
                break
            # Both start by `end`, so the overlap meets the range when it ends after `start`.
            if (a.campaign_id != b.campaign_id and b.start_date <= end
                    and min(a.end_date, b.end_date) >= start):
                overlaps.append((a, b))
    for a, b in overlaps:
        ca, cb = by_id[a.campaign_id], by_id[b.campaign_id]
        for channel in sorted(channels[ca.id] & channels[cb.id]):
            yield Found("burst_overlap", channel, (ca.id, cb.id), partial(
                _burst_overlap, ca, cb, channel, b.start_date, min(a.end_date, b.end_date)))

    for m in sorted(milestones, key=lambda m: (m.due_date, m.id)):
        campaign = by_id[m.campaign_id]
        if (start <= m.due_date <= end
                and not campaign.start_date <= m.due_date <= campaign.end_date):
            yield Found("milestone_outside_window", None, (campaign.id,),
                        partial(_outside_window, campaign, m))

    for m in sorted(milestones, key=lambda m: (m.due_date, m.id)):
        campaign = by_id[m.campaign_id]
        if start <= m.due_date <= end and not is_working_day(m.due_date, campaign.market):
            yield Found("non_working_day", None, (campaign.id,),
                        partial(_non_working_day, campaign, m))

    # Each campaign's graph counts lags in its own market's working days.
    dependencies = dependencies_of(session, (m.id for m in milestones))
    for campaign in campaigns:
        graph = graph_of(campaign.market, own[campaign.id], dependencies)
        for violation in violations(graph):
            if not start <= graph.milestones[violation.link.successor_id].due_date <= end:
                continue
            yield Found("dependency_violated", None, (campaign.id,), partial(
                _dependency_violated, campaign, graph.milestones[violation.link.predecessor_id],
                graph.milestones[violation.link.successor_id], violation))

    launches = [m for m in milestones if m.kind == "launch"]
    # Launches by date, to find those inside a window by bisection rather than one by one.
    dated = sorted(range(len(launches)), key=lambda i: launches[i].due_date)
    days = [launches[i].due_date for i in dated]
    for window in (m for m in milestones if m.kind == "contingency"):
        first, last = _window(window)
        if last < start or first > end:
            continue
        owner = by_id[window.campaign_id]
        inside = sorted(dated[bisect_left(days, first):bisect_right(days, last)])
        for launch in (launches[i] for i in inside):
            other = by_id[launch.campaign_id]
            if other.id == owner.id:
                continue
            for channel in sorted(channels[owner.id] & channels[other.id]):
                yield Found("launch_in_contingency", channel, (other.id, owner.id), partial(
                    _launch_in_contingency, other, owner, launch, window, channel))
