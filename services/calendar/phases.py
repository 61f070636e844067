"""Phases of a campaign (warm-up, burst, sustain, wrap-up): shapes and use cases."""
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from services.calendar import audit
from services.calendar.models import Campaign, Phase
from services.calendar.outbox import publish
from services.calendar.store import get_campaign, phase_event, touch
from shared.errors import NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.types import StrictModel
from shared.versioning import require_if_match

PhaseKind = Literal["warmup", "burst", "sustain", "wrapup"]


class PhaseCreate(StrictModel):
    kind: PhaseKind
    start_date: date
    end_date: date


class PhaseUpdate(StrictModel):
    """A phase's new kind or dates; an anchored phase keeps following its launch from them."""
    kind: PhaseKind | None = None
    start_date: date | None = None
    end_date: date | None = None


class PhasePublic(BaseModel):
    id: str
    kind: str
    start_date: date
    end_date: date
    anchor_id: str | None = Field(description="The launch this phase follows when it moves.")
    version: int


def phase_public(phase: Phase) -> PhasePublic:
    return PhasePublic.model_validate(phase, from_attributes=True)


def _check_span(campaign: Campaign, start: date, end: date) -> None:
    errors = []
    if end < start:
        errors.append(("end_date", f"the phase ends ({end}) before it starts ({start})"))
    if start < campaign.start_date or end > campaign.end_date:
        errors.append(("start_date", f"a phase stays inside the campaign window "
                                     f"{campaign.start_date}..{campaign.end_date}"))
    if errors:
        raise invalid_fields(errors)


def get_phase(session: Session, campaign_id: str, phase_id: str) -> Phase:
    """Load a phase of the campaign or raise NotFound."""
    phase = session.get(Phase, phase_id)
    if phase is None or phase.campaign_id != campaign_id:
        raise NotFound(f"Campaign {campaign_id!r} has no phase {phase_id!r}; its phases are "
                       f"listed in GET /api/v1/calendar/campaigns/{campaign_id}.")
    return phase


def read_phase(*, session: Session, campaign_id: str, phase_id: str) -> PhasePublic:
    """Read a phase."""
    return phase_public(get_phase(session, campaign_id, phase_id))


def create_phase(*, session: Session, campaign_id: str, phase_in: PhaseCreate, caller: Caller,
                 idempotency: Idempotency) -> PhasePublic:
    """Add a phase inside the campaign window."""
    campaign = get_campaign(session, campaign_id, lock=True)
    _check_span(campaign, phase_in.start_date, phase_in.end_date)
    phase = Phase(id=new_id("ph"), campaign_id=campaign.id, **phase_in.model_dump())
    touch(campaign)
    session.add_all([phase, campaign])
    answer = phase_public(phase)
    audit.record(session, caller=caller, action="phase.created", target=phase.id,
                 campaign_id=campaign.id, after=answer)
    publish(session, [phase_event(phase, "created", None)])
    idempotency.record(session, answer)
    session.commit()
    return answer


def update_phase(*, session: Session, campaign_id: str, phase_id: str, update: PhaseUpdate,
                 caller: Caller, if_match: str | None) -> PhasePublic:
    """Change a phase's kind or dates at the version the caller read (412 if stale)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    phase = get_phase(session, campaign.id, phase_id)
    require_if_match(if_match, phase.version, what="phase")
    changes = update.model_dump(exclude_unset=True)
    if None in changes.values():
        raise invalid_fields([(field, "a phase keeps its kind and dates; leave the field out "
                                      "to keep it") for field, value in changes.items()
                              if value is None])
    before_kind, before_span = phase.kind, (phase.start_date, phase.end_date)
    before = phase_public(phase)
    phase.sqlmodel_update(changes)
    _check_span(campaign, phase.start_date, phase.end_date)
    if (phase.kind, phase.start_date, phase.end_date) == (before_kind, *before_span):
        return before   # nothing changed: no new version, no event
    phase.version += 1
    touch(campaign)
    session.add_all([phase, campaign])
    answer = phase_public(phase)
    audit.record(session, caller=caller, action="phase.updated", target=phase.id,
                 campaign_id=campaign.id, before=before, after=answer)
    change = "updated" if phase.kind != before_kind else "moved"
    publish(session, [phase_event(phase, change, before_span, from_kind=before_kind)])
    session.commit()
    return answer


def delete_phase(*, session: Session, campaign_id: str, phase_id: str, caller: Caller) -> None:
    """Remove a phase."""
    campaign = get_campaign(session, campaign_id, lock=True)
    phase = get_phase(session, campaign.id, phase_id)
    before = phase_public(phase)
    session.delete(phase)
    touch(campaign)
    session.add(campaign)
    audit.record(session, caller=caller, action="phase.deleted", target=phase.id,
                 campaign_id=campaign.id, before=before)
    publish(session, [phase_event(phase, "deleted", (phase.start_date, phase.end_date))])
    session.commit()
