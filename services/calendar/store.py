"""Row access the calendar's use cases share: a campaign or milestone loaded (locked for a
write) or 404, a change recorded on the campaign, a campaign's milestone graph loaded as plain
data in two queries, and the moves the graph works out written back."""
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Session, col, select

from services.calendar.graph import Link, MilestoneGraph, MilestoneNode, Move
from services.calendar.models import Campaign, Dependency, Milestone, utcnow
from shared.errors import NotFound

# Campaign lists page by id (ids sort by creation time). SQLModel types `Campaign.id` as a
# str for instances; `paginate` takes the class attribute it is at run time.
CAMPAIGN_ORDER = [cast(InstrumentedAttribute[Any], Campaign.id)]


def get_campaign(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign:
    """Load a campaign or raise NotFound; `lock` holds its row until commit."""
    statement = select(Campaign).where(Campaign.id == campaign_id)
    campaign = session.exec(statement.with_for_update() if lock else statement).first()
    if campaign is None:
        raise NotFound(f"There is no campaign {campaign_id!r}; list campaigns at "
                       "/api/v1/calendar/campaigns.")
    return campaign


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
    order."""
    ids = list(milestone_ids)
    grouped: dict[str, list[Dependency]] = {i: [] for i in ids}
    if ids:
        for dependency in session.exec(select(Dependency)
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


def apply_moves(session: Session, rows: Mapping[str, Milestone], moves: Iterable[Move]) -> None:
    """Write the dates a cascade worked out to their rows, each a new version."""
    for move in moves:
        milestone = rows[move.milestone_id]
        milestone.due_date = move.to_date
        changed(milestone)
        session.add(milestone)
