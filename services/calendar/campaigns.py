"""Campaigns: shapes, the status machine with its gates, creation from templates (and its
preview), bulk creation, and deletion while draft (the undo of a plan-a-campaign commit)."""
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, Field, ValidationError
from sqlalchemy import delete
from sqlmodel import Session, col, select

from services.calendar import audit
from services.calendar.graph import TEMPLATES, Frequency, TemplateName, lay_out
from services.calendar.milestones import (
    MilestonePublic,
    campaign_milestones,
    created_event,
    milestones_public,
)
from services.calendar.models import (
    MARKET_LENGTH,
    TIME_ZONE_LENGTH,
    Campaign,
    Dependency,
    Milestone,
    Phase,
)
from services.calendar.outbox import NewEvent, publish
from services.calendar.phases import PhaseKind, PhasePublic, phase_public
from services.calendar.store import CAMPAIGN_ORDER, campaign_phases, get_campaign, phase_event, touch
from shared.channels import CHANNEL_KINDS, ChannelKind
from shared.errors import Conflict, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.pagination import Page, paginate
from shared.types import Identifier, Name, StrictModel, text
from shared.versioning import require_if_match
from shared.workdays import check_market, holidays_between, is_working_day, next_working_day

Status = Literal["draft", "planned", "approved", "live", "completed", "cancelled"]
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("planned", "cancelled"),
    "planned": ("approved", "cancelled"),
    "approved": ("live", "cancelled"),
    "live": ("completed", "cancelled"),
    "completed": (),
    "cancelled": (),
}
MAX_BULK = 500
UNIT_LENGTH = 20


def _zone(name: str) -> str:
    if name not in available_timezones():
        raise ValueError(f"{name!r} is not an IANA time zone; use e.g. Europe/Berlin, "
                         "America/New_York")
    return name


Market = Annotated[str, Field(min_length=2, max_length=MARKET_LENGTH, examples=["US", "DE-BY"]),
                   AfterValidator(check_market)]
TimeZone = Annotated[str, Field(max_length=TIME_ZONE_LENGTH, examples=["America/New_York"]),
                     AfterValidator(_zone)]


def _once_each(channels: list[str]) -> list[str]:
    if repeated := sorted({c for c in channels if channels.count(c) > 1}):
        raise ValueError(f"list each channel once; repeated: {', '.join(repeated)}")
    return channels


# The department's channel kinds, the same vocabulary as a budget's channels (an unknown one
# is a 422 that lists them all).
Channels = Annotated[list[ChannelKind], Field(min_length=1, max_length=len(CHANNEL_KINDS),
                                              examples=[["search", "social"]]),
                     AfterValidator(_once_each)]


class Objective(StrictModel):
    """A measurable KPI target with a deadline, e.g. conversion rate 4.5 % by 2026-12-31."""
    kpi: Identifier = Field(examples=["conversion_rate"])
    target: Decimal = Field(allow_inf_nan=False, examples=["4.5"])
    unit: text(UNIT_LENGTH, min_length=0) | None = Field(  # type: ignore[valid-type]
        None, examples=["%"])
    deadline: date


class Review(StrictModel):
    name: Name
    frequency: Frequency = Field(description="On working days of the market: daily skips "
                                 "holidays; the others move off days off (see the feeds).")
    phase: PhaseKind | None = Field(None, description="Only during this phase; null: the "
                                    "whole campaign.")


class CampaignCreate(StrictModel):
    name: Name
    objective: Objective
    owner: Identifier
    channels: Channels
    market: Market
    time_zone: TimeZone
    start_date: date | None = Field(None, description="Required without a template.")
    end_date: date | None = Field(None, description="Required without a template.")
    priority: int = Field(3, ge=1, le=5, description="1 (low) to 5 (high).")
    template: TemplateName | None = Field(None, description="Add the template's phases and "
                                          "milestones, placed back from launch_date.")
    launch_date: date | None = Field(None, description="Required with a template; a working "
                                     "day of the market.")
    adjust: Literal["next_working_day"] | None = Field(
        None, description="With a template: a launch_date that is not a working day of the "
        "market moves to the next one (without it, such a launch is a 422).")
    reviews: list[Review] | None = Field(None, max_length=20, description="Recurring reviews; "
                                         "default: the template's, else none.")


class CampaignUpdate(StrictModel):
    name: Name | None = None
    objective: Objective | None = None
    owner: Identifier | None = None
    channels: Channels | None = None
    market: Market | None = None
    time_zone: TimeZone | None = None
    start_date: date | None = None
    end_date: date | None = None
    priority: int | None = Field(None, ge=1, le=5)
    reviews: list[Review] | None = Field(None, max_length=20)


class CampaignPublic(BaseModel):
    id: str
    name: str
    objective: Objective
    owner: str
    channels: list[ChannelKind]
    market: str
    time_zone: str
    start_date: date
    end_date: date
    priority: int
    status: str
    template: str | None
    reviews: list[Review]
    phases: list[PhasePublic]
    milestones: list[MilestonePublic]
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class StatusChange(StrictModel):
    status: Status


def to_public(session: Session, campaign: Campaign) -> CampaignPublic:
    """The campaign with its phases and milestones."""
    return CampaignPublic(**campaign.model_dump(),
                          phases=[phase_public(p) for p in campaign_phases(session, campaign.id)],
                          milestones=milestones_public(session,
                                                       campaign_milestones(session, campaign.id)))


def read_campaign(*, session: Session, campaign_id: str) -> CampaignPublic:
    """Read a campaign with its phases and milestones."""
    return to_public(session, get_campaign(session, campaign_id))


def _check(values: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    errors = []
    if values.get("template") is not None:
        if values.get("launch_date") is None:
            errors.append((prefix + "launch_date", "a template places milestones back from the "
                                                   "launch: give launch_date"))
    else:
        for field in ("start_date", "end_date"):
            if values.get(field) is None:
                errors.append((prefix + field, "required without a template"))
        for field in ("launch_date", "adjust"):
            if values.get(field) is not None:
                errors.append((prefix + field, "only used with a template"))
    launch, market = values.get("launch_date"), values.get("market")
    if (values.get("template") is not None and launch is not None and market is not None
            and values.get("adjust") is None and not is_working_day(launch, market)):
        reasons = [r for r, holds in (("a weekend day", launch.weekday() >= 5),
                                      ("a public holiday", bool(holidays_between(market, launch,
                                                                                 launch))))
                   if holds]
        errors.append((prefix + "launch_date",
                       f"{launch.strftime('%A')} {launch} is not a working day in {market} "
                       f"({' and '.join(reasons)}); the next working day is "
                       f"{next_working_day(launch, market)}: send that launch_date, or add "
                       f'"adjust": "next_working_day" to launch then'))
    start, end = values.get("start_date"), values.get("end_date")
    if start and end and end < start:
        errors.append((prefix + "end_date", f"the campaign ends ({end}) before it starts ({start})"))
    return errors


def campaign_state(campaign: Campaign) -> dict[str, Any]:
    """A campaign's own fields (not its phases and milestones), for events and the audit."""
    return campaign.model_dump(exclude={"version", "created_at", "updated_at"})


def _stage_campaign(session: Session, campaign_in: CampaignCreate,
                    caller: Caller) -> tuple[Campaign, list[NewEvent]]:
    """Add a checked campaign (and its template's phases and milestones) to the session, and
    return it with the events of its creation."""
    values = campaign_in.model_dump(exclude={"template", "launch_date", "reviews", "objective",
                                             "adjust"})
    layout = None
    if campaign_in.template is not None:
        assert campaign_in.launch_date is not None   # `_check` asks for it with a template
        # `_check` refused a non-working launch unless the caller asked for this.
        launch = next_working_day(campaign_in.launch_date, campaign_in.market)
        layout = lay_out(campaign_in.template, launch, campaign_in.market)
        values["start_date"] = campaign_in.start_date or layout.start_date
        values["end_date"] = campaign_in.end_date or layout.end_date
    reviews = campaign_in.reviews
    if reviews is None and campaign_in.template is not None:
        reviews = [Review(name=n, frequency=f, phase=p)
                   for n, f, p in TEMPLATES[campaign_in.template].reviews]
    campaign = Campaign(id=new_id("cmp"), status="draft", template=campaign_in.template,
                        reviews=[r.model_dump(mode="json") for r in reviews or []],
                        objective=campaign_in.objective.model_dump(mode="json"),
                        created_by=caller.principal, **values)
    session.add(campaign)
    events = [NewEvent("campaign.created", campaign.id, campaign_state(campaign))]
    if layout is not None:
        milestones = [Milestone(id=new_id("ms"), campaign_id=campaign.id, kind=planned.kind,
                                name=planned.name, due_date=planned.due_date,
                                window_hours=planned.window_hours, owner=campaign.owner,
                                status="planned") for planned in layout.milestones]
        # The template's phases and contingency window follow its launch when it moves.
        launch_id = next(m.id for m in milestones if m.kind == "launch")
        for milestone in milestones:
            if milestone.kind == "contingency":
                milestone.anchor_id = launch_id
        phases = [Phase(id=new_id("ph"), campaign_id=campaign.id, kind=p.kind,
                        start_date=p.start_date, end_date=p.end_date, anchor_id=launch_id)
                  for p in layout.phases]
        session.add_all(milestones)
        session.flush()   # the dependencies' and anchors' foreign keys need milestones first
        session.add_all(phases)
        # The template's chain links each step to the one before; the contingency window
        # stands beside the launch, outside the chain.
        chain = [(m, planned) for m, planned in zip(milestones, layout.milestones)
                 if planned.kind != "contingency"]
        session.add_all(Dependency(predecessor_id=before.id, successor_id=after.id,
                                   lag_days=planned.lag_days)
                        for (before, _), (after, planned) in zip(chain, chain[1:]))
        events += [phase_event(p, "created", None) for p in phases]
        events += [created_event(m) for m in milestones]
    session.flush()
    return campaign, events


def _record_created(session: Session, caller: Caller, answer: CampaignPublic) -> None:
    audit.record(session, caller=caller, action="campaign.created", target=answer.id,
                 campaign_id=answer.id, after=answer)


def _draft(session: Session, campaign_in: CampaignCreate,
           caller: Caller) -> tuple[CampaignPublic, list[NewEvent]]:
    """Check a new campaign, stage it in the session, and return it as the create answers it
    with the events of its creation (no commit)."""
    if errors := _check(dict(campaign_in)):
        raise invalid_fields(errors)
    campaign, events = _stage_campaign(session, campaign_in, caller)
    return to_public(session, campaign), events


def create_campaign(*, session: Session, campaign_in: CampaignCreate, caller: Caller,
                    idempotency: Idempotency) -> CampaignPublic:
    """Create a campaign in `draft`; with a template, its phases and milestones too."""
    answer, events = _draft(session, campaign_in, caller)
    _record_created(session, caller, answer)
    publish(session, events)
    idempotency.record(session, answer)
    session.commit()
    return answer


def preview_campaign(*, session: Session, campaign_in: CampaignCreate,
                     caller: Caller) -> CampaignPublic:
    """Answer what creating this campaign would make, storing nothing."""
    answer, _ = _draft(session, campaign_in, caller)
    # The create's own rows, read back and then undone: a preview cannot drift from what a
    # create makes. Its ids were never stored; a create makes new ones.
    session.rollback()
    return answer


def delete_campaign(*, session: Session, campaign_id: str, caller: Caller,
                    if_match: str | None) -> None:
    """Remove a draft campaign with its phases, milestones and their dependencies."""
    campaign = get_campaign(session, campaign_id, lock=True)
    # Past draft, others may act on the campaign (approvals, funding, tasks): it is cancelled
    # instead, and stays in everyone's history. Said before the version check, since no
    # version of it can be deleted.
    if campaign.status != "draft":
        fix = ("cancel it instead (POST …/status with {\"status\": \"cancelled\"})"
               if TRANSITIONS[campaign.status] else "it stays as it is")
        raise Conflict(f"Only a draft campaign can be deleted; {campaign.id} is "
                       f"{campaign.status}: {fix}.",
                       campaign_status=campaign.status)
    require_if_match(if_match, campaign.version, what="campaign")
    before = to_public(session, campaign)
    milestone_ids = [m.id for m in before.milestones]
    # Dependencies and anchors refer to milestones, milestones and phases to the campaign:
    # each statement removes what refers to the next one's rows. A gate's decisions and the
    # audit log are append-only and keep no foreign key: they outlive the campaign.
    session.execute(delete(Dependency).where(col(Dependency.successor_id).in_(milestone_ids)
                                             | col(Dependency.predecessor_id).in_(milestone_ids)))
    session.execute(delete(Phase).where(col(Phase.campaign_id) == campaign.id))
    session.execute(delete(Milestone).where(col(Milestone.campaign_id) == campaign.id))
    session.delete(campaign)
    audit.record(session, caller=caller, action="campaign.deleted", target=campaign.id,
                 campaign_id=campaign.id, before=before)
    # The calendar answers 404 for the campaign from now on, so the event carries what a
    # consumer needs to drop what it derived from it.
    publish(session, [NewEvent("campaign.deleted", campaign.id, campaign_state(campaign) | {
        "phase_ids": [p.id for p in before.phases], "milestone_ids": milestone_ids})])
    session.commit()


class BulkCreate(StrictModel):
    campaigns: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BULK)


class BulkError(BaseModel):
    index: int
    errors: list[dict[str, str]]


class BulkResult(BaseModel):
    created: list[CampaignPublic]
    rejected: list[BulkError]


def create_campaigns(*, session: Session, bulk: BulkCreate, partial: bool, caller: Caller,
                     idempotency: Idempotency) -> BulkResult:
    """Create many campaigns: all or none (default), or with `partial` the good ones."""
    good: list[CampaignCreate] = []
    rejected: list[BulkError] = []
    for i, row in enumerate(bulk.campaigns):
        try:
            campaign_in = CampaignCreate.model_validate(row)
        except ValidationError as error:
            rejected.append(BulkError(index=i, errors=[
                {"field": ".".join(str(p) for p in e["loc"]), "detail": e["msg"]}
                for e in error.errors()]))
            continue
        if errors := _check(dict(campaign_in)):
            rejected.append(BulkError(index=i, errors=[{"field": f, "detail": d} for f, d in errors]))
            continue
        good.append(campaign_in)
    if rejected and not partial:
        raise invalid_fields(
            [(f"campaigns[{r.index}].{e['field']}", e["detail"]) for r in rejected for e in r.errors])
    created, events = [], []
    for campaign_in in good:
        campaign, staged = _stage_campaign(session, campaign_in, caller)
        created.append(to_public(session, campaign))
        _record_created(session, caller, created[-1])
        events += staged
    answer = BulkResult(created=created, rejected=rejected)
    publish(session, events)
    idempotency.record(session, answer)
    session.commit()
    return answer


def list_campaigns(*, session: Session, status: str | None, owner: str | None,
                   limit: int, cursor: str | None) -> Page[CampaignPublic]:
    """List campaigns, oldest first."""
    statement = select(Campaign)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    if owner is not None:
        statement = statement.where(Campaign.owner == owner)
    rows, next_cursor = paginate(session, statement, order_by=CAMPAIGN_ORDER, limit=limit,
                                 cursor=cursor)
    return Page[CampaignPublic](items=[to_public(session, c) for c in rows], next_cursor=next_cursor)


def update_campaign(*, session: Session, campaign_id: str, update: CampaignUpdate,
                    caller: Caller, if_match: str | None) -> CampaignPublic:
    """Change a campaign at the version the caller read (412 if stale)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    require_if_match(if_match, campaign.version, what="campaign")
    changes = update.model_dump(mode="json", exclude_unset=True)
    start = update.start_date if "start_date" in changes else campaign.start_date
    end = update.end_date if "end_date" in changes else campaign.end_date
    # A template campaign's dates are not required on create (the template lays them out),
    # but once made, every campaign keeps both. The template and launch date are the
    # create's (checking them here refused every change to a template campaign with a 422).
    if errors := ([(field, "a campaign keeps its dates; give one")
                   for field, value in (("start_date", start), ("end_date", end))
                   if value is None]
                  or _check({"start_date": start, "end_date": end})):
        raise invalid_fields(errors)
    assert start is not None and end is not None
    # The window holds its phases (conflicts and the calendar read a campaign by them), so
    # dates that would leave one out are refused rather than cutting or moving it unasked.
    if outside := [p for p in campaign_phases(session, campaign.id)
                   if p.start_date < start or p.end_date > end]:
        spans = ", ".join(f"{p.kind} {p.start_date}..{p.end_date}" for p in outside)
        raise Conflict(f"A campaign's phases stay inside its dates, and {start}..{end} would "
                       f"leave out {spans}: move or delete those phases first.",
                       phase_ids=[p.id for p in outside])
    before = campaign_state(campaign)
    campaign.sqlmodel_update({k: v for k, v in changes.items() if k not in ("start_date", "end_date")})
    campaign.start_date, campaign.end_date = start, end
    after = campaign_state(campaign)
    touch(campaign)
    session.add(campaign)
    answer = to_public(session, campaign)
    audit.record(session, caller=caller, action="campaign.updated", target=campaign.id,
                 campaign_id=campaign.id, before=before, after=after)
    publish(session, [NewEvent("campaign.updated", campaign.id, {"changes": {
        k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}})])
    session.commit()
    return answer


def change_status(*, session: Session, campaign_id: str, status: Status, caller: Caller,
                  if_match: str | None) -> CampaignPublic:
    """Move a campaign along draft → planned → approved → live → completed (or cancelled)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    require_if_match(if_match, campaign.version, what="campaign")
    allowed = TRANSITIONS[campaign.status]
    if status not in allowed:
        raise Conflict(f"A {campaign.status} campaign cannot become {status}; allowed: "
                       f"{', '.join(allowed) or 'none (it is final)'}.", allowed=list(allowed))
    if status == "approved":
        _require_gates_passed(session, campaign)
    previous, campaign.status = campaign.status, status
    touch(campaign)
    session.add(campaign)
    answer = to_public(session, campaign)
    audit.record(session, caller=caller, action="campaign.status_changed", target=campaign.id,
                 campaign_id=campaign.id, before={"status": previous}, after={"status": status})
    publish(session, [NewEvent("campaign.status_changed", campaign.id,
                               {"from": previous, "to": status})])
    session.commit()
    return answer


def _require_gates_passed(session: Session, campaign: Campaign) -> None:
    milestones = campaign_milestones(session, campaign.id)
    launches = [m.due_date for m in milestones if m.kind == "launch"]
    launch = min(launches) if launches else None
    open_gates = [m for m in milestones if m.kind == "review_gate" and m.status != "passed"
                  and (launch is None or m.due_date <= launch)]
    if open_gates:
        names = ", ".join(f"{m.name} ({m.id}, {m.status})" for m in open_gates)
        raise Conflict(f"Every review gate before launch must be passed to approve the "
                       f"campaign; not yet: {names}. Record their approval first.",
                       gates=[m.id for m in open_gates])
