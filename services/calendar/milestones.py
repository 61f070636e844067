"""Milestones, their finish-to-start dependencies, moves that carry dependents along, review
gate approvals, and phases.

A dependency `A → B, lag n` means B is due at least n working days (the campaign market's
weekends and holidays skipped) after A. Moving A later pushes each dependent that would break
its rule to the earliest date that keeps it, and so on down the chain; a pinned dependent that
would have to move makes the whole move a 409. Moving A earlier leaves dependents where they
are (their slack grows), as monday.com's "flexible" dependency mode does.
"""
from collections import deque
from datetime import date, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from services.calendar.campaigns import (MilestoneKind, MilestonePublic, PhaseKind, PhasePublic,
                                         Text, get_campaign, milestone_public, touch)
from services.calendar.models import Campaign, Dependency, Milestone, Phase, utcnow
from shared.workdays import add_working_days
from shared.errors import Conflict, NotFound, invalid_fields
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.versioning import require_if_match

LagDays = Field(0, ge=0, le=260, description="Working days between the two.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DependencyCreate(_Strict):
    milestone_id: str = Field(description="The predecessor, in the same campaign.")
    lag_days: int = LagDays


class MilestoneCreate(_Strict):
    kind: MilestoneKind
    name: Text
    due_date: date
    due_time: time | None = Field(None, description="Local time in the campaign's time zone; "
                                  "without it the milestone is an all-day event.")
    window_hours: int | None = Field(None, ge=1, le=24 * 14, description="Contingency: hours "
                                     "kept free before and after (default 48).")
    owner: Text | None = None
    pinned: bool = False
    depends_on: list[DependencyCreate] = Field([], max_length=50)


class MilestoneUpdate(_Strict):
    """Everything but the date, which changes through `move` (it carries dependents along)."""
    name: Text | None = None
    due_time: time | None = None
    window_hours: int | None = Field(None, ge=1, le=24 * 14)
    owner: Text | None = None
    status: Literal["planned", "done"] | None = None
    pinned: bool | None = None


class MoveRequest(_Strict):
    due_date: date


class MovedPublic(BaseModel):
    milestone_id: str
    name: str
    from_date: date
    to_date: date


class MoveResult(BaseModel):
    milestone: MilestonePublic
    moved: list[MovedPublic] = Field(description="Every milestone whose date changed, the "
                                     "moved one first, then its dependents in chain order.")


class ApprovalCreate(_Strict):
    decision: Literal["passed", "rejected"]
    comment: str | None = Field(None, max_length=2000)


class PhaseCreate(_Strict):
    kind: PhaseKind
    start_date: date
    end_date: date


def get_milestone(session: Session, campaign_id: str, milestone_id: str) -> Milestone:
    milestone = session.get(Milestone, milestone_id)
    if milestone is None or milestone.campaign_id != campaign_id:
        raise NotFound(f"Campaign {campaign_id!r} has no milestone {milestone_id!r}.")
    return milestone


def _earliest(session: Session, milestone: Milestone, market: str) -> tuple[date, Milestone] | None:
    """The earliest date the milestone's predecessors allow, and the predecessor that sets it."""
    best = None
    for dependency in session.exec(select(Dependency).where(Dependency.successor_id == milestone.id)):
        predecessor = session.get(Milestone, dependency.predecessor_id)
        allowed = add_working_days(predecessor.due_date, dependency.lag_days, market)
        if best is None or allowed > best[0]:
            best = (allowed, predecessor)
    return best


def _cascade(session: Session, campaign: Campaign, start: Milestone,
             moves: list[MovedPublic]) -> None:
    """Push dependents of `start` that now break their rule, breadth first down the chain."""
    queue = deque([start.id])
    while queue:
        current = queue.popleft()
        for dependency in session.exec(select(Dependency).where(Dependency.predecessor_id == current)):
            successor = session.get(Milestone, dependency.successor_id)
            required, because = _earliest(session, successor, campaign.market)
            if successor.due_date >= required:
                continue
            if successor.pinned:   # nothing is committed: the whole move is refused
                raise Conflict(
                    f"Pinned milestone {successor.name!r} ({successor.id}) is due "
                    f"{successor.due_date} but would have to move to {required}: it must be "
                    f"{dependency.lag_days} working day(s) after {because.name!r}, now due "
                    f"{because.due_date}. Unpin it, or move less.",
                    pinned=successor.id, required_date=required.isoformat())
            moves.append(MovedPublic(milestone_id=successor.id, name=successor.name,
                                     from_date=successor.due_date, to_date=required))
            successor.due_date = required
            successor.version += 1
            successor.updated_at = utcnow()
            session.add(successor)
            queue.append(successor.id)


def _find_cycle(session: Session, predecessor_id: str, successor_id: str) -> list[str] | None:
    """The path successor → … → predecessor if adding predecessor → successor closes a cycle."""
    parents: dict[str, str | None] = {successor_id: None}
    queue = deque([successor_id])
    while queue:
        current = queue.popleft()
        if current == predecessor_id:
            path = [current]
            while parents[path[-1]] is not None:
                path.append(parents[path[-1]])
            return list(reversed(path))
        for following in session.exec(select(Dependency.successor_id)
                                      .where(Dependency.predecessor_id == current)):
            if following not in parents:
                parents[following] = current
                queue.append(following)
    return None


def _add_dependency(session: Session, campaign: Campaign, successor: Milestone,
                    dependency_in: DependencyCreate, field: str) -> None:
    predecessor = session.get(Milestone, dependency_in.milestone_id)
    if predecessor is None or predecessor.campaign_id != campaign.id:
        raise invalid_fields([(field, f"campaign {campaign.id!r} has no milestone "
                                      f"{dependency_in.milestone_id!r}; dependencies link "
                                      "milestones of one campaign")])
    if predecessor.id == successor.id:
        raise invalid_fields([(field, "a milestone cannot depend on itself")])
    if cycle := _find_cycle(session, predecessor.id, successor.id):
        names = [session.get(Milestone, m).name for m in cycle]
        raise invalid_fields([(field, "this dependency would close a cycle: "
                                      + " → ".join([predecessor.name, *names]))])
    existing = session.get(Dependency, (predecessor.id, successor.id))
    if existing is not None:
        existing.lag_days = dependency_in.lag_days
        session.add(existing)
    else:
        session.add(Dependency(predecessor_id=predecessor.id, successor_id=successor.id,
                               lag_days=dependency_in.lag_days))
    session.flush()


def create_milestone(*, session: Session, campaign_id: str, milestone_in: MilestoneCreate,
                     caller: Caller) -> MilestonePublic:
    """Add a milestone (staged; the caller commits); its date must keep its dependencies."""
    campaign = get_campaign(session, campaign_id, lock=True)
    values = milestone_in.model_dump(exclude={"depends_on"})
    if milestone_in.kind == "contingency" and milestone_in.window_hours is None:
        values["window_hours"] = 48
    milestone = Milestone(id=new_id("ms"), campaign_id=campaign.id, status="planned", **values)
    session.add(milestone)
    session.flush()
    for i, dependency_in in enumerate(milestone_in.depends_on):
        _add_dependency(session, campaign, milestone, dependency_in, f"depends_on[{i}]")
    if (earliest := _earliest(session, milestone, campaign.market)) and \
            milestone.due_date < earliest[0]:
        raise invalid_fields([("due_date", f"its dependencies allow {earliest[0]} at the "
                                           f"earliest (after {earliest[1].name!r})")])
    touch(campaign)
    session.add(campaign)
    return milestone_public(session, milestone)


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
    milestone.version += 1
    milestone.updated_at = utcnow()
    touch(campaign)
    session.add_all([milestone, campaign])
    session.commit()
    return milestone_public(session, milestone)


def move_milestone(*, session: Session, campaign_id: str, milestone_id: str, move: MoveRequest,
                   if_match: str | None) -> MoveResult:
    """Move a milestone to a new date and push its dependents as their rules require."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    require_if_match(if_match, milestone.version, what="milestone")
    if milestone.pinned:
        raise Conflict(f"Milestone {milestone.name!r} is pinned; unpin it (PATCH pinned=false) "
                       "before moving it.", pinned=milestone.id)
    earliest = _earliest(session, milestone, campaign.market)
    if earliest and move.due_date < earliest[0]:
        raise Conflict(f"{milestone.name!r} must stay at least until {earliest[0]}: it depends "
                       f"on {earliest[1].name!r}, due {earliest[1].due_date}. Move that one "
                       "first, or remove the dependency.", required_date=earliest[0].isoformat())
    moves = []
    if move.due_date != milestone.due_date:
        moves.append(MovedPublic(milestone_id=milestone.id, name=milestone.name,
                                 from_date=milestone.due_date, to_date=move.due_date))
        milestone.due_date = move.due_date
        milestone.version += 1
        milestone.updated_at = utcnow()
        session.add(milestone)
        _cascade(session, campaign, milestone, moves)
        touch(campaign)
        session.add(campaign)
    session.commit()
    return MoveResult(milestone=milestone_public(session, milestone), moved=moves)


def add_dependency(*, session: Session, campaign_id: str, milestone_id: str,
                   dependency_in: DependencyCreate) -> MoveResult:
    """Make a milestone depend on another; if it now breaks the rule it is pushed (cascading)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    _add_dependency(session, campaign, milestone, dependency_in, "milestone_id")
    moves: list[MovedPublic] = []
    required, because = _earliest(session, milestone, campaign.market)
    if milestone.due_date < required:
        if milestone.pinned:
            raise Conflict(f"Pinned milestone {milestone.name!r} would have to move to "
                           f"{required} to follow {because.name!r}; unpin it first.",
                           pinned=milestone.id, required_date=required.isoformat())
        moves.append(MovedPublic(milestone_id=milestone.id, name=milestone.name,
                                 from_date=milestone.due_date, to_date=required))
        milestone.due_date = required
        _cascade(session, campaign, milestone, moves)
    milestone.version += 1
    milestone.updated_at = utcnow()
    touch(campaign)
    session.add_all([milestone, campaign])
    session.commit()
    return MoveResult(milestone=milestone_public(session, milestone), moved=moves)


def remove_dependency(*, session: Session, campaign_id: str, milestone_id: str,
                      predecessor_id: str) -> None:
    """Drop a dependency; no date changes."""
    campaign = get_campaign(session, campaign_id, lock=True)
    milestone = get_milestone(session, campaign.id, milestone_id)
    dependency = session.get(Dependency, (predecessor_id, milestone.id))
    if dependency is None:
        raise NotFound(f"Milestone {milestone_id!r} does not depend on {predecessor_id!r}.")
    session.delete(dependency)
    milestone.version += 1
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
    milestone.version += 1
    milestone.updated_at = utcnow()
    touch(campaign)
    session.add_all([milestone, campaign])
    session.commit()
    return milestone_public(session, milestone)


def create_phase(*, session: Session, campaign_id: str, phase_in: PhaseCreate) -> PhasePublic:
    """Add a phase inside the campaign window (staged; the caller commits)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    errors = []
    if phase_in.end_date < phase_in.start_date:
        errors.append(("end_date", "the phase ends before it starts"))
    if phase_in.start_date < campaign.start_date or phase_in.end_date > campaign.end_date:
        errors.append(("start_date", f"a phase stays inside the campaign window "
                                     f"{campaign.start_date}..{campaign.end_date}"))
    if errors:
        raise invalid_fields(errors)
    phase = Phase(id=new_id("ph"), campaign_id=campaign.id, **phase_in.model_dump())
    touch(campaign)
    session.add_all([phase, campaign])
    session.flush()
    return PhasePublic.model_validate(phase, from_attributes=True)


def delete_phase(*, session: Session, campaign_id: str, phase_id: str) -> None:
    """Remove a phase."""
    campaign = get_campaign(session, campaign_id, lock=True)
    phase = session.get(Phase, phase_id)
    if phase is None or phase.campaign_id != campaign.id:
        raise NotFound(f"Campaign {campaign_id!r} has no phase {phase_id!r}.")
    session.delete(phase)
    touch(campaign)
    session.add(campaign)
    session.commit()
