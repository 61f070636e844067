"""Milestones: shapes and use cases, with their finish-to-start dependencies, moves that carry
dependents along, and review gates' approvals. The graph work (earliest dates, cascades,
cycles) is done by the pure `graph` package on data loaded once per request."""
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import func
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import Session, col, or_, select

from services.calendar import audit
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
from services.calendar.models import (
    COMMENT_LENGTH,
    Approval,
    Campaign,
    Dependency,
    Milestone,
    Phase,
)
from services.calendar.outbox import NewEvent, publish
from services.calendar.store import (
    apply_moves,
    changed,
    dependencies_of,
    get_campaign,
    get_milestone,
    load_graph,
    node,
    read_rows,
    rows_of,
    touch,
)
from shared.errors import Conflict, NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.pagination import Page, paginate
from shared.requests import current_request_id
from shared.types import Identifier, Name, StrictModel, text
from shared.versioning import require_if_match

MilestoneKind = Literal["kickoff", "creative_final", "channel_test", "launch", "review_gate",
                        "contingency"]
MAX_LAG_DAYS = 260            # a working year
MAX_WINDOW_HOURS = 24 * 14
LagDays = Field(0, ge=0, le=MAX_LAG_DAYS, description="Working days between the two.")
# Lists page by id (ids sort by creation time), an order a move cannot change under a reader.
MILESTONE_ORDER = [cast(InstrumentedAttribute[Any], Milestone.id)]


def _local(value: time) -> time:
    # A milestone's time is local to its campaign's time zone (whose offset changes with
    # daylight saving): an offset given with it would be silently dropped or contradict it.
    if value.tzinfo is not None:
        raise ValueError("give a local time in the campaign's time zone without a UTC offset, "
                         "e.g. 10:30:00; the campaign's time_zone places it")
    return value


LocalTime = Annotated[time, AfterValidator(_local)]


class DependencyCreate(StrictModel):
    milestone_id: Identifier = Field(description="The predecessor, in the same campaign.")
    lag_days: int = LagDays


class MilestoneCreate(StrictModel):
    kind: MilestoneKind
    name: Name
    due_date: date
    due_time: LocalTime | None = Field(None, description="Local time in the campaign's time "
                                       "zone, without a UTC offset; without it the milestone "
                                       "is an all-day event.")
    window_hours: int | None = Field(None, ge=1, le=MAX_WINDOW_HOURS, description="Contingency: "
                                     f"hours kept free before and after (default "
                                     f"{CONTINGENCY_HOURS}).")
    owner: Name | None = None
    pinned: bool = False
    depends_on: list[DependencyCreate] = Field([], max_length=50)


class MilestoneUpdate(StrictModel):
    """Everything but the date, which changes through `move` (it carries dependents along)."""
    name: Name | None = None
    due_time: LocalTime | None = None
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
    id: int
    approver: str
    approver_name: str | None
    decision: Literal["passed", "rejected"]
    comment: str | None
    at: datetime
    request_id: str | None


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
    approval: ApprovalPublic | None = Field(description="A review gate's current decision: "
                                            "its latest (all of them: …/approvals).")
    anchor_id: str | None = Field(description="The launch this milestone follows when it moves.")
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


def approval_public(approval: Approval) -> ApprovalPublic:
    return ApprovalPublic.model_validate(approval, from_attributes=True)


def latest_approvals(session: Session, milestone_ids: Sequence[str]) -> dict[str, Approval]:
    """The current (latest) decision of each of these gates that has one, in one query."""
    if not milestone_ids:
        return {}
    latest = (select(func.max(Approval.id))
              .where(col(Approval.milestone_id).in_(milestone_ids))
              .group_by(col(Approval.milestone_id)))
    return {a.milestone_id: a
            for a in read_rows(session, rows_of(Approval).where(col(Approval.id).in_(latest)))}


# What a milestone's answer takes from its row (objects or read-only rows alike).
_STORED = MilestonePublic.model_fields.keys() - {"approval", "depends_on"}


def milestones_public(session: Session, milestones: Sequence[Milestone]) -> list[MilestonePublic]:
    """These milestones (objects or rows) with their dependencies and current decisions (one
    query each for all of them)."""
    dependencies = dependencies_of(session, (m.id for m in milestones))
    approvals = latest_approvals(session, [m.id for m in milestones if m.kind == "review_gate"])
    return [MilestonePublic(**{name: getattr(m, name) for name in _STORED}, depends_on=[
        DependencyPublic(milestone_id=d.predecessor_id, lag_days=d.lag_days)
        for d in dependencies[m.id]], approval=(approval_public(approvals[m.id])
                                                 if m.id in approvals else None))
        for m in milestones]


def milestone_public(session: Session, milestone: Milestone) -> MilestonePublic:
    return milestones_public(session, [milestone])[0]


def milestone_state(milestone: Milestone) -> dict[str, Any]:
    """A milestone's stored fields, for the audit log."""
    return milestone.model_dump(exclude={"created_at", "updated_at"})


def read_milestone(*, session: Session, campaign_id: str, milestone_id: str) -> MilestonePublic:
    """Read a milestone with its dependencies."""
    return milestone_public(session, get_milestone(session, campaign_id, milestone_id))


def list_milestones(*, session: Session, campaign_id: str, kind: str | None, limit: int,
                    cursor: str | None) -> Page[MilestonePublic]:
    """List a campaign's milestones, oldest first."""
    campaign = get_campaign(session, campaign_id)
    statement = select(Milestone).where(Milestone.campaign_id == campaign.id)
    if kind is not None:
        statement = statement.where(Milestone.kind == kind)
    rows, next_cursor = paginate(session, statement, order_by=MILESTONE_ORDER, limit=limit,
                                 cursor=cursor)
    return Page[MilestonePublic](items=milestones_public(session, rows), next_cursor=next_cursor)


def _moved_public(rows: dict[str, Milestone], moves: Sequence[Move]) -> list[MovedPublic]:
    return [MovedPublic(milestone_id=m.milestone_id, name=rows[m.milestone_id].name,
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


def created_event(milestone: Milestone) -> NewEvent:
    return NewEvent("milestone.created", milestone.campaign_id, {
        "milestone_id": milestone.id, "kind": milestone.kind, "name": milestone.name,
        "due_date": milestone.due_date, "due_time": milestone.due_time})


def _dependency_event(kind: str, link: Link, campaign_id: str) -> NewEvent:
    return NewEvent(kind, campaign_id, {"milestone_id": link.successor_id,
                                        "predecessor_id": link.predecessor_id,
                                        "lag_days": link.lag_days})


def create_milestone(*, session: Session, campaign_id: str, milestone_in: MilestoneCreate,
                     caller: Caller, idempotency: Idempotency) -> MilestonePublic:
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
    audit.record(session, caller=caller, action="milestone.created", target=milestone.id,
                 campaign_id=campaign.id, after=answer)
    publish(session, [created_event(milestone)])
    idempotency.record(session, answer)
    session.commit()
    return answer


def update_milestone(*, session: Session, campaign_id: str, milestone_id: str,
                     update: MilestoneUpdate, caller: Caller,
                     if_match: str | None) -> MilestonePublic:
    """Change a milestone's name, owner, time, status or pin (not its date: see move)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    require_if_match(if_match, milestone.version, what="milestone")
    if update.status is not None and milestone.kind == "review_gate":
        raise invalid_fields([("status", "a review gate's status comes from its approval; "
                                         "POST …/approval instead")])
    before = milestone_state(milestone)
    milestone.sqlmodel_update(update.model_dump(exclude_unset=True))
    after = milestone_state(milestone)
    changes = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    changed(milestone)
    touch(campaign)
    session.add_all([milestone, campaign])
    answer = milestone_public(session, milestone)
    audit.record(session, caller=caller, action="milestone.updated", target=milestone.id,
                 campaign_id=campaign.id, before=before, after=after)
    publish(session, [NewEvent("milestone.updated", campaign.id, {
        "milestone_id": milestone.id, "kind": milestone.kind, "changes": changes})])
    session.commit()
    return answer


def move_milestone(*, session: Session, campaign_id: str, milestone_id: str, move: MoveRequest,
                   caller: Caller, if_match: str | None) -> MoveResult:
    """Move a milestone to a new date and push its dependents as their rules require; what
    follows it (a launch's phases and contingency window) keeps its working-day offsets."""
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
    applied = apply_moves(session, campaign, rows, moves)
    moved = _moved_public(rows, applied.moves)
    if applied.moves:
        touch(campaign)
        session.add(campaign)
        audit.record(session, caller=caller, action="milestone.moved", target=milestone.id,
                     campaign_id=campaign.id, before={"due_date": moves[0].from_date},
                     after={"due_date": move.due_date, "moved": moved})
    answer = MoveResult(milestone=milestone_public(session, milestone), moved=moved)
    publish(session, applied.events)
    session.commit()
    return answer


def add_dependency(*, session: Session, campaign_id: str, milestone_id: str,
                   dependency_in: DependencyCreate, caller: Caller) -> MoveResult:
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
    applied = apply_moves(session, campaign, rows, moves)
    if not moves:
        changed(milestone)   # its dependencies are part of it (ETag, feed)
    touch(campaign)
    session.add_all([milestone, campaign])
    moved = _moved_public(rows, applied.moves)
    audit.record(session, caller=caller, action="dependency.added", target=milestone.id,
                 campaign_id=campaign.id, after={"predecessor_id": link.predecessor_id,
                                                 "lag_days": link.lag_days, "moved": moved})
    answer = MoveResult(milestone=milestone_public(session, milestone), moved=moved)
    publish(session, [_dependency_event("dependency.added", link, campaign.id),
                      *applied.events])
    session.commit()
    return answer


def remove_dependency(*, session: Session, campaign_id: str, milestone_id: str,
                      predecessor_id: str, caller: Caller) -> None:
    """Drop a dependency; no date changes."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    dependency = session.get(Dependency, (predecessor_id, milestone.id))
    if dependency is None:
        raise NotFound(f"Milestone {milestone_id!r} does not depend on {predecessor_id!r}.")
    link = Link(dependency.predecessor_id, dependency.successor_id, dependency.lag_days)
    session.delete(dependency)
    changed(milestone)
    touch(campaign)
    session.add_all([milestone, campaign])
    audit.record(session, caller=caller, action="dependency.removed", target=milestone.id,
                 campaign_id=campaign.id, before={"predecessor_id": link.predecessor_id,
                                                  "lag_days": link.lag_days})
    publish(session, [_dependency_event("dependency.removed", link, campaign.id)])
    session.commit()


def delete_milestone(*, session: Session, campaign_id: str, milestone_id: str, caller: Caller,
                     if_match: str | None) -> None:
    """Remove a milestone and its dependencies; what followed it stays where it is. A review
    gate's decisions stay in its history."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    require_if_match(if_match, milestone.version, what="milestone")
    before = milestone_public(session, milestone)
    links = session.exec(select(Dependency).where(or_(
        Dependency.predecessor_id == milestone.id, Dependency.successor_id == milestone.id))).all()
    for dependency in links:
        session.delete(dependency)
    followers = [*session.exec(select(Milestone).where(Milestone.anchor_id == milestone.id)),
                 *session.exec(select(Phase).where(Phase.anchor_id == milestone.id))]
    for follower in followers:
        follower.anchor_id = None
        session.add(follower)
    session.flush()   # nothing may refer to the row when it goes
    session.delete(milestone)
    touch(campaign)
    session.add(campaign)
    audit.record(session, caller=caller, action="milestone.deleted", target=milestone.id,
                 campaign_id=campaign.id, before=before)
    publish(session, [NewEvent("milestone.deleted", campaign.id, {
        "milestone_id": milestone.id, "kind": milestone.kind, "due_date": milestone.due_date})])
    session.commit()


def approve_gate(*, session: Session, campaign_id: str, milestone_id: str,
                 approval_in: ApprovalCreate, caller: Caller) -> MilestonePublic:
    """Record a review gate's decision: who, what, why, when (every decision is kept)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    if milestone.kind != "review_gate":
        raise invalid_fields([("milestone_id", f"{milestone.name!r} is a {milestone.kind}, not "
                                               "a review_gate; only gates are approved")])
    decision = Approval(campaign_id=campaign.id, milestone_id=milestone.id,
                        decision=approval_in.decision, comment=approval_in.comment,
                        approver=caller.principal, approver_name=audit.caller_name(caller),
                        request_id=current_request_id())
    session.add(decision)
    previous = milestone.status
    milestone.status = approval_in.decision
    changed(milestone)
    touch(campaign)
    session.add_all([milestone, campaign])
    session.flush()
    answer = milestone_public(session, milestone)
    audit.record(session, caller=caller, action="milestone.decided", target=milestone.id,
                 campaign_id=campaign.id, before={"status": previous},
                 after={"status": milestone.status, "approval": answer.approval})
    publish(session, [NewEvent("milestone.decided", campaign.id, {
        "milestone_id": milestone.id, "kind": milestone.kind, "decision": decision.decision,
        "from_status": previous, "to_status": milestone.status})])
    session.commit()
    return answer


def list_approvals(*, session: Session, campaign_id: str,
                   milestone_id: str) -> Page[ApprovalPublic]:
    """Every decision on a review gate, oldest first; the last one is current."""
    milestone = get_milestone(session, campaign_id, milestone_id)
    rows = session.exec(select(Approval).where(Approval.milestone_id == milestone.id)
                        .order_by(col(Approval.id))).all()
    return Page[ApprovalPublic](items=[approval_public(a) for a in rows])
