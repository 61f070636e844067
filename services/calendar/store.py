"""Row access the calendar's use cases share: a campaign or milestone loaded (locked for a
write) or 404, a change recorded on the campaign, a campaign's milestone graph loaded as plain
data in two queries, and the moves the graph works out written back, with what follows them
(a template's phases and contingency window follow their launch) and their events."""
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import Select, SelectOfScalar

from services.calendar.graph import Link, MilestoneGraph, MilestoneNode, Move, follow
from services.calendar.models import Campaign, Dependency, Milestone, Phase, utcnow
from services.calendar.outbox import NewEvent
from shared.errors import NotFound

# Campaign lists page by id (ids sort by creation time). SQLModel types `Campaign.id` as a
# str for instances; `paginate` takes the class attribute it is at run time.
CAMPAIGN_ORDER = [cast(InstrumentedAttribute[Any], Campaign.id)]
Row = TypeVar("Row", bound=SQLModel)


def rows_of(model: type[Row], *, without: Iterable[str] = ()) -> SelectOfScalar[Row]:
    """A select of every column of `model`'s table but those named in `without` (each costs
    its reading, an instant's time zone for one), for `read_rows`."""
    left_out = set(without)
    columns = [c for c in model.__table__.columns if c.key not in left_out]  # type: ignore[attr-defined]
    # Typed as the model, which a row reads like (never change one: nothing would be saved).
    # SQLModel's `select` is typed for up to four columns; its Select class takes any number.
    return cast(SelectOfScalar[Row], Select(*columns))


def read_rows(session: Session, statement: SelectOfScalar[Row]) -> list[Row]:
    """Run a `rows_of` select: its rows as named tuples that read like the model's objects
    (`row.id`, `row.due_date`). For reads of hundreds of rows: an ORM object per row (and its
    identity map and change tracking) took most of a calendar page's time, and reading a
    SQLAlchemy row's field by name costs ten times a named tuple's, which a month's conflicts
    do tens of thousands of times."""
    result = cast(Any, session.exec(statement))
    fields = tuple(result.keys())
    if (plain := _TUPLES.get(fields)) is None:
        plain = _TUPLES.setdefault(fields, namedtuple("StoredRow", fields))
    return [plain._make(row) for row in result]


_TUPLES: dict[tuple[str, ...], Any] = {}


def get_campaign(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign:
    """Load a campaign or raise NotFound; `lock` holds its row until commit."""
    statement = select(Campaign).where(Campaign.id == campaign_id)
    campaign = session.exec(statement.with_for_update() if lock else statement).first()
    if campaign is None:
        raise NotFound(f"There is no campaign {campaign_id!r}; list campaigns at "
                       "/api/v1/calendar/campaigns.")
    return campaign


def campaign_phases(session: Session, campaign_id: str) -> list[Phase]:
    """The campaign's phases in date order."""
    return list(session.exec(select(Phase).where(Phase.campaign_id == campaign_id)
                             .order_by(col(Phase.start_date), col(Phase.id))))


def get_milestone(session: Session, campaign_id: str, milestone_id: str) -> Milestone:
    """Load a milestone of the campaign or raise NotFound."""
    milestone = session.get(Milestone, milestone_id)
    if milestone is None or milestone.campaign_id != campaign_id:
        raise NotFound(f"Campaign {campaign_id!r} has no milestone {milestone_id!r}.")
    return milestone


def touch(campaign: Campaign) -> None:
    """Record a change anywhere in the campaign (its ETag covers phases and milestones too)."""
    campaign.version += 1
    campaign.updated_at = utcnow()


def changed(milestone: Milestone) -> None:
    """Record a change to a milestone (its ETag and its feed event's SEQUENCE)."""
    milestone.version += 1
    milestone.updated_at = utcnow()


def dependencies_of(session: Session,
                    milestone_ids: Iterable[str]) -> dict[str, list[Dependency]]:
    """The dependencies of these milestones in one query, by successor, predecessor ids in
    order (read-only rows)."""
    ids = list(milestone_ids)
    grouped: dict[str, list[Dependency]] = {i: [] for i in ids}
    if ids:
        for dependency in read_rows(session, rows_of(Dependency)
                                    .where(col(Dependency.successor_id).in_(ids))
                                    .order_by(col(Dependency.successor_id),
                                              col(Dependency.predecessor_id))):
            grouped[dependency.successor_id].append(dependency)
    return grouped


def node(milestone: Milestone) -> MilestoneNode:
    """A milestone row as the graph sees it."""
    return MilestoneNode(milestone.id, milestone.name, milestone.due_date, milestone.pinned)


def graph_of(market: str, milestones: Sequence[Milestone],
             dependencies: Mapping[str, list[Dependency]]) -> MilestoneGraph:
    """The graph of these milestones and their dependencies (loaded with `dependencies_of`)."""
    return MilestoneGraph.of(market, (node(m) for m in milestones),
                             (Link(d.predecessor_id, d.successor_id, d.lag_days)
                              for m in milestones for d in dependencies[m.id]))


def load_graph(session: Session, campaign: Campaign) -> tuple[MilestoneGraph, dict[str, Milestone]]:
    """The campaign's milestone graph, and its milestone rows by id to write results to."""
    rows = {m.id: m for m in session.exec(select(Milestone)
                                          .where(Milestone.campaign_id == campaign.id))}
    milestones = list(rows.values())
    return graph_of(campaign.market, milestones, dependencies_of(session, rows)), rows


def moved_event(milestone: Milestone, from_date: date) -> NewEvent:
    return NewEvent("milestone.moved", milestone.campaign_id, {
        "milestone_id": milestone.id, "kind": milestone.kind, "from_date": from_date,
        "to_date": milestone.due_date})


def phase_event(phase: Phase, change: str, before: tuple[date, date] | None,
                from_kind: str | None = None) -> NewEvent:
    """`phase.changed`: `change` is created, moved (new dates), updated (a new kind, named
    with `from_kind`, and maybe new dates) or deleted; `from`/`to` the dates before and after
    (null for a phase that did not exist before, or no longer does)."""
    def span(dates: tuple[date, date] | None) -> dict[str, date] | None:
        return None if dates is None else {"start_date": dates[0], "end_date": dates[1]}
    after = None if change == "deleted" else (phase.start_date, phase.end_date)
    kinds = {"kind": phase.kind} | ({"from_kind": from_kind} if change == "updated" else {})
    return NewEvent("phase.changed", phase.campaign_id, {
        "phase_id": phase.id, **kinds, "change": change, "from": span(before),
        "to": span(after)})


@dataclass(frozen=True)
class Applied:
    """What a cascade changed: every milestone move (the cascade's, then the anchored ones
    that followed), and the events of all changes, phases and campaign window included."""

    moves: tuple[Move, ...]
    events: tuple[NewEvent, ...]


def _follow_span(first: date, last: date, move: Move, market: str) -> tuple[date, date]:
    # The day after the end follows, so that spans that met still meet (graph.follow). A
    # span keeps at least its first day: from an anchor moved onto a day off, the days that
    # were past a working day collapse onto the anchor's one day (Thu..Sat after a Thursday
    # launch is Sunday alone after a Sunday one), where a span ending the day before it
    # starts would be no span at all.
    start = follow(first, move.from_date, move.to_date, market)
    return start, max(start, follow(last + timedelta(days=1), move.from_date, move.to_date,
                                    market) - timedelta(days=1))


def apply_moves(session: Session, campaign: Campaign, rows: Mapping[str, Milestone],
                moves: Iterable[Move]) -> Applied:
    """Write the dates a cascade worked out to their rows, each a new version; move what is
    anchored to a moved milestone by the same working-day offsets (pinned milestones stay);
    stretch the campaign window where it ended or began with a phase that moved."""
    moves = tuple(moves)
    by_anchor = {move.milestone_id: move for move in moves}
    followers = [m for m in rows.values() if m.anchor_id in by_anchor and not m.pinned
                 and m.id not in by_anchor]
    all_moves = list(moves)
    for follower in followers:
        anchor_move = by_anchor[follower.anchor_id]   # type: ignore[index]
        to_date = follow(follower.due_date, anchor_move.from_date, anchor_move.to_date,
                         campaign.market)
        if to_date != follower.due_date:
            all_moves.append(Move(follower.id, follower.due_date, to_date))
    events: list[NewEvent] = []
    for move in all_moves:
        milestone = rows[move.milestone_id]
        milestone.due_date = move.to_date
        changed(milestone)
        session.add(milestone)
        events.append(moved_event(milestone, move.from_date))
    window = {"start_date": campaign.start_date, "end_date": campaign.end_date}
    phases = session.exec(select(Phase).where(col(Phase.anchor_id).in_(list(by_anchor)))
                          .order_by(col(Phase.start_date), col(Phase.id))).all() if moves else []
    for phase in phases:
        before = (phase.start_date, phase.end_date)
        phase.start_date, phase.end_date = _follow_span(*before, by_anchor[phase.anchor_id],  # type: ignore[index]
                                                        campaign.market)
        if (phase.start_date, phase.end_date) != before:
            phase.version += 1
            session.add(phase)
            events.append(phase_event(phase, "moved", before))
            if before[0] == campaign.start_date:
                window["start_date"] = phase.start_date
            if before[1] == campaign.end_date:
                window["end_date"] = phase.end_date
    # Every phase stays inside the window (a hand-made one need not have moved with it).
    if phases:
        spans = [(p.start_date, p.end_date) for p in campaign_phases(session, campaign.id)]
        window["start_date"] = min(window["start_date"], *(first for first, _ in spans))
        window["end_date"] = max(window["end_date"], *(last for _, last in spans))
    changes = {field: {"from": getattr(campaign, field), "to": value}
               for field, value in window.items() if getattr(campaign, field) != value}
    if changes:
        campaign.sqlmodel_update(window)
        events.append(NewEvent("campaign.updated", campaign.id, {"changes": changes}))
    return Applied(tuple(all_moves), tuple(events))
