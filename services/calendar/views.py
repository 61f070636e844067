"""Read-side views across campaigns: the calendar for a date range, and its conflicts."""
import threading
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from itertools import islice
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, TypeAdapter
from sqlmodel import Session, col, select

from services.calendar.answers import At
from services.calendar.campaigns import Status
from services.calendar.graph import (
    CONTINGENCY_HOURS,
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
# What a found conflict keeps in memory, roughly (its tuple, ids and the values it is
# described from are shared with the others), to bound what a process keeps.
FOUND_BYTES = 500
# What a conflict's kept bytes cost beyond their length (the key: its kind and facts).
DESCRIBED_BYTES = 400
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
    """A conflict as found: what the filters and the summary read, and the plain values its
    description is made from (`DESCRIBE[kind](*facts)`, a function of them alone: they are
    also the key its JSON bytes are kept under, see `Described`)."""

    kind: ConflictKind
    channel: str | None
    campaign_ids: tuple[str, ...]
    facts: tuple[Any, ...]


def conflicts_json(*, session: Session, kept: At, start: date, end: date,
                   kind: ConflictKind | None = None, channel: str | None = None,
                   campaign_id: str | None = None) -> bytes:
    """List the range's conflicts of `kind`, on `channel`, involving `campaign_id` (each
    filter when given) as JSON: overlapping bursts on a channel, milestones outside their
    campaign window, broken dependencies, launches inside another campaign's contingency
    window on a channel, and milestones due on a day that is not a working day of their
    market. Cancelled campaigns are left out."""
    return _DESCRIBED.json([found for found in _kept_conflicts(session, kept, start, end)
                            if (kind is None or found.kind == kind)
                            and (channel is None or found.channel == channel)
                            and (campaign_id is None or campaign_id in found.campaign_ids)])


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


def _burst_overlap(a_id: str, a_name: str, b_id: str, b_name: str, channel: str,
                   first: date, last: date) -> ConflictPublic:
    # `milestone_ids` given: its default is deep-copied for each model (a fifth of
    # describing a month's thousands of overlaps).
    return ConflictPublic(
        kind="burst_overlap", channel=channel, campaign_ids=[a_id, b_id], milestone_ids=[],
        start_date=first, end_date=last,
        detail=f"{a_name!r} and {b_name!r} both burst on {channel} from {first} to {last}")


def _outside_window(campaign_id: str, campaign_name: str, campaign_start: date,
                    campaign_end: date, milestone_id: str, name: str,
                    due: date) -> ConflictPublic:
    return ConflictPublic(
        kind="milestone_outside_window", campaign_ids=[campaign_id], milestone_ids=[milestone_id],
        start_date=due, end_date=due,
        detail=f"{name!r} is due {due}, outside {campaign_name!r} "
               f"({campaign_start} to {campaign_end})")


def _non_working_day(campaign_id: str, market: str, milestone_id: str, name: str,
                     due: date) -> ConflictPublic:
    return ConflictPublic(
        kind="non_working_day", campaign_ids=[campaign_id], milestone_ids=[milestone_id],
        start_date=due, end_date=due,
        detail=f"{name!r} is due {due.strftime('%A')} {due}, not a working day in {market}; "
               f"the next one is {next_working_day(due, market)}")


def _dependency_violated(campaign_id: str, before_id: str, before_name: str, before_due: date,
                         after_id: str, after_name: str, after_due: date, lag_days: int,
                         required: date) -> ConflictPublic:
    return ConflictPublic(
        kind="dependency_violated", campaign_ids=[campaign_id],
        milestone_ids=[before_id, after_id], start_date=after_due, end_date=required,
        detail=f"{after_name!r} is due {after_due} but must be at least "
               f"{lag_days} working day(s) after {before_name!r} "
               f"({before_due}), so not before {required}")


def _launch_in_contingency(other_id: str, other_name: str, owner_id: str, owner_name: str,
                           launch_id: str, launch_due: date, window_id: str, first: date,
                           last: date, channel: str) -> ConflictPublic:
    return ConflictPublic(
        kind="launch_in_contingency", channel=channel,
        campaign_ids=[other_id, owner_id], milestone_ids=[launch_id, window_id],
        start_date=first, end_date=last,
        detail=f"{other_name!r} launches on {launch_due}, inside the "
               f"contingency window of {owner_name!r} ({first} to {last}) on {channel}")


DESCRIBE: dict[ConflictKind, Callable[..., ConflictPublic]] = {
    "burst_overlap": _burst_overlap, "milestone_outside_window": _outside_window,
    "dependency_violated": _dependency_violated,
    "launch_in_contingency": _launch_in_contingency, "non_working_day": _non_working_day}


class Described:
    """Conflicts' JSON bytes kept in this process by what they are described from (a
    conflict's kind and facts), across changes to the calendar: after a change, a month's
    list describes only the conflicts whose facts changed (describing and writing 3,266 of
    them was 40 ms of the 110-150 ms of CPU of the first read after a change) and copies the
    others' bytes. Kept by their content, they are never stale, whichever process changed
    the calendar or however. At most `max_bytes` (about), the least recently used go first."""

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, tuple[Any, ...]], bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes

    def json(self, conflicts: list[Found]) -> bytes:
        """The JSON list of these conflicts, as the list's TypeAdapter writes it: each item
        written alone, joined by commas (compact JSON)."""
        keys = [(found.kind, found.facts) for found in conflicts]
        with self._lock:
            bodies = [self._kept.get(key) for key in keys]
            for key, body in zip(keys, bodies, strict=True):
                if body is not None:
                    self._kept.move_to_end(key)
        made = {key: _CONFLICT.dump_json(DESCRIBE[key[0]](*key[1]), by_alias=True)
                for key, body in zip(keys, bodies, strict=True) if body is None}
        if made:
            with self._lock:
                for key, body in made.items():
                    if key not in self._kept:
                        self._kept[key] = body
                        self._bytes += len(body) + DESCRIBED_BYTES
                while self._bytes > self._max_bytes and self._kept:
                    self._bytes -= len(self._kept.popitem(last=False)[1]) + DESCRIBED_BYTES
        return b"[" + b",".join(body if body is not None else made[key]
                                for key, body in zip(keys, bodies, strict=True)) + b"]"


_CONFLICT = TypeAdapter(ConflictPublic)
# A department-year's conflicts of a few ranges (a month's are 1.1 MB of JSON and keys).
_DESCRIBED = Described(max_bytes=32 * 2**20)


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
            yield Found("burst_overlap", channel, (ca.id, cb.id), (
                ca.id, ca.name, cb.id, cb.name, channel, b.start_date,
                min(a.end_date, b.end_date)))

    for m in sorted(milestones, key=lambda m: (m.due_date, m.id)):
        campaign = by_id[m.campaign_id]
        if (start <= m.due_date <= end
                and not campaign.start_date <= m.due_date <= campaign.end_date):
            yield Found("milestone_outside_window", None, (campaign.id,), (
                campaign.id, campaign.name, campaign.start_date, campaign.end_date, m.id,
                m.name, m.due_date))

    for m in sorted(milestones, key=lambda m: (m.due_date, m.id)):
        campaign = by_id[m.campaign_id]
        if start <= m.due_date <= end and not is_working_day(m.due_date, campaign.market):
            yield Found("non_working_day", None, (campaign.id,),
                        (campaign.id, campaign.market, m.id, m.name, m.due_date))

    # Each campaign's graph counts lags in its own market's working days.
    dependencies = dependencies_of(session, (m.id for m in milestones))
    for campaign in campaigns:
        graph = graph_of(campaign.market, own[campaign.id], dependencies)
        for violation in violations(graph):
            before = graph.milestones[violation.link.predecessor_id]
            after = graph.milestones[violation.link.successor_id]
            if start <= after.due_date <= end:
                yield Found("dependency_violated", None, (campaign.id,), (
                    campaign.id, before.id, before.name, before.due_date, after.id,
                    after.name, after.due_date, violation.link.lag_days, violation.required))

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
                yield Found("launch_in_contingency", channel, (other.id, owner.id), (
                    other.id, other.name, owner.id, owner.name, launch.id, launch.due_date,
                    window.id, first, last, channel))
