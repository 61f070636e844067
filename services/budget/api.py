from collections.abc import Callable, Iterator
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from services.budget import whatif
from services.budget.jobs import CAMPAIGN_FUNDING, JOBS, OPTIMIZE, PLAN, WHATIF_ROLES
from services.budget.ledger import (
    actuals,
    approvals,
    audit,
    budgets,
    channels,
    exports,
    funding,
    funding_whatif,
    plans,
    reserve,
    review,
    variance,
)
from services.budget.ledger.kept import KeptAnswers
from services.budget.ledger.pending import PendingActionPublic, PendingStatus
from services.budget.ledger.tables import idempotency_record
from services.budget.propagation import BudgetConsumer
from services.budget.whatif import OptimizationPublic, OptimizationRequest
from shared.client import ServiceClient
from shared.db import SessionDep, WriteSessionDep, get_session
from shared.events import SyncStatus
from shared.idempotency import Idempotency, idempotency_dependency
from shared.internal_auth import Caller, require_roles
from shared.jobs import ASYNC_RESPONSES, PreferAsyncDep
from shared.kept import Kept
from shared.pagination import CursorQuery, LimitQuery, Page
from shared.types import Identifier
from shared.versioning import body_etag, conditional_json, none_match, version_etag
from shared.workers import WorkerPool

router = APIRouter(prefix="/api/v1/budget", tags=["budget"])


def _workers(request: Request) -> WorkerPool:
    return request.app.state.workers


WorkersDep = Annotated[WorkerPool, Depends(_workers)]


def _calendar(request: Request) -> ServiceClient:
    return request.app.state.calendar


CalendarDep = Annotated[ServiceClient, Depends(_calendar)]


def _consumer(request: Request) -> BudgetConsumer:
    return request.app.state.consumer


ConsumerDep = Annotated[BudgetConsumer, Depends(_consumer)]


def _kept(request: Request) -> KeptAnswers:
    return request.app.state.kept


KeptDep = Annotated[KeptAnswers, Depends(_kept)]
IdempotencyDep = Annotated[Idempotency, idempotency_dependency(idempotency_record)]
PlannerDep = Annotated[Caller, require_roles("admin", "planner")]
FinanceDep = Annotated[Caller, require_roles("admin", "finance")]
# The second key holder of a four-eyes action may be finance as well as a planner.
ConfirmerDep = Annotated[Caller, require_roles("admin", "planner", "finance")]
# What-ifs store nothing: finance may run them as well as planners.
WhatIfDep = Annotated[Caller, require_roles(*WHATIF_ROLES)]
IfMatch = Annotated[str | None, Header(description="The ETag of the version you changed.")]
IfNoneMatch = Annotated[str | None, Header(
    description="The ETag of the answer you hold: 304 while it is still the answer.")]
BudgetPath = "/budgets/{budget_id}"
# Path and filter texts follow the API's text rules (no NUL), checked before the database.
BudgetId = Annotated[Identifier, Path()]
ChannelId = Annotated[Identifier, Path()]
DrawId = Annotated[Identifier, Path()]
CampaignId = Annotated[Identifier, Path()]
PendingId = Annotated[Identifier, Path()]
CampaignFilter = Annotated[Identifier | None, Query(
    description="Only what carries this campaign (its funding as the plan, in variance).")]
PENDING: dict[int | str, dict[str, Any]] = {202: {"model": PendingActionPublic,
                 "description": "Above the budget's four_eyes_above: pending until another "
                                "key holder confirms it at …/pending/{id}/confirm."}}
Filter = Annotated[Identifier | None, Query()]
# Plan numbers are INTEGER columns: a larger number names no plan, and PostgreSQL would refuse
# to compare it with one (a 500), so it is a 422 before the database.
PlanNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]
CSV = {"description": "CSV with a header row.", "content": {"text/csv": {}}}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the ETag sent as If-None-Match is the answer's."}}
# The same answer for every caller allowed to read it: a client (never a shared cache: a
# budget is for its key holders) may keep it, and asks again each time with its ETag.
CACHE_CONTROL = "private, no-cache"


# An export's session stays open until its last row is sent ("request" scope: closed after
# the response), since the rows are read from the database while the answer streams.
ExportSessionDep = Annotated[Session, Depends(get_session, scope="request")]


def _not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})


def _csv(etag: str, if_none_match: str | None, body: Callable[[], Iterator[str]],
         filename: str) -> Response:
    """Stream `body()`'s rows, or answer 304 without reading them."""
    if none_match(if_none_match, etag):
        return _not_modified(etag)
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "ETag": etag,
        "Cache-Control": CACHE_CONTROL})


def _conditional(kept: Kept, request: Request, if_none_match: str | None, media_type: str,
                 headers: dict[str, str] | None = None) -> Response:
    """Answer `kept` (gzipped once, for every read that takes gzip), or 304 when
    `If-None-Match` names its ETag."""
    if none_match(if_none_match, kept.etag):
        return _not_modified(kept.etag)
    return kept.response(media_type=media_type, accept_encoding=request.headers.get(
        "accept-encoding"), headers={**(headers or {}), "ETag": kept.etag,
                                     "Cache-Control": CACHE_CONTROL})


def _kept_csv(kept: Kept, request: Request, if_none_match: str | None,
              filename: str) -> Response:
    return _conditional(kept, request, if_none_match, "text/csv; charset=utf-8",
                        {"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/sync", response_model=SyncStatus)
def read_sync(consumer: ConsumerDep) -> SyncStatus:
    """Show how far the budget has applied the calendar's events: cursor, backlog, last error."""
    return consumer.status()


@router.post("/optimize", response_model=OptimizationPublic, responses=ASYNC_RESPONSES)
def optimize_budget(request: Request, body: OptimizationRequest, session: WriteSessionDep,
                    caller: WhatIfDep, workers: WorkersDep, respond_async: PreferAsyncDep) -> Any:
    """Allocate a budget across channels for the best expected return, holding back the reserve
    (a what-if: nothing is stored). An impossible request is a 422 naming the conflict."""
    if respond_async:
        return JOBS.submit(session, kind=OPTIMIZE, caller=caller, body=body)
    return whatif.optimize_budget(request=body, workers=workers,
                                   grace_seconds=request.app.state.settings.solve_grace_seconds)


# --- budgets ---------------------------------------------------------------------------

@router.post("/budgets", status_code=201, response_model=budgets.BudgetPublic)
def create_budget(body: budgets.BudgetCreate, session: WriteSessionDep, caller: PlannerDep,
                  idempotency: IdempotencyDep, calendar: CalendarDep) -> budgets.BudgetPublic:
    """Create a budget with its fiscal period, total and reserve policy; linked campaigns
    must exist in the calendar."""
    return budgets.create_budget(session=session, idempotency=idempotency, budget_in=body,
                                 calendar=calendar, caller=caller)


@router.get("/budgets", response_model=Page[budgets.BudgetPublic])
def read_budgets(session: SessionDep, limit: LimitQuery = 50, cursor: CursorQuery = None,
                 department: Filter = None, currency: Filter = None,
                 active_from: Annotated[date | None, Query(
                     description="Budgets whose fiscal period ends on or after this date.")] = None,
                 active_to: Annotated[date | None, Query(
                     description="... and starts on or before this date.")] = None):
    """List budgets, oldest first, filtered by department, currency and fiscal-period overlap."""
    return budgets.list_budgets(session=session, department=department, currency=currency,
                                active_from=active_from, active_to=active_to, limit=limit,
                                cursor=cursor)


@router.get(BudgetPath, response_model=budgets.BudgetPublic,
            responses={304: {"description": "Not modified (If-None-Match)."}})
def read_budget(request: Request, budget_id: BudgetId, session: SessionDep) -> Response:
    """Read a budget; its ETag is its version."""
    public = budgets.read_budget(session=session, budget_id=budget_id)
    return conditional_json(request, public, version_etag(public.version))


@router.patch(BudgetPath, response_model=budgets.BudgetPublic)
def update_budget(response: Response, budget_id: BudgetId, body: budgets.BudgetUpdate,
                  session: WriteSessionDep, caller: PlannerDep, calendar: CalendarDep,
                  if_match: IfMatch = None) -> budgets.BudgetPublic:
    """Change a budget; `If-Match` must carry the ETag you read (412 if it changed since)."""
    public = budgets.update_budget(session=session, budget_id=budget_id, update=body,
                                   if_match=if_match, calendar=calendar, caller=caller)
    response.headers["ETag"] = version_etag(public.version)
    return public


# --- channels --------------------------------------------------------------------------

@router.post(BudgetPath + "/channels", status_code=201, response_model=channels.ChannelPublic)
def create_channel(budget_id: BudgetId, body: channels.ChannelCreate, session: WriteSessionDep,
                   caller: PlannerDep, idempotency: IdempotencyDep) -> channels.ChannelPublic:
    """Add a channel with its return model, bounds, group and lifecycle state."""
    return channels.create_channel(session=session, idempotency=idempotency, budget_id=budget_id,
                                   channel_in=body, caller=caller)


@router.get(BudgetPath + "/channels", response_model=list[channels.ChannelPublic])
def read_channels(budget_id: BudgetId, session: SessionDep):
    """List a budget's channels in the order they were added."""
    return channels.list_channels(session=session, budget_id=budget_id)


@router.get(BudgetPath + "/channels/{channel_id}", response_model=channels.ChannelPublic)
def read_channel(request: Request, budget_id: BudgetId, channel_id: ChannelId,
                 session: SessionDep) -> Response:
    """Read a channel; its ETag is its version."""
    public = channels.read_channel(session=session, budget_id=budget_id, channel_id=channel_id)
    return conditional_json(request, public, version_etag(public.version))


@router.patch(BudgetPath + "/channels/{channel_id}", response_model=channels.ChannelPublic)
def update_channel(response: Response, budget_id: BudgetId, channel_id: ChannelId,
                   body: channels.ChannelUpdate, session: WriteSessionDep, caller: PlannerDep,
                   if_match: IfMatch = None) -> channels.ChannelPublic:
    """Change a channel or move it through testing → active → scaling → exited (`If-Match`)."""
    public = channels.update_channel(session=session, budget_id=budget_id, channel_id=channel_id,
                                     update=body, if_match=if_match, caller=caller)
    response.headers["ETag"] = version_etag(public.version)
    return public


# --- plans -----------------------------------------------------------------------------

@router.post(BudgetPath + "/plans", status_code=201, response_model=plans.PlanPublic,
             responses=ASYNC_RESPONSES)
def create_plan(request: Request, budget_id: BudgetId, body: plans.PlanCreate,
                session: WriteSessionDep, caller: PlannerDep, workers: WorkersDep,
                idempotency: IdempotencyDep, respond_async: PreferAsyncDep) -> Any:
    """Optimize the budget's channels and store the answer as the next plan version (a draft
    until approved). An impossible plan is a 422 naming the conflict."""
    if respond_async:
        return JOBS.submit(session, kind=PLAN, caller=caller, body=body,
                           params={"budget_id": budget_id}, idempotency=idempotency)
    return plans.create_plan(session=session, idempotency=idempotency, budget_id=budget_id,
                             plan_in=body, workers=workers, caller=caller,
                             grace_seconds=request.app.state.settings.solve_grace_seconds)


@router.get(BudgetPath + "/plans", response_model=Page[plans.PlanSummaryPublic])
def read_plans(budget_id: BudgetId, session: SessionDep, limit: LimitQuery = 50,
               cursor: CursorQuery = None):
    """List a budget's plan versions, oldest first."""
    return plans.list_plans(session=session, budget_id=budget_id, limit=limit, cursor=cursor)


@router.get(BudgetPath + "/plans/{number}.csv", response_class=StreamingResponse,
            responses={200: CSV, **NOT_MODIFIED})
def export_plan(budget_id: BudgetId, number: PlanNumber, session: ExportSessionDep,
                if_none_match: IfNoneMatch = None) -> Response:
    """Export a plan version as CSV: one row per channel and period."""
    etag = exports.ledger_etag(session=session, budget_id=budget_id, read="plan.csv",
                               plan_number=number)
    return _csv(etag, if_none_match,
                lambda: exports.plan_csv(session=session, budget_id=budget_id, number=number),
                f"{budget_id}-plan-{number}.csv")


@router.get(BudgetPath + "/plans/{number}", response_model=plans.PlanPublic)
def read_plan(request: Request, budget_id: BudgetId, number: PlanNumber, session: SessionDep) -> Response:
    """Read a plan version with its channels, periods and the reserve draws made for it."""
    public = plans.read_plan(session=session, budget_id=budget_id, number=number)
    return conditional_json(request, public, body_etag(public))


@router.post(BudgetPath + "/plans/{number}/approve",
             response_model=plans.PlanPublic | PendingActionPublic, responses=PENDING)
def approve_plan(response: Response, budget_id: BudgetId, number: PlanNumber,
                 session: WriteSessionDep, caller: PlannerDep) -> Any:
    """Make this plan version the budget's current plan (202 pending when four eyes apply)."""
    answer = plans.approve(session=session, budget_id=budget_id, number=number, caller=caller)
    if isinstance(answer, PendingActionPublic):
        response.status_code = 202
    return answer


# --- reserve ---------------------------------------------------------------------------

@router.get(BudgetPath + "/reserve", response_model=reserve.ReservePublic,
            responses=NOT_MODIFIED)
def read_reserve(budget_id: BudgetId, session: SessionDep, request: Request,
                 if_none_match: IfNoneMatch = None) -> Response:
    """Show how much the reserve holds, how much was drawn and what is left."""
    public = reserve.read_reserve(session=session, budget_id=budget_id)
    return _conditional(Kept.of(public.model_dump_json(by_alias=True).encode()), request,
                        if_none_match, "application/json")


@router.get(BudgetPath + "/reserve/entries", response_model=Page[reserve.ReserveEntryPublic])
def read_reserve_entries(budget_id: BudgetId, session: SessionDep, limit: LimitQuery = 50,
                         cursor: CursorQuery = None):
    """List the reserve's draws and reversals, oldest first."""
    return reserve.list_entries(session=session, budget_id=budget_id, limit=limit, cursor=cursor)


@router.get(BudgetPath + "/reserve/entries.csv", response_class=StreamingResponse,
            responses={200: CSV, **NOT_MODIFIED})
def export_reserve_entries(budget_id: BudgetId, session: ExportSessionDep,
                           if_none_match: IfNoneMatch = None) -> Response:
    """Export the reserve's ledger as CSV: one row per draw or reversal, oldest first."""
    etag = exports.ledger_etag(session=session, budget_id=budget_id, read="reserve.csv")
    return _csv(etag, if_none_match,
                lambda: exports.reserve_csv(session=session, budget_id=budget_id),
                f"{budget_id}-reserve.csv")


@router.post(BudgetPath + "/reserve/draws", status_code=201,
             response_model=reserve.ReserveEntryPublic | PendingActionPublic, responses=PENDING)
def draw_reserve(response: Response, budget_id: BudgetId, body: reserve.DrawCreate,
                 session: WriteSessionDep, caller: PlannerDep, idempotency: IdempotencyDep) -> Any:
    """Move money from the reserve to a channel or campaign (202 pending when four eyes
    apply); 409 if the reserve has too little."""
    answer = reserve.draw(session=session, idempotency=idempotency, budget_id=budget_id,
                          draw_in=body, caller=caller)
    if isinstance(answer, PendingActionPublic):
        response.status_code = 202
    return answer


@router.post(BudgetPath + "/reserve/draws/{draw_id}/reversal", status_code=201,
             response_model=reserve.ReserveEntryPublic)
def reverse_draw(budget_id: BudgetId, draw_id: DrawId, body: reserve.ReversalCreate,
                 session: WriteSessionDep, caller: PlannerDep,
                 idempotency: IdempotencyDep) -> reserve.ReserveEntryPublic:
    """Return a draw's money to the reserve with a compensating entry (draws are never edited)."""
    return reserve.reverse(session=session, idempotency=idempotency, budget_id=budget_id,
                           draw_id=draw_id, reversal_in=body, caller=caller)


# --- actuals, variance, review -----------------------------------------------------------

@router.post(BudgetPath + "/actuals", response_model=actuals.ImportResultPublic)
def import_actuals(budget_id: BudgetId, body: actuals.ActualsImport, session: WriteSessionDep,
                   caller: FinanceDep, idempotency: IdempotencyDep) -> actuals.ImportResultPublic:
    """Store actual spend and return by channel and period; a replayed file changes nothing."""
    return actuals.import_actuals(session=session, idempotency=idempotency, budget_id=budget_id,
                                  actuals_in=body, caller=caller)


@router.get(BudgetPath + "/actuals", response_model=Page[actuals.ActualPublic])
def read_actuals(budget_id: BudgetId, session: SessionDep, channel_id: Filter = None,
                 period: Filter = None, campaign_id: CampaignFilter = None,
                 limit: LimitQuery = 100, cursor: CursorQuery = None):
    """List actuals by period, then channel, then campaign."""
    return actuals.list_actuals(session=session, budget_id=budget_id, channel_id=channel_id,
                                period=period, campaign_id=campaign_id, limit=limit,
                                cursor=cursor)


@router.get(BudgetPath + "/actuals.csv", response_class=StreamingResponse,
            responses={200: CSV, **NOT_MODIFIED})
def export_actuals(budget_id: BudgetId, session: ExportSessionDep,
                   campaign_id: CampaignFilter = None,
                   if_none_match: IfNoneMatch = None) -> Response:
    """Export actuals as CSV: one row per channel, period and campaign."""
    etag = exports.ledger_etag(session=session, budget_id=budget_id, read="actuals.csv",
                               campaign_id=campaign_id)
    return _csv(etag, if_none_match,
                lambda: exports.actuals_csv(session=session, budget_id=budget_id,
                                            campaign_id=campaign_id),
                f"{budget_id}-actuals.csv")


@router.get(BudgetPath + "/variance", response_model=variance.VariancePublic,
            responses=NOT_MODIFIED)
def read_variance(budget_id: BudgetId, session: SessionDep, kept: KeptDep, request: Request,
                  campaign_id: CampaignFilter = None,
                  if_none_match: IfNoneMatch = None) -> Response:
    """Compare the current plan (with its draws) and actuals: per channel and period, burn
    rate, and alerts where spend runs ahead of plan by the budget's alert_percent."""
    # Written once as `VariancePublic`'s JSON (the model documents it), and kept while the
    # budget does not change: 2,650 rows of seven decimals each took 40-130 ms to make.
    return _conditional(variance.read_variance_json(session=session, budget_id=budget_id,
                                                    campaign_id=campaign_id, kept=kept),
                        request, if_none_match, "application/json")


@router.get(BudgetPath + "/variance.csv", response_class=Response,
            responses={200: CSV, **NOT_MODIFIED})
def export_variance(budget_id: BudgetId, session: SessionDep, kept: KeptDep, request: Request,
                    campaign_id: CampaignFilter = None,
                    if_none_match: IfNoneMatch = None) -> Response:
    """Export the variance as CSV: one row per channel and period, plan against actuals."""
    return _kept_csv(exports.variance_csv(session=session, budget_id=budget_id,
                                          campaign_id=campaign_id, kept=kept),
                     request, if_none_match, f"{budget_id}-variance.csv")


@router.get(BudgetPath + "/review", response_model=review.ReviewPublic, responses=NOT_MODIFIED)
def read_review(budget_id: BudgetId, session: SessionDep, kept: KeptDep, request: Request,
                if_none_match: IfNoneMatch = None) -> Response:
    """Apply the playbook's admit / scale-up / exit rules to each channel's actuals."""
    return _conditional(review.read_review_json(session=session, budget_id=budget_id, kept=kept),
                        request, if_none_match, "application/json")


@router.post(BudgetPath + "/review/apply", response_model=review.ReviewAppliedPublic)
def apply_review(budget_id: BudgetId, body: review.ReviewApply, session: WriteSessionDep,
                 caller: PlannerDep) -> review.ReviewAppliedPublic:
    """Apply the review's recommendations you confirm (admit, scale up, exit) in one go; 409
    naming each that is no longer what the review says."""
    return review.apply_review(session=session, budget_id=budget_id, apply_in=body,
                               caller=caller)


@router.get(BudgetPath + "/review.csv", response_class=Response,
            responses={200: CSV, **NOT_MODIFIED})
def export_review(budget_id: BudgetId, session: SessionDep, kept: KeptDep, request: Request,
                  if_none_match: IfNoneMatch = None) -> Response:
    """Export the channel review as CSV: one row per channel with its recommendation."""
    return _kept_csv(exports.review_csv(session=session, budget_id=budget_id, kept=kept),
                     request, if_none_match, f"{budget_id}-review.csv")


@router.get(BudgetPath + "/audit", response_model=Page[audit.AuditEntryPublic])
def read_audit(budget_id: BudgetId, session: SessionDep, limit: LimitQuery = 100,
               cursor: CursorQuery = None):
    """Read a budget's append-only audit log, oldest first."""
    return audit.list_entries(session=session, budget_id=budget_id, limit=limit, cursor=cursor)


@router.get(BudgetPath + "/audit.csv", response_class=StreamingResponse,
            responses={200: CSV, **NOT_MODIFIED})
def export_audit(budget_id: BudgetId, session: ExportSessionDep,
                 if_none_match: IfNoneMatch = None) -> Response:
    """Export the budget's audit log as CSV, oldest entry first."""
    return _csv(exports.audit_etag(session=session, budget_id=budget_id), if_none_match,
                lambda: exports.audit_csv(session=session, budget_id=budget_id),
                f"{budget_id}-audit.csv")


# --- four eyes --------------------------------------------------------------------------

@router.get(BudgetPath + "/pending", response_model=Page[PendingActionPublic])
def read_pending(budget_id: BudgetId, session: SessionDep,
                 status: Annotated[PendingStatus | None, Query()] = None,
                 limit: LimitQuery = 50, cursor: CursorQuery = None):
    """List draws and plan approvals waiting for (or given) a second key holder."""
    return approvals.list_pending(session=session, budget_id=budget_id, status=status,
                                  limit=limit, cursor=cursor)


@router.post(BudgetPath + "/pending/{pending_id}/confirm", response_model=PendingActionPublic)
def confirm_pending(budget_id: BudgetId, pending_id: PendingId, session: WriteSessionDep,
                    caller: ConfirmerDep) -> PendingActionPublic:
    """Confirm a pending draw or plan approval as a second key holder (not its author)."""
    return approvals.confirm(session=session, budget_id=budget_id, pending_id=pending_id,
                             caller=caller)


@router.post(BudgetPath + "/pending/{pending_id}/cancel", response_model=PendingActionPublic)
def cancel_pending(budget_id: BudgetId, pending_id: PendingId, session: WriteSessionDep,
                   caller: ConfirmerDep) -> PendingActionPublic:
    """Withdraw or refuse a pending draw or plan approval; a held draw's money is free again."""
    return approvals.cancel(session=session, budget_id=budget_id, pending_id=pending_id,
                            caller=caller)


# --- campaign funding ---------------------------------------------------------------------

CampaignFundingPath = BudgetPath + "/campaigns/{campaign_id}"


@router.put(CampaignFundingPath, response_model=funding.CampaignFundingPublic,
            responses={201: {"model": funding.CampaignFundingPublic,
                             "description": "The campaign was not funded by this budget before."}})
def put_campaign_funding(response: Response, budget_id: BudgetId, campaign_id: CampaignId,
                         body: funding.CampaignFundingPut, session: WriteSessionDep,
                         caller: PlannerDep, calendar: CalendarDep) -> funding.CampaignFundingPublic:
    """Fund a campaign from the current plan, per channel, phased over its phases (links it
    if needed); 409 naming a channel without enough uncommitted money."""
    answer, created = funding.put_funding(session=session, budget_id=budget_id,
                                          campaign_id=campaign_id, funding_in=body,
                                          calendar=calendar, caller=caller)
    if created:
        response.status_code = 201
    return answer


@router.get(CampaignFundingPath, response_model=funding.CampaignFundingPublic)
def read_campaign_funding(budget_id: BudgetId, campaign_id: CampaignId, session: SessionDep):
    """Read a campaign's funding: lines per phase and period, spend, return, ROI and KPI."""
    return funding.read_funding(session=session, budget_id=budget_id, campaign_id=campaign_id)


@router.delete(CampaignFundingPath, status_code=204)
def delete_campaign_funding(budget_id: BudgetId, campaign_id: CampaignId,
                            session: WriteSessionDep, caller: PlannerDep) -> None:
    """Remove a campaign's funding from the budget (the campaign stays linked)."""
    funding.delete_funding(session=session, budget_id=budget_id, campaign_id=campaign_id,
                           caller=caller)


@router.get("/campaigns/{campaign_id}/funding", response_model=funding.CampaignFundingList)
def read_funding_of_campaign(campaign_id: CampaignId, session: SessionDep):
    """List a campaign's funding in every budget that funds it."""
    return funding.list_campaign_funding(session=session, campaign_id=campaign_id)


@router.post(BudgetPath + "/campaign-funding/optimize",
             response_model=funding_whatif.FundingOptimizationPublic, responses=ASYNC_RESPONSES)
def optimize_campaign_funding(request: Request, budget_id: BudgetId,
                              body: funding_whatif.FundingOptimizeRequest, session: SessionDep,
                              jobs_session: WriteSessionDep, caller: WhatIfDep,
                              workers: WorkersDep, respond_async: PreferAsyncDep) -> Any:
    """Find a campaign's best funding within its ceiling and the plan's uncommitted money, each
    channel's curve cut to the campaign's phases (a what-if: nothing is stored)."""
    # The what-if only reads (`session`); queuing its job writes (`jobs_session`). A session
    # opens no transaction until used, so the one the call does not need costs nothing.
    if respond_async:
        return JOBS.submit(jobs_session, kind=CAMPAIGN_FUNDING, caller=caller, body=body,
                           params={"budget_id": budget_id})
    return funding_whatif.optimize_funding(
        session=session, budget_id=budget_id, request=body, workers=workers,
        grace_seconds=request.app.state.settings.solve_grace_seconds)
