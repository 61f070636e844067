"""Phases of a campaign (warm-up, burst, sustain, wrap-up): shapes and use cases."""
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.calendar import audit
from services.calendar.models import Phase
from services.calendar.outbox import publish
from services.calendar.store import get_campaign, phase_event, touch
from shared.errors import NotFound, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.types import StrictModel

PhaseKind = Literal["warmup", "burst", "sustain", "wrapup"]


class PhaseCreate(StrictModel):
    kind: PhaseKind
    start_date: date
    end_date: date


class PhasePublic(BaseModel):
    id: str
    kind: str
    start_date: date
    end_date: date
    anchor_id: str | None = Field(description="The launch this phase follows when it moves.")


def phase_public(phase: Phase) -> PhasePublic:
    return PhasePublic.model_validate(phase, from_attributes=True)


def campaign_phases(session: Session, campaign_id: str) -> list[Phase]:
    """The campaign's phases in date order."""
    return list(session.exec(select(Phase).where(Phase.campaign_id == campaign_id)
                             .order_by(col(Phase.start_date), col(Phase.id))))


def create_phase(*, session: Session, campaign_id: str, phase_in: PhaseCreate, caller: Caller,
                 idempotency: Idempotency) -> PhasePublic:
    """Add a phase inside the campaign window."""
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
    answer = phase_public(phase)
    audit.record(session, caller=caller, action="phase.created", target=phase.id,
                 campaign_id=campaign.id, after=answer)
    publish(session, [phase_event(phase, "created", None)])
    idempotency.record(session, answer)
    session.commit()
    return answer


def delete_phase(*, session: Session, campaign_id: str, phase_id: str, caller: Caller) -> None:
    """Remove a phase."""
    campaign = get_campaign(session, campaign_id, lock=True)
    phase = session.get(Phase, phase_id)
    if phase is None or phase.campaign_id != campaign.id:
        raise NotFound(f"Campaign {campaign_id!r} has no phase {phase_id!r}.")
    before = phase_public(phase)
    session.delete(phase)
    touch(campaign)
    session.add(campaign)
    audit.record(session, caller=caller, action="phase.deleted", target=phase.id,
                 campaign_id=campaign.id, before=before)
    publish(session, [phase_event(phase, "deleted", (phase.start_date, phase.end_date))])
    session.commit()
