"""iCalendar (RFC 5545) feeds that Outlook, Google Calendar and Apple Calendar subscribe to,
and the revocable feed tokens in their URLs (calendar clients cannot send an API key).

Campaigns, phases and milestones are events with stable UIDs (`<id>@marketplan`); a
milestone's dependencies are `RELATED-TO;RELTYPE=FINISHTOSTART;GAP=…` (RFC 9253) on the
successor, pointing at the predecessor, with the predecessor's `DTEND` + `GAP` = the
successor's `DTSTART`; recurring reviews are events with an `RRULE` whose occurrences all
fall on working days of the campaign's market (`graph.reviews`: `EXDATE`, and `RDATE` for
those moved off a day off).

A feed answers HEAD, carries a strong `ETag` and `Last-Modified`, and answers 304 to
`If-None-Match` or (without it) `If-Modified-Since`, so a polling client downloads it only
when it changed; `REFRESH-INTERVAL` (RFC 7986) and `X-PUBLISHED-TTL` (Outlook) say how often
to poll. The ETag names what the bytes are made from (the calendar's last change, the day for
a whole-calendar feed, the rendering code), so a 304 is answered without rendering: the whole
calendar of a department-year takes seconds to render, nearly all of it inside `icalendar`.
"""
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from importlib import metadata
from pathlib import Path
from typing import NamedTuple, cast
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vDDDTypes, vDuration, vRecur
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.calendar import audit, graph
from services.calendar.campaigns import Status
from services.calendar.graph import Recurrence, recurrence, window_days
from services.calendar.milestones import ApprovalPublic, latest_approvals
from services.calendar.models import (
    Approval,
    CalendarEvent,
    Campaign,
    Dependency,
    FeedToken,
    Milestone,
    Phase,
    utcnow,
)
from services.calendar.outbox import last_position
from services.calendar.store import dependencies_of, get_campaign
from services.calendar.views import campaigns_in
from shared import workdays
from shared.channels import ChannelKind
from shared.errors import NotFound
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.kept import Lru
from shared.types import Identifier, Name, StrictModel
from shared.versioning import none_match

TOKEN_PREFIX = "mpf_"
UID_DOMAIN = "marketplan"
# A whole-calendar feed shows what is planned around today.
FEED_PAST_DAYS, FEED_FUTURE_DAYS = 180, 540
STATUS = {"draft": "TENTATIVE", "planned": "TENTATIVE", "approved": "CONFIRMED",
          "live": "CONFIRMED", "completed": "CONFIRMED", "cancelled": "CANCELLED"}
# How often a client should poll: what REFRESH-INTERVAL, X-PUBLISHED-TTL and Cache-Control
# say. Polls are cheap (a 304 while nothing changed), so planners see a change within this.
REFRESH = timedelta(minutes=15)
# RFC 5545 3.3.11: TEXT holds no control characters but its escaped line breaks; `icalendar`
# asserts on a raw one in some properties (a 500 for every feed with the campaign).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class FeedFilters(StrictModel):
    channel: ChannelKind | None = None
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


@dataclass(frozen=True)
class Feed:
    """A feed's validators, worked out without rendering it, and what renders it."""

    token: FeedToken
    position: int
    etag: str
    last_modified: datetime
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()

    def headers(self) -> dict[str, str]:
        return {"ETag": self.etag, "Last-Modified": format_datetime(self.last_modified,
                                                                    usegmt=True),
                "Cache-Control": f"private, max-age={int(REFRESH.total_seconds())}"}

    def not_modified(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        """Whether the client's copy is this one (RFC 9110 13.1: `If-None-Match` compared
        weakly; `If-Modified-Since` only without it, and ignored when not a valid date or
        later than now)."""
        if if_none_match is not None:
            return none_match(if_none_match, self.etag)
        if if_modified_since is None:
            return False
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        # A date later than the server's clock is not one it gave (RFC 9110 13.1.3).
        if since.tzinfo is None or since > self.now:
            return False
        # HTTP dates have whole seconds: a change within the second of `since` is not newer.
        return self.last_modified.replace(microsecond=0) <= since


def _renderer() -> str:
    """What, besides the data, decides a feed's bytes: this code and the libraries it uses
    (a deployment that changes them must not answer 304 to a copy made by the old ones)."""
    digest = hashlib.sha256()
    for source in sorted([Path(__file__), Path(workdays.__file__),
                          *Path(graph.__file__).parent.glob("*.py")]):
        digest.update(source.read_bytes())
    for package in ("icalendar", "holidays"):
        digest.update(metadata.version(package).encode())
    return digest.hexdigest()


_RENDERER = _renderer()


def read_feed(*, session: Session, token: str, now: datetime) -> Feed:
    """Work out the validators of the feed a valid, unrevoked token opens, without rendering
    it; 404 for anything else (it reveals nothing)."""
    row = session.exec(select(FeedToken).where(FeedToken.token_hash == _hash(token))).first()
    if row is None or row.revoked_at is not None:
        raise NotFound("This feed does not exist or its token was revoked; ask for a new link.")
    # Every change the calendar makes takes the next position of the event feed in its own
    # transaction, so the last position given out names the state the feed is rendered from:
    # a poll answered 304 costs two one-row reads, not the seconds a big feed takes to render.
    # Read before the rows it renders: a change committed in between can only make the body
    # newer than its ETag (the next poll downloads it again), never older.
    position = last_position(session)
    today = now.date()
    if row.campaign_id is not None:
        # Every change to a campaign, its phases and milestones included, touches it.
        last_modified = get_campaign(session, row.campaign_id).updated_at
        state = f"{row.id} {position} {_RENDERER}"
    else:
        # A campaign may leave the feed when it changes (a filter, its dates) or is deleted
        # (which leaves no row to date), and the window moves with the day: the calendar's
        # last change (its last event; pruned only when older than today), or today, dates it.
        changed = session.exec(select(CalendarEvent.occurred_at)
                               .where(CalendarEvent.position == position)).first()
        last_modified = max(filter(None, (changed, row.created_at,
                                          datetime.combine(today, time(), UTC))))
        state = f"{row.id} {position} {today} {_RENDERER}"
    return Feed(row, position, '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"',
                last_modified, now)


def render_feed(*, session: Session, feed: Feed) -> bytes:
    """Render the feed `read_feed` validated, as RFC 5545 bytes."""
    row = feed.token
    if row.campaign_id is not None:
        campaigns = [get_campaign(session, row.campaign_id)]
        name = campaigns[0].name
    else:
        campaigns = list(campaigns_in(session, feed.today - timedelta(days=FEED_PAST_DAYS),
                                      feed.today + timedelta(days=FEED_FUTURE_DAYS),
                                      **row.filters))
        name = f"Marketplan: {row.label}"
    return build_calendar(session, campaigns, name)


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


def build_calendar(session: Session, campaigns: list[Campaign], name: str) -> bytes:
    """An RFC 5545 calendar of these campaigns, their phases, milestones and reviews."""
    calendar = Calendar()
    calendar.add("prodid", "-//Marketplan//Calendar feed//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", _text(name))
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH).to_ical().decode())
    blocks = {campaign.id: _BLOCKS.get(_state(campaign)) for campaign in campaigns}
    # The phases, milestones, dependencies and decisions of the campaigns not kept in their
    # current state, in one query each, not four queries per campaign.
    ids = [campaign.id for campaign in campaigns if blocks[campaign.id] is None]
    phases: dict[str, list[Phase]] = {i: [] for i in ids}
    for phase in session.exec(select(Phase).where(col(Phase.campaign_id).in_(ids))
                              .order_by(col(Phase.start_date), col(Phase.id))):
        phases[phase.campaign_id].append(phase)
    milestones: dict[str, list[Milestone]] = {i: [] for i in ids}
    for milestone in session.exec(select(Milestone).where(col(Milestone.campaign_id).in_(ids))
                                  .order_by(col(Milestone.due_date), col(Milestone.id))):
        milestones[milestone.campaign_id].append(milestone)
    every = [m for mine in milestones.values() for m in mine]
    dependencies = dependencies_of(session, (m.id for m in every))
    approvals = latest_approvals(session, [m.id for m in every if m.kind == "review_gate"])
    for campaign in campaigns:
        if blocks[campaign.id] is None:
            events = _campaign_events(campaign, phases[campaign.id], milestones[campaign.id],
                                      dependencies, approvals)
            # A component's bytes are its lines, the same inside the calendar or alone.
            block = blocks[campaign.id] = Block(
                b"".join(event.to_ical() for event in events),
                any(m.due_time is not None for m in milestones[campaign.id]))
            _BLOCKS.put(_state(campaign), block, len(block.body))
    # A VTIMEZONE for every TZID used (RFC 5545 3.6.5): a timed milestone's, in its
    # campaign's zone. Found here, not by `add_missing_timezones`: it walks every property
    # of the feed for them (a tenth of a whole calendar's render) and adds them in the
    # order of a set of strings, which differs between processes (another feed's bytes
    # under the same strong ETag from each replica).
    zones = {campaign.time_zone for campaign in campaigns
             if cast(Block, blocks[campaign.id]).timed}
    calendar.subcomponents = [Timezone.from_tzid(tzid)
                              for tzid in sorted(filter(None, map(_tzid, zones)))]
    # The calendar's lines, its time zones', then the campaigns' events before its END.
    head = calendar.to_ical().removesuffix(_END)
    return b"".join([head, *(cast(Block, blocks[c.id]).body for c in campaigns), _END])


class Block(NamedTuple):
    """A campaign's events as RFC 5545 bytes, and whether a milestone of it has a time (its
    zone's VTIMEZONE is then needed)."""

    body: bytes
    timed: bool


_END = b"END:VCALENDAR\r\n"


def _state(campaign: Campaign) -> tuple[str, int, datetime]:
    # Every change to a campaign, its phases, milestones, dependencies and decisions
    # included, touches it (`store.touch`): a new version and a new time.
    return campaign.id, campaign.version, campaign.updated_at


# Campaigns' events rendered in this process, by the state of the campaign they were
# rendered from: after a change, the whole-calendar feed renders the campaigns it touched and
# copies the others' (rendering 500 campaigns in `icalendar` took 3-4 s of CPU). A campaign's
# older states are never read again: the least recently read go. Twice a department-year's
# whole calendar (2.5 MB).
_BLOCKS: Lru[tuple[str, int, datetime], Block] = Lru(max_bytes=8 * 2**20)


def _tzid(zone: str) -> str | None:
    """The TZID `icalendar` writes for a time in `zone`: none for UTC and its aliases
    (written with `Z`, RFC 5545 3.3.5)."""
    tzid: str | None = vDDDTypes(datetime(2000, 1, 1, tzinfo=ZoneInfo(zone))).params.get("TZID")
    return tzid


def _campaign_events(campaign: Campaign, phases: list[Phase], milestones: list[Milestone],
                     dependencies: dict[str, list[Dependency]],
                     approvals: dict[str, Approval]) -> list[Event]:
    events: list[Event] = []
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
    events.append(event)
    for phase in phases:
        event = _event(_uid(phase.id), f"{campaign.name}: {phase.kind}", stamp, sequence)
        _all_day(event, phase.start_date, phase.end_date)
        event.add("related-to", parent, parameters={"RELTYPE": "PARENT"})
        events.append(event)
    spans = {m.id: _span(campaign, m) for m in milestones}
    for milestone in milestones:
        approval = approvals.get(milestone.id)
        events.append(_milestone_event(
            campaign, milestone, dependencies[milestone.id], spans,
            ApprovalPublic.model_validate(approval, from_attributes=True) if approval else None))
    for i, review in enumerate(campaign.reviews):
        window = next(((p.start_date, p.end_date) for p in phases if p.kind == review["phase"]),
                      (campaign.start_date, campaign.end_date))
        dates = recurrence(review["frequency"], *window, campaign.market)
        if dates is None:
            continue   # no working day in the window: no review to hold
        event = _event(_uid(f"{campaign.id}-review-{i}"), f"{campaign.name}: {review['name']}",
                       stamp, sequence)
        _all_day(event, dates.start, dates.start)
        _recur(event, dates)
        event.add("related-to", parent, parameters={"RELTYPE": "PARENT"})
        events.append(event)
    return events


def _recur(event: Event, dates: Recurrence) -> None:
    rule = dates.rule
    parts: dict[str, object] = {"FREQ": rule.freq, "INTERVAL": rule.interval,
                                "UNTIL": rule.until}
    if rule.by_day:
        parts["BYDAY"] = list(rule.by_day)
    if rule.by_month_day:
        parts["BYMONTHDAY"] = list(rule.by_month_day)
    if rule.by_set_pos is not None:
        parts["BYSETPOS"] = rule.by_set_pos
    event.add("rrule", vRecur(parts))
    if dates.excluded:
        event.add("exdate", list(dates.excluded))
    if dates.added:
        event.add("rdate", list(dates.added))


Instant = date | datetime


def _span(campaign: Campaign, milestone: Milestone) -> tuple[Instant, Instant]:
    """A milestone's DTSTART and DTEND: its hour (or its window around it) at its time, else
    its day(s) as an all-day event (DTEND exclusive)."""
    hours = milestone.window_hours
    if milestone.due_time is not None:
        at = datetime.combine(milestone.due_date, milestone.due_time, ZoneInfo(campaign.time_zone))
        return ((at - timedelta(hours=hours), at + timedelta(hours=hours)) if hours
                else (at, at + timedelta(hours=1)))
    days = window_days(hours) if hours else 0
    return (milestone.due_date - timedelta(days=days),
            milestone.due_date + timedelta(days=days + 1))


def _gap(end: Instant, start: Instant, zone: ZoneInfo) -> timedelta:
    """The RFC 9253 GAP from a predecessor's DTEND to its successor's DTSTART: whole days
    are nominal (RFC 5545 3.3.6: a day keeps the local time across a DST change), the rest
    exact, so that DTEND + GAP = DTSTART. An all-day date is midnight in the campaign's zone."""
    if not isinstance(end, datetime) and not isinstance(start, datetime):
        return start - end
    first, last = (moment if isinstance(moment, datetime) else
                   datetime.combine(moment, time(), zone) for moment in (end, start))
    sign = 1 if last >= first else -1
    if sign < 0:
        first, last = last, first
    # The most whole days from `first` that do not pass `last`, then the exact rest.
    days = (last.date() - first.date()).days
    while (middle := datetime.combine(first.date() + timedelta(days=days), first.timetz())) > last:
        days -= 1
    rest = last.astimezone(UTC) - middle.astimezone(UTC)
    return sign * (timedelta(days=days) + rest)


def _milestone_event(campaign: Campaign, milestone: Milestone, dependencies: list[Dependency],
                     spans: dict[str, tuple[Instant, Instant]],
                     approval: ApprovalPublic | None) -> Event:
    event = _event(_uid(milestone.id), f"{campaign.name}: {milestone.name}", milestone.updated_at,
                   milestone.version)
    start, end = spans[milestone.id]
    event.add("dtstart", start)
    event.add("dtend", end)
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
    zone = ZoneInfo(campaign.time_zone)
    for dependency in dependencies:
        gap = _gap(spans[dependency.predecessor_id][1], start, zone)
        event.add("related-to", _uid(dependency.predecessor_id),
                  parameters={"RELTYPE": "FINISHTOSTART", "GAP": vDuration(gap).to_ical().decode()})
    return event
