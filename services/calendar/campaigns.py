"""Campaigns: shapes, the status machine, creation from templates, bulk creation."""
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from services.calendar.models import Campaign, Dependency, Milestone, Phase, utcnow
from services.calendar.templates import TEMPLATES, TemplateName, lay_out
from shared.workdays import check_market
from shared.errors import Conflict, NotFound, invalid_fields
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.pagination import Page, paginate
from shared.versioning import require_if_match

Status = Literal["draft", "planned", "approved", "live", "completed", "cancelled"]
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("planned", "cancelled"),
    "planned": ("approved", "cancelled"),
    "approved": ("live", "cancelled"),
    "live": ("completed", "cancelled"),
    "completed": (),
    "cancelled": (),
}
PhaseKind = Literal["warmup", "burst", "sustain", "wrapup"]
MilestoneKind = Literal["kickoff", "creative_final", "channel_test", "launch", "review_gate",
                        "contingency"]
MilestoneStatus = Literal["planned", "done", "passed", "rejected"]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Identifier = Annotated[str, Field(min_length=1, max_length=100)]
MAX_BULK = 500


def _zone(name: str) -> str:
    if name not in available_timezones():
        raise ValueError(f"{name!r} is not an IANA time zone; use e.g. Europe/Berlin, "
                         "America/New_York")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    """A measurable KPI target with a deadline, e.g. conversion rate 4.5 % by 2026-12-31."""
    kpi: Identifier = Field(examples=["conversion_rate"])
    target: Decimal = Field(allow_inf_nan=False, examples=["4.5"])
    unit: Annotated[str, Field(max_length=20)] | None = Field(None, examples=["%"])
    deadline: date


class Review(_Strict):
    name: Text
    frequency: Literal["daily", "weekly", "monthly", "quarterly"]
    phase: PhaseKind | None = Field(None, description="Only during this phase; null: the "
                                    "whole campaign.")


class CampaignCreate(_Strict):
    name: Text
    objective: Objective
    owner: Identifier
    channels: list[Identifier] = Field(min_length=1, max_length=50)
    market: Annotated[str, Field(min_length=2, max_length=10, examples=["US", "DE-BY"]),
                      AfterValidator(check_market)]
    time_zone: Annotated[str, Field(examples=["America/New_York"]), AfterValidator(_zone)]
    start_date: date | None = Field(None, description="Required without a template.")
    end_date: date | None = Field(None, description="Required without a template.")
    priority: int = Field(3, ge=1, le=5, description="1 (low) to 5 (high).")
    template: TemplateName | None = Field(None, description="Add the template's phases and "
                                          "milestones, placed back from launch_date.")
    launch_date: date | None = Field(None, description="Required with a template.")
    reviews: list[Review] | None = Field(None, max_length=20, description="Recurring reviews; "
                                         "default: the template's, else none.")


class CampaignUpdate(_Strict):
    name: Text | None = None
    objective: Objective | None = None
    owner: Identifier | None = None
    channels: list[Identifier] | None = Field(None, min_length=1, max_length=50)
    market: Annotated[str, AfterValidator(check_market)] | None = None
    time_zone: Annotated[str, AfterValidator(_zone)] | None = None
    start_date: date | None = None
    end_date: date | None = None
    priority: int | None = Field(None, ge=1, le=5)
    reviews: list[Review] | None = Field(None, max_length=20)


class PhasePublic(BaseModel):
    id: str
    kind: str
    start_date: date
    end_date: date


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


class CampaignPublic(BaseModel):
    id: str
    name: str
    objective: Objective
    owner: str
    channels: list[str]
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


def milestone_public(session: Session, milestone: Milestone) -> MilestonePublic:
    depends_on = [DependencyPublic(milestone_id=d.predecessor_id, lag_days=d.lag_days)
                  for d in session.exec(select(Dependency).where(
                      Dependency.successor_id == milestone.id).order_by(Dependency.predecessor_id))]
    return MilestonePublic(**milestone.model_dump(), depends_on=depends_on)


def to_public(session: Session, campaign: Campaign) -> CampaignPublic:
    phases = session.exec(select(Phase).where(Phase.campaign_id == campaign.id)
                          .order_by(Phase.start_date, Phase.id)).all()
    milestones = session.exec(select(Milestone).where(Milestone.campaign_id == campaign.id)
                              .order_by(Milestone.due_date, Milestone.id)).all()
    return CampaignPublic(**campaign.model_dump(),
                          phases=[PhasePublic.model_validate(p, from_attributes=True) for p in phases],
                          milestones=[milestone_public(session, m) for m in milestones])


def get_campaign(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign:
    """Load a campaign or raise NotFound; `lock` holds its row until commit."""
    statement = select(Campaign).where(Campaign.id == campaign_id)
    campaign = session.exec(statement.with_for_update() if lock else statement).first()
    if campaign is None:
        raise NotFound(f"There is no campaign {campaign_id!r}; list campaigns at "
                       "/api/v1/calendar/campaigns.")
    return campaign


def touch(campaign: Campaign) -> None:
    """Record a change anywhere in the campaign (its ETag covers phases and milestones too)."""
    campaign.version += 1
    campaign.updated_at = utcnow()


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
        if values.get("launch_date") is not None:
            errors.append((prefix + "launch_date", "only used with a template"))
    start, end = values.get("start_date"), values.get("end_date")
    if start and end and end < start:
        errors.append((prefix + "end_date", f"the campaign ends ({end}) before it starts ({start})"))
    return errors


def stage_campaign(session: Session, campaign_in: CampaignCreate, caller: Caller) -> Campaign:
    """Add a checked campaign (and its template's phases and milestones) to the session."""
    values = campaign_in.model_dump(exclude={"template", "launch_date", "reviews", "objective"})
    layout = None
    if campaign_in.template is not None:
        layout = lay_out(campaign_in.template, campaign_in.launch_date, campaign_in.market)
        values["start_date"] = campaign_in.start_date or layout.start_date
        values["end_date"] = campaign_in.end_date or layout.end_date
    reviews = campaign_in.reviews
    if reviews is None and layout is not None:
        reviews = [Review(name=n, frequency=f, phase=p)
                   for n, f, p in TEMPLATES[campaign_in.template].reviews]
    campaign = Campaign(id=new_id("cmp"), status="draft", template=campaign_in.template,
                        reviews=[r.model_dump(mode="json") for r in reviews or []],
                        objective=campaign_in.objective.model_dump(mode="json"),
                        created_by=caller.principal, **values)
    session.add(campaign)
    if layout is not None:
        session.add_all(Phase(id=new_id("ph"), campaign_id=campaign.id, kind=p.kind,
                              start_date=p.start_date, end_date=p.end_date) for p in layout.phases)
        previous = None
        for planned in layout.milestones:
            milestone = Milestone(id=new_id("ms"), campaign_id=campaign.id, kind=planned.kind,
                                  name=planned.name, due_date=planned.due_date,
                                  window_hours=planned.window_hours, owner=campaign.owner,
                                  status="planned")
            session.add(milestone)
            session.flush()
            if previous is not None and planned.kind != "contingency":
                session.add(Dependency(predecessor_id=previous.id, successor_id=milestone.id,
                                       lag_days=planned.lag_days))
            previous = milestone
    session.flush()
    return campaign


def create_campaign(*, session: Session, campaign_in: CampaignCreate,
                    caller: Caller) -> CampaignPublic:
    """Create a campaign in `draft` (staged; the caller commits)."""
    if errors := _check(dict(campaign_in)):
        raise invalid_fields(errors)
    return to_public(session, stage_campaign(session, campaign_in, caller))


class BulkCreate(_Strict):
    campaigns: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BULK)


class BulkError(BaseModel):
    index: int
    errors: list[dict[str, str]]


class BulkResult(BaseModel):
    created: list[CampaignPublic]
    rejected: list[BulkError]


def create_campaigns(*, session: Session, bulk: BulkCreate, partial: bool,
                     caller: Caller) -> BulkResult:
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
    created = [to_public(session, stage_campaign(session, c, caller)) for c in good]
    return BulkResult(created=created, rejected=rejected)


def list_campaigns(*, session: Session, status: str | None, owner: str | None,
                   limit: int, cursor: str | None) -> Page[CampaignPublic]:
    """List campaigns, oldest first."""
    statement = select(Campaign)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    if owner is not None:
        statement = statement.where(Campaign.owner == owner)
    rows, next_cursor = paginate(session, statement, order_by=[Campaign.id], limit=limit,
                                 cursor=cursor)
    return Page[CampaignPublic](items=[to_public(session, c) for c in rows], next_cursor=next_cursor)


def update_campaign(*, session: Session, campaign_id: str, update: CampaignUpdate,
                    if_match: str | None) -> CampaignPublic:
    """Change a campaign at the version the caller read (412 if stale)."""
    campaign = get_campaign(session, campaign_id, lock=True)
    require_if_match(if_match, campaign.version, what="campaign")
    changes = update.model_dump(mode="json", exclude_unset=True)
    start = update.start_date if "start_date" in changes else campaign.start_date
    end = update.end_date if "end_date" in changes else campaign.end_date
    if errors := _check({"start_date": start, "end_date": end, "template": campaign.template,
                         "launch_date": None}):
        raise invalid_fields(errors)
    campaign.sqlmodel_update({k: v for k, v in changes.items() if k not in ("start_date", "end_date")})
    campaign.start_date, campaign.end_date = start, end
    touch(campaign)
    session.add(campaign)
    session.commit()
    return to_public(session, campaign)


def change_status(*, session: Session, campaign_id: str, status: Status,
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
    campaign.status = status
    touch(campaign)
    session.add(campaign)
    session.commit()
    return to_public(session, campaign)


def _require_gates_passed(session: Session, campaign: Campaign) -> None:
    milestones = session.exec(select(Milestone).where(Milestone.campaign_id == campaign.id)).all()
    launches = [m.due_date for m in milestones if m.kind == "launch"]
    launch = min(launches) if launches else None
    open_gates = [m for m in milestones if m.kind == "review_gate" and m.status != "passed"
                  and (launch is None or m.due_date <= launch)]
    if open_gates:
        names = ", ".join(f"{m.name} ({m.id}, {m.status})" for m in open_gates)
        raise Conflict(f"Every review gate before launch must be passed to approve the "
                       f"campaign; not yet: {names}. Record their approval first.",
                       gates=[m.id for m in open_gates])
