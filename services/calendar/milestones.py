"""Milestones: shapes and use cases, with their finish-to-start dependencies, moves that carry
dependents along, and review gates' approvals. The graph work (earliest dates, cascades,
cycles) is done by the pure `graph` package on data loaded once per request."""
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.calendar.graph import (
    CONTINGENCY_HOURS,
    Link,
    MilestoneGraph,
    Move,
    PinnedMilestoneInTheWay,
    cascade,
    earliest,
    find_cycle,
)
from services.calendar.models import Campaign, Dependency, Milestone, utcnow
from services.calendar.store import (
    apply_moves,
    changed,
    dependencies_of,
    get_campaign,
    get_milestone,
    load_graph,
    node,
    touch,
)
from shared.errors import Conflict, NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.types import Identifier, Name, StrictModel, text
from shared.versioning import require_if_match

MilestoneKind = Literal["kickoff", "creative_final", "channel_test", "launch", "review_gate",
                        "contingency"]
MAX_LAG_DAYS = 260            # a working year
MAX_WINDOW_HOURS = 24 * 14
COMMENT_LENGTH = 2000
LagDays = Field(0, ge=0, le=MAX_LAG_DAYS, description="Working days between the two.")


class DependencyCreate(StrictModel):
    milestone_id: Identifier = Field(description="The predecessor, in the same campaign.")
    lag_days: int = LagDays


class MilestoneCreate(StrictModel):
    kind: MilestoneKind
    name: Name
    due_date: date
    due_time: time | None = Field(None, description="Local time in the campaign's time zone; "
                                  "without it the milestone is an all-day event.")
    window_hours: int | None = Field(None, ge=1, le=MAX_WINDOW_HOURS, description="Contingency: "
                                     f"hours kept free before and after (default "
                                     f"{CONTINGENCY_HOURS}).")
    owner: Name | None = None
    pinned: bool = False
    depends_on: list[DependencyCreate] = Field([], max_length=50)


class MilestoneUpdate(StrictModel):
    """Everything but the date, which changes through `move` (it carries dependents along)."""
    name: Name | None = None
    due_time: time | None = None
    window_hours: int | None = Field(None, ge=1, le=MAX_WINDOW_HOURS)
    owner: Name | None = None
    status: Literal["planned", "done"] | None = None
    pinned: bool | None = None


class MoveRequest(StrictModel):
    due_date: date


class ApprovalCreate(StrictModel):
    decision: Literal["passed", "rejected"]
    comment: text(COMMENT_LENGTH, min_length=0) | None = None   # type: ignore[valid-type]


class DependencyPublic(BaseModel):
    milestone_id: str
    lag_days: int


class ApprovalPublic(BaseModel):
    approver: str
    decision: Literal["passed", "rejected"]
    comment: str | None
    at: datetime


class MilestonePublic(BaseModel):
    id: str
    campaign_id: str
    kind: str
    name: str
    due_date: date
    due_time: time | None
    window_hours: int | None
    owner: str | None
    status: str
    pinned: bool
    approval: ApprovalPublic | None
    depends_on: list[DependencyPublic]
    version: int


class MovedPublic(BaseModel):
    milestone_id: str
    name: str
    from_date: date
    to_date: date


class MoveResult(BaseModel):
    milestone: MilestonePublic
    moved: list[MovedPublic] = Field(description="Every milestone whose date changed, the "
                                     "moved one first, then its dependents in chain order.")


def campaign_milestones(session: Session, campaign_id: str) -> list[Milestone]:
    """The campaign's milestones in date order."""
    return list(session.exec(select(Milestone).where(Milestone.campaign_id == campaign_id)
                             .order_by(col(Milestone.due_date), col(Milestone.id))))


def milestones_public(session: Session, milestones: Sequence[Milestone]) -> list[MilestonePublic]:
    """These milestones with their dependencies (one query for all of them)."""
    dependencies = dependencies_of(session, (m.id for m in milestones))
    return [MilestonePublic(**m.model_dump(), depends_on=[
        DependencyPublic(milestone_id=d.predecessor_id, lag_days=d.lag_days)
        for d in dependencies[m.id]]) for m in milestones]


def milestone_public(session: Session, milestone: Milestone) -> MilestonePublic:
    return milestones_public(session, [milestone])[0]


def read_milestone(*, session: Session, campaign_id: str, milestone_id: str) -> MilestonePublic:
    """Read a milestone with its dependencies."""
    return milestone_public(session, get_milestone(session, campaign_id, milestone_id))


def _moved_public(graph: MilestoneGraph, moves: Sequence[Move]) -> list[MovedPublic]:
    return [MovedPublic(milestone_id=m.milestone_id, name=graph.milestones[m.milestone_id].name,
                        from_date=m.from_date, to_date=m.to_date) for m in moves]


def _pinned_in_the_way(error: PinnedMilestoneInTheWay) -> Conflict:
    pinned, requirement = error.milestone, error.requirement
    return Conflict(
        f"Pinned milestone {pinned.name!r} ({pinned.id}) is due {pinned.due_date} but would "
        f"have to move to {requirement.earliest}: it must be {requirement.link.lag_days} "
        f"working day(s) after {requirement.predecessor.name!r}, now due "
        f"{requirement.predecessor.due_date}. Unpin it, or move less.",
        pinned=pinned.id, required_date=requirement.earliest.isoformat())


def _link(graph: MilestoneGraph, campaign: Campaign, successor_id: str,
          dependency_in: DependencyCreate, field: str) -> tuple[MilestoneGraph, Link]:
    """The graph with the checked dependency added (422 naming `field` if it cannot be)."""
    predecessor = graph.milestones.get(dependency_in.milestone_id)
    if predecessor is None:
        raise invalid_fields([(field, f"campaign {campaign.id!r} has no milestone "
                                      f"{dependency_in.milestone_id!r}; dependencies link "
                                      "milestones of one campaign")])
    if predecessor.id == successor_id:
        raise invalid_fields([(field, "a milestone cannot depend on itself")])
    if cycle := find_cycle(graph, predecessor.id, successor_id):
        names = [graph.milestones[m].name for m in cycle]
        raise invalid_fields([(field, "this dependency would close a cycle: "
                                      + " → ".join([predecessor.name, *names]))])
    link = Link(predecessor.id, successor_id, dependency_in.lag_days)
    return graph.with_link(link), link


def _save_link(session: Session, link: Link) -> None:
    existing = session.get(Dependency, (link.predecessor_id, link.successor_id))
    if existing is not None:
        existing.lag_days = link.lag_days
        session.add(existing)
    else:
        session.add(Dependency(predecessor_id=link.predecessor_id,
                               successor_id=link.successor_id, lag_days=link.lag_days))


def create_milestone(*, session: Session, campaign_id: str, milestone_in: MilestoneCreate,
                     idempotency: Idempotency) -> MilestonePublic:
    """Add a milestone; its date must keep its dependencies."""
    campaign = get_campaign(session, campaign_id, lock=True)
    graph, _ = load_graph(session, campaign)
    values = milestone_in.model_dump(exclude={"depends_on"})
    if milestone_in.kind == "contingency" and milestone_in.window_hours is None:
        values["window_hours"] = CONTINGENCY_HOURS
    milestone = Milestone(id=new_id("ms"), campaign_id=campaign.id, status="planned", **values)
    graph = graph.with_milestone(node(milestone))
    for i, dependency_in in enumerate(milestone_in.depends_on):
        graph, _ = _link(graph, campaign, milestone.id, dependency_in, f"depends_on[{i}]")
    requirement = earliest(graph, milestone.id)
    if requirement is not None and milestone.due_date < requirement.earliest:
        raise invalid_fields([("due_date", f"its dependencies allow {requirement.earliest} at "
                                           f"the earliest (after "
                                           f"{requirement.predecessor.name!r})")])
    session.add(milestone)
    session.flush()   # the dependencies' foreign keys need the milestone's row first
    for link in graph.incoming(milestone.id):
        _save_link(session, link)
    touch(campaign)
    session.add(campaign)
    session.flush()
    answer = milestone_public(session, milestone)
    idempotency.record(session, answer)
    session.commit()
    return answer


def update_milestone(*, session: Session, campaign_id: str, milestone_id: str,
                     update: MilestoneUpdate, if_match: str | None) -> MilestonePublic:
    """Change a milestone's name, owner, time, status or pin (not its date: see move)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    require_if_match(if_match, milestone.version, what="milestone")
    if update.status is not None and milestone.kind == "review_gate":
        raise invalid_fields([("status", "a review gate's status comes from its approval; "
                                         "POST …/approval instead")])
    milestone.sqlmodel_update(update.model_dump(exclude_unset=True))
    changed(milestone)
    touch(campaign)
    session.add_all([milestone, campaign])
    answer = milestone_public(session, milestone)
    session.commit()
    return answer


def move_milestone(*, session: Session, campaign_id: str, milestone_id: str, move: MoveRequest,
                   if_match: str | None) -> MoveResult:
    """Move a milestone to a new date and push its dependents as their rules require."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    require_if_match(if_match, milestone.version, what="milestone")
    if milestone.pinned:
        raise Conflict(f"Milestone {milestone.name!r} is pinned; unpin it (PATCH pinned=false) "
                       "before moving it.", pinned=milestone.id)
    graph, rows = load_graph(session, campaign)
    requirement = earliest(graph, milestone.id)
    if requirement is not None and move.due_date < requirement.earliest:
        before = requirement.predecessor
        raise Conflict(f"{milestone.name!r} must stay at least until {requirement.earliest}: "
                       f"it depends on {before.name!r}, due {before.due_date}. Move that one "
                       "first, or remove the dependency.",
                       required_date=requirement.earliest.isoformat())
    try:
        moves = cascade(graph, milestone.id, move.due_date)
    except PinnedMilestoneInTheWay as error:
        raise _pinned_in_the_way(error) from None
    if moves:
        apply_moves(session, rows, moves)
        touch(campaign)
        session.add(campaign)
    answer = MoveResult(milestone=milestone_public(session, milestone),
                        moved=_moved_public(graph, moves))
    session.commit()
    return answer


def add_dependency(*, session: Session, campaign_id: str, milestone_id: str,
                   dependency_in: DependencyCreate) -> MoveResult:
    """Make a milestone depend on another; if it now breaks the rule it is pushed (cascading)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    graph, rows = load_graph(session, campaign)
    graph, link = _link(graph, campaign, milestone.id, dependency_in, "milestone_id")
    _save_link(session, link)
    requirement = earliest(graph, milestone.id)
    assert requirement is not None   # the link just added is one of its predecessors
    moves: tuple[Move, ...] = ()
    if milestone.due_date < requirement.earliest:
        if milestone.pinned:
            raise Conflict(f"Pinned milestone {milestone.name!r} would have to move to "
                           f"{requirement.earliest} to follow "
                           f"{requirement.predecessor.name!r}; unpin it first.",
                           pinned=milestone.id, required_date=requirement.earliest.isoformat())
        try:
            moves = cascade(graph, milestone.id, requirement.earliest)
        except PinnedMilestoneInTheWay as error:
            raise _pinned_in_the_way(error) from None
        apply_moves(session, rows, moves)
    else:
        changed(milestone)   # its dependencies are part of it (ETag, feed)
    touch(campaign)
    session.add_all([milestone, campaign])
    answer = MoveResult(milestone=milestone_public(session, milestone),
                        moved=_moved_public(graph, moves))
    session.commit()
    return answer


def remove_dependency(*, session: Session, campaign_id: str, milestone_id: str,
                      predecessor_id: str) -> None:
    """Drop a dependency; no date changes."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    dependency = session.get(Dependency, (predecessor_id, milestone.id))
    if dependency is None:
        raise NotFound(f"Milestone {milestone_id!r} does not depend on {predecessor_id!r}.")
    session.delete(dependency)
    changed(milestone)
    touch(campaign)
    session.add_all([milestone, campaign])
    session.commit()


def approve_gate(*, session: Session, campaign_id: str, milestone_id: str,
                 approval_in: ApprovalCreate, caller: Caller) -> MilestonePublic:
    """Record a review gate's decision: who, what, why, when."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    if milestone.kind != "review_gate":
        raise invalid_fields([("milestone_id", f"{milestone.name!r} is a {milestone.kind}, not "
                                               "a review_gate; only gates are approved")])
    milestone.approval = {"approver": caller.principal, "decision": approval_in.decision,
                          "comment": approval_in.comment, "at": utcnow().isoformat()}
    milestone.status = approval_in.decision
    changed(milestone)
    touch(campaign)
    session.add_all([milestone, campaign])
    answer = milestone_public(session, milestone)
    session.commit()
    return answer
