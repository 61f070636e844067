"""The calendar's routes: each validates, calls one use case and renders its answer."""
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from services.calendar import audit, campaigns, conflicts, feeds, milestones, outbox, phases, views
from services.calendar.answers import Answers, At
from services.calendar.models import idempotency_record, utcnow
from shared.channels import ChannelKind
from shared.db import SessionDep, WriteSessionDep
from shared.idempotency import Idempotency, idempotency_dependency
from shared.internal_auth import Caller, require_roles
from shared.pagination import CursorQuery, LimitQuery, Page
from shared.types import Identifier
from shared.versioning import conditional_json, version_etag

router = APIRouter(prefix="/api/v1/calendar", tags=["calendar"])

IdempotencyDep = Annotated[Idempotency, idempotency_dependency(idempotency_record)]
PlannerDep = Annotated[Caller, require_roles("admin", "planner")]
IfMatch = Annotated[str | None, Header(description="The ETag of the version you changed.")]
# Ids and filters are text like any field: the same length and character rules (no NUL, which
# PostgreSQL would refuse with a 500), checked before the database.
CampaignId = Annotated[Identifier, Path()]
MilestoneId = Annotated[Identifier, Path()]
ItemId = Annotated[Identifier, Path()]
Filter = Annotated[Identifier | None, Query()]
ChannelFilter = Annotated[ChannelKind | None, Query(description="One of the department's "
                                                    "channel kinds.")]
CampaignPath = "/campaigns/{campaign_id}"
MilestonePath = CampaignPath + "/milestones/{milestone_id}"
PhasePath = CampaignPath + "/phases/{phase_id}"
# A client's copy of a kept read (`answers`): 304 when it is the current answer.
IfNoneMatch = Annotated[str | None, Header(description="The ETag of the answer you hold.")]
FEED = {"content": {"text/calendar": {}}, "description": "RFC 5545",
        "headers": {"ETag": {"schema": {"type": "string"}},
                    "Last-Modified": {"schema": {"type": "string"}}}}


def _answers(request: Request) -> Answers:
    answers: Answers = request.app.state.answers
    return answers


AnswersDep = Annotated[Answers, Depends(_answers)]


def _at(request: Request, session: SessionDep) -> At:
    # The route's own session (FastAPI makes one per request): the position is read in it,
    # before any row the answer is made from.
    return _answers(request).at(session, request.headers.get("accept-encoding"))


AtDep = Annotated[At, Depends(_at)]
KEPT: dict[int | str, dict[str, Any]] = {
    304: {"description": "Your copy is the current answer (`If-None-Match`)."}}


def _versioned(public: campaigns.CampaignPublic | milestones.MilestonePublic
               | phases.PhasePublic) -> JSONResponse:
    return JSONResponse(public.model_dump(mode="json"), headers={"ETag": version_etag(public.version)})


@router.post("/campaigns", status_code=201, response_model=campaigns.CampaignPublic)
def create_campaign(body: campaigns.CampaignCreate, caller: PlannerDep, session: WriteSessionDep,
                    idempotency: IdempotencyDep) -> campaigns.CampaignPublic:
    """Create a campaign in `draft`; with a `template`, its phases and milestones too."""
    return campaigns.create_campaign(session=session, campaign_in=body, caller=caller,
                                     idempotency=idempotency)


@router.post("/campaigns/preview", response_model=campaigns.CampaignPublic)
def preview_campaign(body: campaigns.CampaignCreate, caller: PlannerDep,
                     session: WriteSessionDep) -> campaigns.CampaignPublic:
    """Answer what `POST /campaigns` with this body would make (its fields, phases and
    milestones with their dates, or its 422), storing nothing; the ids shown are never stored."""
    # A write session: the preview runs the create itself up to its commit, then rolls back.
    return campaigns.preview_campaign(session=session, campaign_in=body, caller=caller)


@router.post("/campaigns/bulk", status_code=201, response_model=campaigns.BulkResult)
def create_campaigns_in_bulk(body: campaigns.BulkCreate, caller: PlannerDep,
                             session: WriteSessionDep, idempotency: IdempotencyDep,
                             partial: Annotated[bool, Query(
                                 description="Create the good rows and list the bad ones, "
                                             "instead of all or none.")] = False,
                             ) -> campaigns.BulkResult:
    """Create up to 500 campaigns at once. By default one bad row rejects the batch (422
    listing every bad row), so a script can fix and resend it as a whole."""
    return campaigns.create_campaigns(session=session, bulk=body, partial=partial, caller=caller,
                                      idempotency=idempotency)


@router.get("/campaigns", response_model=Page[campaigns.CampaignPublic])
def read_campaigns(session: SessionDep, status: campaigns.Status | None = None,
                   owner: Filter = None, limit: LimitQuery = 50,
                   cursor: CursorQuery = None) -> Page[campaigns.CampaignPublic]:
    """List campaigns, oldest first."""
    return campaigns.list_campaigns(session=session, status=status, owner=owner, limit=limit,
                                    cursor=cursor)


@router.get(CampaignPath, response_model=campaigns.CampaignPublic)
def read_campaign(request: Request, campaign_id: CampaignId, session: SessionDep) -> Response:
    """Read a campaign with its phases and milestones; its ETag is its version."""
    public = campaigns.read_campaign(session=session, campaign_id=campaign_id)
    return conditional_json(request, public, version_etag(public.version))


@router.patch(CampaignPath, response_model=campaigns.CampaignPublic)
def update_campaign(campaign_id: CampaignId, body: campaigns.CampaignUpdate, session: WriteSessionDep,
                    caller: PlannerDep, if_match: IfMatch = None) -> JSONResponse:
    """Change a campaign (`If-Match` required)."""
    return _versioned(campaigns.update_campaign(session=session, campaign_id=campaign_id,
                                                update=body, caller=caller, if_match=if_match))


@router.delete(CampaignPath, status_code=204)
def delete_campaign(campaign_id: CampaignId, session: WriteSessionDep, caller: PlannerDep,
                    if_match: IfMatch = None) -> Response:
    """Remove a draft campaign with its phases and milestones (`If-Match` required: the ETag
    of the create's answer or of a later read, or `*`); past draft it is a 409: cancel it."""
    campaigns.delete_campaign(session=session, campaign_id=campaign_id, caller=caller,
                              if_match=if_match)
    return Response(status_code=204)


@router.post(CampaignPath + "/status", response_model=campaigns.CampaignPublic)
def change_status(campaign_id: CampaignId, body: campaigns.StatusChange, session: WriteSessionDep,
                  caller: PlannerDep, if_match: IfMatch = None) -> JSONResponse:
    """Move the campaign along draft → planned → approved → live → completed, or cancel it;
    `approved` needs every review gate before launch passed (`If-Match` required)."""
    return _versioned(campaigns.change_status(session=session, campaign_id=campaign_id,
                                              status=body.status, caller=caller,
                                              if_match=if_match))


@router.post(CampaignPath + "/phases", status_code=201, response_model=phases.PhasePublic)
def create_phase(campaign_id: CampaignId, body: phases.PhaseCreate, caller: PlannerDep,
                 session: WriteSessionDep, idempotency: IdempotencyDep) -> phases.PhasePublic:
    """Add a warmup, burst, sustain or wrapup phase inside the campaign window."""
    return phases.create_phase(session=session, campaign_id=campaign_id, phase_in=body,
                               caller=caller, idempotency=idempotency)


@router.get(PhasePath, response_model=phases.PhasePublic)
def read_phase(request: Request, campaign_id: CampaignId, phase_id: ItemId,
               session: SessionDep) -> Response:
    """Read a phase; its ETag is its version."""
    public = phases.read_phase(session=session, campaign_id=campaign_id, phase_id=phase_id)
    return conditional_json(request, public, version_etag(public.version))


@router.patch(PhasePath, response_model=phases.PhasePublic)
def update_phase(campaign_id: CampaignId, phase_id: ItemId, body: phases.PhaseUpdate,
                 session: WriteSessionDep, caller: PlannerDep,
                 if_match: IfMatch = None) -> JSONResponse:
    """Change a phase's kind or dates inside the campaign window (`If-Match` required)."""
    return _versioned(phases.update_phase(session=session, campaign_id=campaign_id,
                                          phase_id=phase_id, update=body, caller=caller,
                                          if_match=if_match))


@router.delete(PhasePath, status_code=204)
def delete_phase(campaign_id: CampaignId, phase_id: ItemId, session: WriteSessionDep,
                 caller: PlannerDep) -> Response:
    """Remove a phase."""
    phases.delete_phase(session=session, campaign_id=campaign_id, phase_id=phase_id,
                        caller=caller)
    return Response(status_code=204)


@router.post(CampaignPath + "/milestones", status_code=201,
             response_model=milestones.MilestonePublic)
def create_milestone(campaign_id: CampaignId, body: milestones.MilestoneCreate, caller: PlannerDep,
                     session: WriteSessionDep,
                     idempotency: IdempotencyDep) -> milestones.MilestonePublic:
    """Add a milestone, optionally depending on others (finish-to-start, lag in working days)."""
    return milestones.create_milestone(session=session, campaign_id=campaign_id,
                                       milestone_in=body, caller=caller,
                                       idempotency=idempotency)


@router.get(CampaignPath + "/milestones", response_model=Page[milestones.MilestonePublic])
def read_milestones(campaign_id: CampaignId, session: SessionDep,
                    kind: milestones.MilestoneKind | None = None, limit: LimitQuery = 50,
                    cursor: CursorQuery = None) -> Page[milestones.MilestonePublic]:
    """List a campaign's milestones, oldest first."""
    return milestones.list_milestones(session=session, campaign_id=campaign_id, kind=kind,
                                      limit=limit, cursor=cursor)


@router.get(MilestonePath, response_model=milestones.MilestonePublic)
def read_milestone(request: Request, campaign_id: CampaignId, milestone_id: MilestoneId,
                   session: SessionDep) -> Response:
    """Read a milestone; its ETag is its version."""
    public = milestones.read_milestone(session=session, campaign_id=campaign_id,
                                       milestone_id=milestone_id)
    return conditional_json(request, public, version_etag(public.version))


@router.patch(MilestonePath, response_model=milestones.MilestonePublic)
def update_milestone(campaign_id: CampaignId, milestone_id: MilestoneId, body: milestones.MilestoneUpdate,
                     session: WriteSessionDep, caller: PlannerDep,
                     if_match: IfMatch = None) -> JSONResponse:
    """Change a milestone's name, time, owner, status or pin (`If-Match` required)."""
    return _versioned(milestones.update_milestone(
        session=session, campaign_id=campaign_id, milestone_id=milestone_id, update=body,
        caller=caller, if_match=if_match))


@router.post(MilestonePath + "/move", response_model=milestones.MoveResult)
def move_milestone(campaign_id: CampaignId, milestone_id: MilestoneId, body: milestones.MoveRequest,
                   session: WriteSessionDep, caller: PlannerDep,
                   if_match: IfMatch = None) -> milestones.MoveResult:
    """Move a milestone; dependents that would break their rule move too, and the answer lists
    everything that moved. A pinned milestone in the way makes it a 409."""
    return milestones.move_milestone(session=session, campaign_id=campaign_id,
                                     milestone_id=milestone_id, move=body, caller=caller,
                                     if_match=if_match)


@router.post(MilestonePath + "/dependencies", response_model=milestones.MoveResult)
def add_dependency(campaign_id: CampaignId, milestone_id: MilestoneId, body: milestones.DependencyCreate,
                   session: WriteSessionDep, caller: PlannerDep) -> milestones.MoveResult:
    """Make this milestone depend on another; a cycle is a 422 naming it."""
    return milestones.add_dependency(session=session, campaign_id=campaign_id,
                                     milestone_id=milestone_id, dependency_in=body,
                                     caller=caller)


@router.delete(MilestonePath + "/dependencies/{predecessor_id}", status_code=204)
def remove_dependency(campaign_id: CampaignId, milestone_id: MilestoneId, predecessor_id: ItemId,
                      session: WriteSessionDep, caller: PlannerDep) -> Response:
    """Remove a dependency."""
    milestones.remove_dependency(session=session, campaign_id=campaign_id,
                                 milestone_id=milestone_id, predecessor_id=predecessor_id,
                                 caller=caller)
    return Response(status_code=204)


@router.delete(MilestonePath, status_code=204)
def delete_milestone(campaign_id: CampaignId, milestone_id: MilestoneId,
                     session: WriteSessionDep, caller: PlannerDep,
                     if_match: IfMatch = None) -> Response:
    """Remove a milestone and its dependencies (`If-Match` required)."""
    milestones.delete_milestone(session=session, campaign_id=campaign_id,
                                milestone_id=milestone_id, caller=caller, if_match=if_match)
    return Response(status_code=204)


@router.get(MilestonePath + "/approvals", response_model=Page[milestones.ApprovalPublic])
def read_approvals(campaign_id: CampaignId, milestone_id: MilestoneId,
                   session: SessionDep) -> Page[milestones.ApprovalPublic]:
    """List every decision on a review gate, oldest first; the last one is current."""
    return milestones.list_approvals(session=session, campaign_id=campaign_id,
                                     milestone_id=milestone_id)


@router.post(MilestonePath + "/approval", response_model=milestones.MilestonePublic)
def approve_gate(campaign_id: CampaignId, milestone_id: MilestoneId, body: milestones.ApprovalCreate,
                 session: WriteSessionDep, caller: PlannerDep) -> milestones.MilestonePublic:
    """Record a review gate's decision (passed or rejected) with the approver and a comment."""
    return milestones.approve_gate(session=session, campaign_id=campaign_id,
                                   milestone_id=milestone_id, approval_in=body, caller=caller)


@router.get("/events", response_model=outbox.EventPage)
def read_events(session: SessionDep,
                after: Annotated[str | None, Query(
                    max_length=20, description="The id of the last event you applied; "
                    "without it, from the oldest event kept.")] = None,
                limit: LimitQuery = 100, campaign_id: Filter = None) -> outbox.EventPage:
    """List the calendar's changes in commit order after `after`; `next_cursor` is set when
    the page is full (more may follow). 410 when `after` is older than what is kept."""
    return outbox.read_events(session=session, after=after, limit=limit, campaign_id=campaign_id)


@router.get("/audit", response_model=Page[audit.CampaignAuditEntryPublic])
def read_campaign_audit(session: SessionDep, campaign_id: Filter = None, limit: LimitQuery = 50,
                        cursor: CursorQuery = None) -> Page[audit.CampaignAuditEntryPublic]:
    """List every change to the calendar, oldest first: who, when, what, request id, before
    and after."""
    return audit.list_entries(session=session, campaign_id=campaign_id, limit=limit,
                              cursor=cursor)


@router.get("/calendar", response_model=Page[views.CalendarEntryPublic], responses=KEPT)
def read_calendar(session: SessionDep, at: AtDep,
                  from_: Annotated[date, Query(alias="from", description="First day, inclusive.")],
                  to: Annotated[date, Query(description="Last day, inclusive (731 days at most).")],
                  channel: ChannelFilter = None, status: campaigns.Status | None = None,
                  owner: Filter = None, limit: LimitQuery = 50,
                  cursor: CursorQuery = None, if_none_match: IfNoneMatch = None) -> Response:
    """List the campaigns overlapping the range with the phases and milestones in it."""
    return at.json(
        if_none_match=if_none_match, shape=Page[views.CalendarEntryPublic],
        key=("calendar", from_, to, channel, status, owner, limit, cursor),
        answer=lambda: views.read_calendar(session=session, start=from_, end=to,
                                           channel=channel, status=status, owner=owner,
                                           limit=limit, cursor=cursor))


@router.get("/conflicts", response_model=list[conflicts.ConflictPublic], responses=KEPT)
def read_conflicts(session: SessionDep, at: AtDep,
                   from_: Annotated[date, Query(alias="from")], to: date,
                   kind: conflicts.ConflictKind | None = None, channel: ChannelFilter = None,
                   campaign_id: Filter = None, if_none_match: IfNoneMatch = None) -> Response:
    """List overlapping bursts on a channel, milestones outside their campaign, broken
    dependencies, launches inside another campaign's contingency window on a channel,
    milestones on a non-working day of their market; `kind`, `channel` and `campaign_id`
    keep only those (how many of each: `/conflicts/summary`)."""
    return at.body(
        if_none_match=if_none_match, key=("conflicts", from_, to, kind, channel, campaign_id),
        make=lambda: conflicts.conflicts_json(session=session, kept=at, start=from_, end=to,
                                              kind=kind, channel=channel,
                                              campaign_id=campaign_id))


@router.get("/conflicts/summary", response_model=conflicts.ConflictSummaryPublic, responses=KEPT)
def read_conflict_summary(session: SessionDep, at: AtDep,
                          from_: Annotated[date, Query(alias="from")], to: date,
                          if_none_match: IfNoneMatch = None) -> Response:
    """Count the range's conflicts by kind, by channel and by campaign (the list, narrowed
    by the same keys: `/conflicts?kind=&channel=&campaign_id=`)."""
    return at.json(
        if_none_match=if_none_match, shape=conflicts.ConflictSummaryPublic,
        key=("conflicts/summary", from_, to),
        answer=lambda: conflicts.summarize_conflicts(session=session, kept=at, start=from_,
                                                     end=to))


@router.post("/feed-tokens", status_code=201, response_model=feeds.FeedTokenCreated)
def create_feed_token(body: feeds.FeedTokenCreate, caller: PlannerDep, session: WriteSessionDep,
                      idempotency: IdempotencyDep) -> feeds.FeedTokenCreated:
    """Make a revocable feed URL for one campaign or a filtered calendar (shown once)."""
    return feeds.create_token(session=session, token_in=body, caller=caller,
                              idempotency=idempotency)


@router.get("/feed-tokens", response_model=list[feeds.FeedTokenPublic])
def read_feed_tokens(session: SessionDep) -> list[feeds.FeedTokenPublic]:
    """List feed tokens, without their secrets."""
    return feeds.list_tokens(session=session)


@router.post("/feed-tokens/{token_id}/revoke", response_model=feeds.FeedTokenPublic)
def revoke_feed_token(token_id: ItemId, session: WriteSessionDep,
                      caller: PlannerDep) -> feeds.FeedTokenPublic:
    """Revoke a feed token; its URL answers 404 from now on."""
    return feeds.revoke_token(session=session, token_id=token_id, caller=caller)


def _feed(request: Request, token: str, session: SessionDep, answers: Answers, *,
          body: bool) -> Response:
    feed = feeds.read_feed(session=session, token=token, now=utcnow())
    if feed.not_modified(request.headers.get("if-none-match"),
                         request.headers.get("if-modified-since")):
        return Response(status_code=304, headers=feed.headers())
    # Rendered once per ETag in this process (HEAD too): every subscriber polling after a
    # change gets the bytes the first one paid seconds for.
    rendered = answers.kept(feed.position, ("feed", feed.etag),
                            lambda: feeds.render_feed(session=session, feed=feed))
    media_type = "text/calendar; charset=utf-8"
    if body:
        return rendered.response(media_type=media_type, headers=feed.headers(),
                                 accept_encoding=request.headers.get("accept-encoding"))
    # HEAD answers GET's headers, its Content-Length included, without the body.
    return Response(b"", media_type=media_type,
                    headers=feed.headers() | {"Content-Length": str(len(rendered.body))})


@router.get("/feeds/{token}.ics", response_class=Response,
            responses={200: FEED, 304: {"description": "The client's copy is current "
                                             "(`If-None-Match`, `If-Modified-Since`)."}})
def read_feed(request: Request, token: str, session: SessionDep,
              answers: AnswersDep) -> Response:
    """Serve the iCalendar feed a feed token opens (the gateway lets these through without an
    API key: the token is the credential); 304 when the client's copy is current."""
    return _feed(request, token, session, answers, body=True)


@router.head("/feeds/{token}.ics", response_class=Response, responses={200: FEED})
def head_feed(request: Request, token: str, session: SessionDep,
              answers: AnswersDep) -> Response:
    """Answer a feed's headers (ETag, Last-Modified, length) without its body."""
    return _feed(request, token, session, answers, body=False)
