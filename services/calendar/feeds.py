"""iCalendar (RFC 5545) feeds that Outlook, Google Calendar and Apple Calendar subscribe to,
and the revocable feed tokens in their URLs (calendar clients cannot send an API key).

Campaigns, phases and milestones are events with stable UIDs (`<id>@marketplan`); a
milestone's dependencies are `RELATED-TO;RELTYPE=FINISHTOSTART;GAP=…` (RFC 9253) on the
successor, pointing at the predecessor; recurring reviews are events with an `RRULE`.
"""
import hashlib
import re
import secrets
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vRecur
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from services.calendar import audit
from services.calendar.campaigns import Status
from services.calendar.graph import Link, MilestoneGraph, required_date, window_days
from services.calendar.milestones import ApprovalPublic, campaign_milestones, latest_approvals
from services.calendar.models import Campaign, Dependency, FeedToken, Milestone, utcnow
from services.calendar.phases import campaign_phases
from services.calendar.store import dependencies_of, get_campaign, graph_of
from services.calendar.views import campaigns_in
from shared.errors import NotFound
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.types import Identifier, Name, StrictModel

TOKEN_PREFIX = "mpf_"
UID_DOMAIN = "marketplan"
# A whole-calendar feed shows what is planned around today.
FEED_PAST_DAYS, FEED_FUTURE_DAYS = 180, 540
STATUS = {"draft": "TENTATIVE", "planned": "TENTATIVE", "approved": "CONFIRMED",
          "live": "CONFIRMED", "completed": "CONFIRMED", "cancelled": "CANCELLED"}
FREQUENCY = {"daily": ("DAILY", 1), "weekly": ("WEEKLY", 1), "monthly": ("MONTHLY", 1),
             "quarterly": ("MONTHLY", 3)}
# RFC 5545 3.3.11: TEXT holds no control characters but its escaped line breaks; `icalendar`
# asserts on a raw one in some properties (a 500 for every feed with the campaign).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class FeedFilters(StrictModel):
    channel: Identifier | None = None
    status: Status | None = None
    owner: Identifier | None = None


class FeedTokenCreate(StrictModel):
    label: Name = Field(examples=["Ana's Outlook"])
    campaign_id: Identifier | None = Field(None, description="One campaign's feed; without it "
                                           "the whole calendar, narrowed by `filters`.")
    filters: FeedFilters = FeedFilters()


class FeedTokenPublic(BaseModel):
    id: str
    label: str
    campaign_id: str | None
    filters: FeedFilters
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class FeedTokenCreated(FeedTokenPublic):
    token: str = Field(description="Shown once; only its hash is stored.")
    path: str = Field(description="Subscribe to the gateway's URL with this path.")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_path(token: str) -> str:
    """The path of the feed a token opens."""
    return f"/api/v1/calendar/feeds/{token}.ics"


def create_token(*, session: Session, token_in: FeedTokenCreate, caller: Caller,
                 idempotency: Idempotency) -> FeedTokenCreated:
    """Make a feed token; its secret is in the answer only."""
    if token_in.campaign_id is not None:
        get_campaign(session, token_in.campaign_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = FeedToken(id=new_id("feed"), token_hash=_hash(token), campaign_id=token_in.campaign_id,
                    filters=token_in.filters.model_dump(), label=token_in.label,
                    created_by=caller.principal)
    session.add(row)
    answer = FeedTokenCreated(**row.model_dump(exclude={"token_hash"}), token=token,
                              path=feed_path(token))
    audit.record(session, caller=caller, action="feed_token.created", target=row.id,
                 campaign_id=row.campaign_id,
                 after=FeedTokenPublic.model_validate(row, from_attributes=True))
    # A replay must answer with the same URL, so the key's record keeps the secret in clear
    # (the token table keeps only its hash).
    idempotency.record(session, answer)
    session.commit()
    return answer


def list_tokens(*, session: Session) -> list[FeedTokenPublic]:
    """List feed tokens (never their secrets), oldest first."""
    return [FeedTokenPublic.model_validate(t, from_attributes=True)
            for t in session.exec(select(FeedToken).order_by(FeedToken.id))]


def revoke_token(*, session: Session, token_id: str, caller: Caller) -> FeedTokenPublic:
    """Revoke a feed token: its URL stops working at once."""
    row = session.get(FeedToken, token_id)
    if row is None:
        raise NotFound(f"There is no feed token {token_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        audit.record(session, caller=caller, action="feed_token.revoked", target=row.id,
                     campaign_id=row.campaign_id, after={"revoked_at": row.revoked_at})
    answer = FeedTokenPublic.model_validate(row, from_attributes=True)
    session.commit()
    return answer


def read_feed(*, session: Session, token: str, today: date) -> bytes:
    """Render the feed a valid, unrevoked token opens; 404 for anything else (it reveals
    nothing)."""
    row = session.exec(select(FeedToken).where(FeedToken.token_hash == _hash(token))).first()
    if row is None or row.revoked_at is not None:
        raise NotFound("This feed does not exist or its token was revoked; ask for a new link.")
    if row.campaign_id is not None:
        campaigns = [get_campaign(session, row.campaign_id)]
        name = campaigns[0].name
    else:
        campaigns = list(campaigns_in(session, today - timedelta(days=FEED_PAST_DAYS),
                                      today + timedelta(days=FEED_FUTURE_DAYS), **row.filters))
        name = f"Marketplan: {row.label}"
    return build_calendar(session, campaigns, name).to_ical()


def _text(value: str, *, lines: bool = False) -> str:
    """Stored text made safe for an iCalendar TEXT value, whatever it holds: control
    characters become a space (line breaks are kept, escaped by `icalendar`, with `lines`)."""
    if lines:
        return "\n".join(_CONTROL.sub(" ", line) for line in value.splitlines())
    return _CONTROL.sub(" ", value)


def _uid(item_id: str) -> str:
    return f"{item_id}@{UID_DOMAIN}"


def _event(uid: str, summary: str, stamp: datetime, sequence: int) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("summary", _text(summary))
    event.add("dtstamp", stamp)
    event.add("last-modified", stamp)
    event.add("sequence", sequence)
    return event


def _all_day(event: Event, first: date, last: date) -> None:
    event.add("dtstart", first)
    event.add("dtend", last + timedelta(days=1))   # DTEND of a DATE event is exclusive


def build_calendar(session: Session, campaigns: list[Campaign], name: str) -> Calendar:
    """An RFC 5545 calendar of these campaigns, their phases, milestones and reviews."""
    calendar = Calendar()
    calendar.add("prodid", "-//Marketplan//Calendar feed//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", _text(name))
    for campaign in campaigns:
        _add_campaign(session, calendar, campaign)
    calendar.add_missing_timezones()   # a VTIMEZONE for every TZID used (RFC 5545 3.6.5)
    return calendar


def _add_campaign(session: Session, calendar: Calendar, campaign: Campaign) -> None:
    parent = _uid(campaign.id)
    stamp, sequence = campaign.updated_at, campaign.version
    objective = campaign.objective
    event = _event(parent, f"{campaign.name} (campaign)", stamp, sequence)
    _all_day(event, campaign.start_date, campaign.end_date)
    event.add("status", STATUS[campaign.status])
    event.add("categories", [_text(c) for c in campaign.channels])
    event.add("description", _text(f"Objective: {objective['kpi']} {objective['target']}"
                                   f"{objective.get('unit') or ''} by {objective['deadline']}. "
                                   f"Owner: {campaign.owner}. Status: {campaign.status}.",
                                   lines=True))
    calendar.add_component(event)
    phases = campaign_phases(session, campaign.id)
    for phase in phases:
        event = _event(_uid(phase.id), f"{campaign.name}: {phase.kind}", stamp, sequence)
        _all_day(event, phase.start_date, phase.end_date)
        event.add("related-to", parent, parameters={"RELTYPE": "PARENT"})
        calendar.add_component(event)
    milestones = campaign_milestones(session, campaign.id)
    dependencies = dependencies_of(session, (m.id for m in milestones))
    graph = graph_of(campaign.market, milestones, dependencies)
    approvals = latest_approvals(session, [m.id for m in milestones if m.kind == "review_gate"])
    for milestone in milestones:
        approval = approvals.get(milestone.id)
        calendar.add_component(_milestone_event(
            campaign, milestone, dependencies[milestone.id], graph,
            ApprovalPublic.model_validate(approval, from_attributes=True) if approval else None))
    for i, review in enumerate(campaign.reviews):
        window = next(((p.start_date, p.end_date) for p in phases if p.kind == review["phase"]),
                      (campaign.start_date, campaign.end_date))
        frequency, interval = FREQUENCY[review["frequency"]]
        event = _event(_uid(f"{campaign.id}-review-{i}"), f"{campaign.name}: {review['name']}",
                       stamp, sequence)
        _all_day(event, window[0], window[0])
        rule = {"FREQ": frequency, "INTERVAL": interval, "UNTIL": window[1]}
        if review["frequency"] == "daily":
            rule["BYDAY"] = ["MO", "TU", "WE", "TH", "FR"]
        event.add("rrule", vRecur(rule))
        event.add("related-to", parent, parameters={"RELTYPE": "PARENT"})
        calendar.add_component(event)


def _milestone_event(campaign: Campaign, milestone: Milestone, dependencies: list[Dependency],
                     graph: MilestoneGraph, approval: ApprovalPublic | None) -> Event:
    event = _event(_uid(milestone.id), f"{campaign.name}: {milestone.name}", milestone.updated_at,
                   milestone.version)
    hours = milestone.window_hours
    if milestone.due_time is not None:
        at = datetime.combine(milestone.due_date, milestone.due_time, ZoneInfo(campaign.time_zone))
        event.add("dtstart", at - timedelta(hours=hours) if hours else at)
        event.add("dtend", at + timedelta(hours=hours) if hours else at + timedelta(hours=1))
    else:
        days = window_days(hours) if hours else 0
        _all_day(event, milestone.due_date - timedelta(days=days),
                 milestone.due_date + timedelta(days=days))
    event.add("categories", [milestone.kind])
    event.add("status", "CANCELLED" if campaign.status == "cancelled" else
              "CONFIRMED" if milestone.status in ("done", "passed") else "TENTATIVE")
    description = f"{milestone.kind}, status {milestone.status}"
    if approval is not None:
        description += (f"; {approval.decision} by {approval.approver_name or approval.approver}"
                        f" at {approval.at.isoformat()}"
                        + (f": {approval.comment}" if approval.comment else ""))
    event.add("description", _text(description, lines=True))
    event.add("related-to", _uid(campaign.id), parameters={"RELTYPE": "PARENT"})
    for dependency in dependencies:
        before = graph.milestones[dependency.predecessor_id]
        link = Link(dependency.predecessor_id, dependency.successor_id, dependency.lag_days)
        # GAP is a duration: the calendar days the working-day lag spans from the predecessor.
        gap = (required_date(graph, link) - before.due_date).days
        event.add("related-to", _uid(before.id),
                  parameters={"RELTYPE": "FINISHTOSTART", "GAP": f"P{gap}D"})
    return event
