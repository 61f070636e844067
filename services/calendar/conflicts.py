"""A date range's conflicts, found again after a change only where the calendar changed.

A conflict is made from the rows of one campaign (a milestone outside its window, one due on
a day off, a broken dependency) or of two (their bursts overlapping on a channel, one's launch
inside the other's contingency window), and from nothing else. So each process keeps, per
range, the rows its last find read and what it found (`Finding`); the next find, at a new
state of the calendar, reads the rows again, compares them campaign by campaign, keeps the
conflicts of the campaigns whose rows are the same and finds those of the others again (after
a change to one campaign of November: its own conflicts and those it shares, not 3,266). The
rows themselves are compared, not an event or a version said to cover them, so a change
through any process or by SQL from outside is found. Conflicts are listed in one defined
order (`Found.order`), in which the kept and the new ones merge into what a fresh find lists.

Each conflict's JSON bytes are kept by the plain values it is described from (`Found.facts`,
`DESCRIBE[kind](*facts)` a function of them alone), so a list describes only the conflicts
whose facts are new and copies the others' bytes (describing and writing a month's 3,266 took
40 ms of CPU).
"""
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from operator import attrgetter
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, TypeAdapter
from sqlmodel import Session, col, select

from services.calendar.answers import At
from services.calendar.graph import CONTINGENCY_HOURS, violations, window_days
from services.calendar.milestones import MAX_WINDOW_HOURS
from services.calendar.models import Campaign, Dependency, Milestone, Phase
from services.calendar.store import graph_of, read_rows, rows_of
from services.calendar.views import check_range
from shared.kept import Lru
from shared.workdays import is_working_day, next_working_day

# What a found conflict keeps in memory, roughly (its tuples; the ids and values it is
# described from are shared with the rows), to bound what a process keeps.
FOUND_BYTES = 500
# What a campaign's rows keep in memory, roughly (a template's seven milestones, its phases
# and dependencies as tuples).
ROWS_BYTES = 3000
# What a conflict's kept bytes cost beyond their length (the key: its kind and facts).
DESCRIBED_BYTES = 400
# The columns conflicts never read: each costs its reading, and a change to one of them
# alone (an objective, a milestone's owner) leaves a campaign's conflicts as they were.
CAMPAIGN_UNREAD = ("objective", "owner", "time_zone", "priority", "template", "reviews",
                   "version", "created_by", "created_at", "updated_at")
MILESTONE_UNREAD = ("due_time", "owner", "status", "anchor_id", "version", "created_at",
                    "updated_at")
PHASE_UNREAD = ("anchor_id", "version")

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


class Found(NamedTuple):
    """A conflict as found: what the filters and the summary read, the plain values its
    description is made from (`DESCRIBE[kind](*facts)`), and its place in the list."""

    kind: ConflictKind
    channel: str | None
    campaign_ids: tuple[str, ...]
    facts: tuple[Any, ...]
    # The kind's rank, then: overlapping bursts by the first's (start, id), the second's,
    # the channel; a milestone outside its window or on a day off by its (due date, id); a
    # broken dependency by its campaign (those overlapping the range first, by id) and its
    # (successor, predecessor); a launch in a window by the window's (campaign, id), the
    # launch's, the channel.
    order: tuple[Any, ...]


class Rows(NamedTuple):
    """What a campaign's conflicts are made from, as read (compared whole between finds)."""

    campaign: Campaign
    bursts: tuple[Phase, ...]
    milestones: tuple[Milestone, ...]
    dependencies: tuple[Dependency, ...]


class Finding(NamedTuple):
    """A range's rows as a find read them, and the conflicts it found in them, in order."""

    rows: dict[str, Rows]
    found: list[Found]


def conflicts_json(*, session: Session, kept: At, start: date, end: date,
                   kind: ConflictKind | None = None, channel: str | None = None,
                   campaign_id: str | None = None) -> bytes:
    """List the range's conflicts of `kind`, on `channel`, involving `campaign_id` (each
    filter when given) as JSON: overlapping bursts on a channel, milestones outside their
    campaign window, broken dependencies, launches inside another campaign's contingency
    window on a channel, and milestones due on a day that is not a working day of their
    market. Cancelled campaigns are left out."""
    return _json([found for found in _kept_conflicts(session, kept, start, end)
                  if (kind is None or found.kind == kind)
                  and (channel is None or found.channel == channel)
                  and (campaign_id is None or campaign_id in found.campaign_ids)])


def summarize_conflicts(*, session: Session, kept: At, start: date,
                        end: date) -> ConflictSummaryPublic:
    """Count the range's conflicts by kind, by channel and by campaign."""
    return summary_of(_kept_conflicts(session, kept, start, end))


def summary_of(conflicts: list[Found]) -> ConflictSummaryPublic:
    """How many of these conflicts there are of each kind, on each channel, for each
    campaign."""
    return ConflictSummaryPublic(
        total=len(conflicts),
        by_kind=dict(sorted(Counter(c.kind for c in conflicts).items())),
        by_channel=dict(sorted(Counter(c.channel for c in conflicts if c.channel).items())),
        by_campaign=dict(sorted(Counter(i for c in conflicts for i in c.campaign_ids).items())))


def _kept_conflicts(session: Session, kept: At, start: date, end: date) -> list[Found]:
    # Found once per range and state of the calendar, for the list, each filter and the
    # summary: a frontend reads the summary, then one campaign's conflicts, then another's.
    return kept.value(("found", start, end), lambda: _find(session, start, end),
                      lambda found: FOUND_BYTES * len(found))


def _find(session: Session, start: date, end: date) -> list[Found]:
    rows = read_range(session, start, end)
    found = find(rows, start, end, _FINDINGS.get((start, end)))
    _FINDINGS.put((start, end), Finding(rows, found),
                  FOUND_BYTES * len(found) + ROWS_BYTES * len(rows))
    return found


# A few ranges' findings (a month of the department-year: 3,266 conflicts of 128 campaigns).
_FINDINGS: Lru[tuple[date, date], Finding] = Lru(max_bytes=16 * 2**20)


def read_range(session: Session, start: date, end: date) -> dict[str, Rows]:
    """The rows of the campaigns whose conflicts may meet the range, by campaign id, by the
    range's rule (not by the campaigns' own dates): those with a burst in it, a milestone due
    in it, a contingency window whose days meet it, or a launch inside such a window; not
    cancelled ones."""
    check_range(start, end)
    ids = set(session.exec(select(Phase.campaign_id).distinct().where(
        col(Phase.kind) == "burst", col(Phase.start_date) <= end, col(Phase.end_date) >= start)))
    ids.update(session.exec(select(Milestone.campaign_id).distinct().where(
        col(Milestone.due_date) >= start, col(Milestone.due_date) <= end)))
    # A window reaches at most this far on each side of its day.
    reach = timedelta(days=window_days(MAX_WINDOW_HOURS))
    near = session.exec(select(col(Milestone.campaign_id), col(Milestone.due_date),
                               col(Milestone.window_hours)).where(
        col(Milestone.kind) == "contingency", col(Milestone.due_date) >= start - reach,
        col(Milestone.due_date) <= end + reach))
    windows = [(campaign_id, span) for campaign_id, due, hours in near
               if _meets(span := _window(due, hours), start, end)]
    if windows:
        spans = [span for _, span in windows]
        ids.update(campaign_id for campaign_id, _ in windows)
        ids.update(campaign_id for campaign_id, due in session.exec(
            select(col(Milestone.campaign_id), col(Milestone.due_date)).where(
                col(Milestone.kind) == "launch",
                col(Milestone.due_date) >= min(first for first, _ in spans),
                col(Milestone.due_date) <= max(last for _, last in spans)))
            if any(first <= due <= last for first, last in spans))
    return rows_of_campaigns(session, ids)


def rows_of_campaigns(session: Session, wanted: Iterable[str]) -> dict[str, Rows]:
    """The rows conflicts are made from of these campaigns (but cancelled ones), by id."""
    campaigns = [c for c in read_rows(session, rows_of(Campaign, without=CAMPAIGN_UNREAD)
                                      .where(col(Campaign.id).in_(sorted(wanted)))
                                      .order_by(col(Campaign.id)))
                 if c.status != "cancelled"]
    ids = [c.id for c in campaigns]
    bursts: dict[str, list[Phase]] = {i: [] for i in ids}
    for phase in read_rows(session, rows_of(Phase, without=PHASE_UNREAD).where(
            col(Phase.campaign_id).in_(ids), col(Phase.kind) == "burst")):
        bursts[phase.campaign_id].append(phase)
    milestones: dict[str, list[Milestone]] = {i: [] for i in ids}
    of_milestone: dict[str, str] = {}
    for milestone in read_rows(session, rows_of(Milestone, without=MILESTONE_UNREAD).where(
            col(Milestone.campaign_id).in_(ids))
            .order_by(col(Milestone.campaign_id), col(Milestone.id))):
        milestones[milestone.campaign_id].append(milestone)
        of_milestone[milestone.id] = milestone.campaign_id
    dependencies: dict[str, list[Dependency]] = {i: [] for i in ids}
    # By the successor's campaign in one query (a list of a month's 900 milestone ids to
    # match took longer than the join).
    for dependency in read_rows(session, rows_of(Dependency).join(
            Milestone, col(Milestone.id) == col(Dependency.successor_id))
            .where(col(Milestone.campaign_id).in_(ids))
            .order_by(col(Dependency.successor_id), col(Dependency.predecessor_id))):
        dependencies[of_milestone[dependency.successor_id]].append(dependency)
    return {c.id: Rows(c, tuple(sorted(bursts[c.id], key=attrgetter("id"))),
                       tuple(milestones[c.id]), tuple(dependencies[c.id])) for c in campaigns}


def find(rows: dict[str, Rows], start: date, end: date,
         before: Finding | None = None) -> list[Found]:
    """The conflicts of the range in `rows`, in order: those of `before` whose campaigns'
    rows are the same kept, the others found again (all of them without `before`)."""
    if before is None:
        return sorted(_found(rows, start, end, None), key=attrgetter("order"))
    touched = {i for i, r in rows.items() if before.rows.get(i) != r}
    touched |= before.rows.keys() - rows.keys()
    if not touched:
        return before.found
    kept = [found for found in before.found if touched.isdisjoint(found.campaign_ids)]
    # Sorting a sorted list with a few conflicts appended merges them in (two runs).
    return sorted(kept + list(_found(rows, start, end, touched)), key=attrgetter("order"))


def _found(rows: dict[str, Rows], start: date, end: date,
           touched: set[str] | None) -> Iterator[Found]:
    """The conflicts of the range that involve a campaign in `touched` (all if None)."""
    yield from _overlaps(rows, start, end, touched)
    for campaign_id in rows if touched is None else touched & rows.keys():
        yield from _own(rows[campaign_id], start, end)
    yield from _launches_in_windows(rows, start, end, touched)


def _overlaps(rows: dict[str, Rows], start: date, end: date,
              touched: set[str] | None) -> Iterator[Found]:
    campaigns = {i: r.campaign for i, r in rows.items()}
    # Each campaign's channels as a set once, not twice per pair of overlapping bursts (a
    # month holds thousands of pairs).
    channels = {i: set(c.channels) for i, c in campaigns.items()}
    bursts = sorted((p for r in rows.values() for p in r.bursts),
                    key=lambda p: (p.start_date, p.id))
    for i, a in enumerate(bursts):
        for j in range(i + 1, len(bursts)):
            b = bursts[j]
            # By start date: once one starts after `a` ends, so do all the rest (a quarter
            # holds hundreds of bursts; comparing every pair was most of the answer's time).
            if b.start_date > a.end_date:
                break
            # Both start by `end`, so the overlap meets the range when it ends after `start`.
            last = min(a.end_date, b.end_date)
            if (a.campaign_id == b.campaign_id or b.start_date > end or last < start
                    or (touched is not None and a.campaign_id not in touched
                        and b.campaign_id not in touched)):
                continue
            ca, cb = campaigns[a.campaign_id], campaigns[b.campaign_id]
            for channel in sorted(channels[ca.id] & channels[cb.id]):
                yield Found("burst_overlap", channel, (ca.id, cb.id),
                            (ca.id, ca.name, cb.id, cb.name, channel, b.start_date, last),
                            (0, a.start_date, a.id, b.start_date, b.id, channel))


def _own(rows: Rows, start: date, end: date) -> Iterator[Found]:
    """A campaign's conflicts of its own: its milestones due in the range outside its dates or
    on a day off in its market, and its dependencies broken where the successor is due in
    the range (lags count the market's working days)."""
    campaign = rows.campaign
    for m in rows.milestones:
        if start <= m.due_date <= end:
            if not campaign.start_date <= m.due_date <= campaign.end_date:
                yield Found("milestone_outside_window", None, (campaign.id,), (
                    campaign.id, campaign.name, campaign.start_date, campaign.end_date, m.id,
                    m.name, m.due_date), (1, m.due_date, m.id))
            if not is_working_day(m.due_date, campaign.market):
                yield Found("non_working_day", None, (campaign.id,),
                            (campaign.id, campaign.market, m.id, m.name, m.due_date),
                            (2, m.due_date, m.id))
    if not rows.dependencies:
        return
    dependencies: dict[str, list[Dependency]] = {m.id: [] for m in rows.milestones}
    for dependency in rows.dependencies:
        dependencies[dependency.successor_id].append(dependency)
    graph = graph_of(campaign.market, rows.milestones, dependencies)
    outside = campaign.start_date > end or campaign.end_date < start
    for violation in violations(graph):
        before = graph.milestones[violation.link.predecessor_id]
        after = graph.milestones[violation.link.successor_id]
        if start <= after.due_date <= end:
            yield Found("dependency_violated", None, (campaign.id,), (
                campaign.id, before.id, before.name, before.due_date, after.id, after.name,
                after.due_date, violation.link.lag_days, violation.required),
                (3, outside, campaign.id, after.id, before.id))


def _window(due: date, hours: int | None) -> tuple[date, date]:
    days = window_days(hours or CONTINGENCY_HOURS)
    return due - timedelta(days=days), due + timedelta(days=days)


def _meets(span: tuple[date, date], start: date, end: date) -> bool:
    return span[0] <= end and span[1] >= start


def _launches_in_windows(rows: dict[str, Rows], start: date, end: date,
                         touched: set[str] | None) -> Iterator[Found]:
    """Launches inside another campaign's contingency window, on a channel of both, where
    the window meets the range."""
    channels = {i: set(r.campaign.channels) for i, r in rows.items()}
    # Launches by date, to find those inside a window by bisection rather than one by one.
    launches = sorted((m for r in rows.values() for m in r.milestones if m.kind == "launch"),
                      key=lambda m: (m.due_date, m.campaign_id, m.id))
    days = [m.due_date for m in launches]
    for owner_rows in rows.values():
        owner = owner_rows.campaign
        mine = touched is None or owner.id in touched
        for window in (m for m in owner_rows.milestones if m.kind == "contingency"):
            first, last = _window(window.due_date, window.window_hours)
            if not _meets((first, last), start, end):
                continue
            for launch in launches[bisect_left(days, first):bisect_right(days, last)]:
                if launch.campaign_id == owner.id or not (
                        mine or (touched is not None and launch.campaign_id in touched)):
                    continue
                other = rows[launch.campaign_id].campaign
                for channel in sorted(channels[owner.id] & channels[other.id]):
                    yield Found("launch_in_contingency", channel, (other.id, owner.id), (
                        other.id, other.name, owner.id, owner.name, launch.id,
                        launch.due_date, window.id, first, last, channel),
                        (4, owner.id, window.id, launch.campaign_id, launch.id, channel))


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
_CONFLICT = TypeAdapter(ConflictPublic)
# Conflicts' bytes by kind and facts, across changes: a few ranges of a department-year
# (a month's are 1.1 MB of JSON).
_DESCRIBED: Lru[tuple[str, tuple[Any, ...]], bytes] = Lru(max_bytes=32 * 2**20)


def _json(conflicts: Iterable[Found]) -> bytes:
    """The JSON list of these conflicts as the list's TypeAdapter writes it (compact JSON:
    each item as written alone, joined by commas), from the bytes kept of each."""
    keys = [(found.kind, found.facts) for found in conflicts]
    bodies = _DESCRIBED.get_many(keys)
    made = {key: _CONFLICT.dump_json(DESCRIBE[key[0]](*key[1]), by_alias=True)
            for key, body in zip(keys, bodies, strict=True) if body is None}
    if made:
        _DESCRIBED.put_many((key, body, len(body) + DESCRIBED_BYTES)
                            for key, body in made.items())
    return b"[" + b",".join(body if body is not None else made[key]
                            for key, body in zip(keys, bodies, strict=True)) + b"]"
