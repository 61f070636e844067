"""The calendar and budget endpoints of issue 16's contract (/work/notes/contract16.md), as
small in-memory services the planner calls over real HTTP: the overview and plan-a-campaign are
tested against the contract itself, with faults (down, slow, refusing) switched on per test.

The calendar fake lays a template out as the playbook does: kickoff 20 working days before the
launch, creative final 10, channel test 5, a review gate 2, the launch; phases warm-up (the 10
working days before the launch), burst (launch + 13 days), sustain (21 days), wrap-up (7)."""
import itertools
import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from shared.workdays import add_working_days
from tests.conftest import ThreadedServer

MILESTONES = [("kickoff", "Kickoff", -20), ("creative_final", "Creative final", -10),
              ("channel_test", "Channel test", -5), ("review_gate", "Go/no-go", -2),
              ("launch", "Launch", 0)]
PHASE_DAYS = [("burst", 0, 13), ("sustain", 14, 34), ("wrapup", 35, 41)]


def laid_out(body: dict[str, Any], campaign_id: str | None, ids: itertools.count) -> dict:
    """What the calendar makes of a create body with a template (ids only when stored)."""
    launch = date.fromisoformat(body["launch_date"])
    market = body["market"]
    milestones = [{"id": f"ms_{next(ids)}" if campaign_id else None, "kind": kind, "name": name,
                   "due_date": add_working_days(launch, offset, market).isoformat(),
                   "status": "planned", "approval": None}
                  for kind, name, offset in MILESTONES]
    phases = [{"kind": "warmup", "start_date": add_working_days(launch, -10, market).isoformat(),
               "end_date": (launch - timedelta(days=1)).isoformat()}]
    phases += [{"kind": kind, "start_date": (launch + timedelta(days=a)).isoformat(),
                "end_date": (launch + timedelta(days=b)).isoformat()} for kind, a, b in PHASE_DAYS]
    return {"id": campaign_id, "name": body["name"], "objective": body["objective"],
            "owner": body["owner"], "channels": body["channels"], "market": market,
            "time_zone": body["time_zone"], "priority": body.get("priority", 3),
            "status": "draft" if campaign_id else None, "template": body["template"],
            "version": 1,
            "start_date": milestones[0]["due_date"], "end_date": phases[-1]["end_date"],
            "phases": phases, "milestones": milestones}


class Fakes:
    """Both fake services' state and faults; `reset()` between tests."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        self.campaigns: dict[str, dict] = {}
        self.created_keys: dict[str, str] = {}
        self.funding: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.calendar_delay = self.budget_delay = 0.0
        self.calendar_status: int | None = None      # answer every call with this status
        self.budget_status: int | None = None
        self.refuse: dict[tuple[str, str], tuple[int, dict]] = {}   # (method, path head) → answer

    def add_campaign(self, body: dict[str, Any], status: str = "planned") -> dict:
        campaign = laid_out(body, f"cmp_{next(self.ids)}", self.ids) | {"status": status}
        self.campaigns[campaign["id"]] = campaign
        return campaign

    def fund(self, budget_id: str, campaign_id: str, lines: list[dict]) -> dict:
        campaign = self.campaigns[campaign_id]
        committed = sum(Decimal(line["amount"]) for line in lines)
        funding = {
            "budget_id": budget_id, "campaign_id": campaign_id, "currency": "USD",
            "lines": [{"channel_id": line["channel_id"], "channel_kind": line["channel_id"][3:],
                       "amount": line["amount"],
                       "per_phase": [{"kind": p["kind"], "start_date": p["start_date"],
                                      "end_date": p["end_date"],
                                      "amount": str(Decimal(line["amount"]) / 4)}
                                     for p in campaign["phases"]],
                       "per_period": [], "spent": "0.00", "return": "0.00", "roi": None}
                      for line in lines],
            "committed": f"{committed:.2f}", "spent": "0.00", "return": "0.00", "roi": None,
            "kpi": None}
        self.funding[budget_id, campaign_id] = funding
        return funding


def _problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"type": "urn:test", "title": "refused", "status": status,
                         "detail": detail, **extra}, status_code=status,
                        media_type="application/problem+json")


def fake_app(fakes: Fakes) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def faults(request: Request, call_next):
        service = request.url.path.split("/")[3]
        fakes.calls.append((request.method, request.url.path))
        delay = fakes.calendar_delay if service == "calendar" else fakes.budget_delay
        if delay:
            time.sleep(delay)   # blocks this fake's only loop: a service that hangs
        status = fakes.calendar_status if service == "calendar" else fakes.budget_status
        if status is not None:
            return _problem(status, f"the fake {service} is failing")
        for (method, head), (code, body) in fakes.refuse.items():
            if request.method == method and request.url.path.startswith(head):
                return _problem(code, **body)
        return await call_next(request)

    @app.get("/api/v1/calendar/campaigns/{campaign_id}")
    def read_campaign(campaign_id: str):
        if campaign_id not in fakes.campaigns:
            return _problem(404, f"no campaign {campaign_id}")
        return fakes.campaigns[campaign_id]

    @app.post("/api/v1/calendar/campaigns/preview")
    def preview(body: dict):
        return laid_out(body, None, fakes.ids)

    @app.post("/api/v1/calendar/campaigns", status_code=201)
    def create(body: dict, key: str | None = Header(None, alias="Idempotency-Key")):
        if key in fakes.created_keys:   # a replay answers the first campaign, even if deleted
            return laid_out(body, fakes.created_keys[key], fakes.ids) | {"status": "draft"}
        campaign = fakes.add_campaign(body, status="draft")
        if key:
            fakes.created_keys[key] = campaign["id"]
        return campaign

    @app.delete("/api/v1/calendar/campaigns/{campaign_id}")
    def delete(campaign_id: str, if_match: str | None = Header(None)):
        campaign = fakes.campaigns.get(campaign_id)
        if campaign is None:
            return _problem(404, f"no campaign {campaign_id}")
        if campaign["status"] != "draft":
            return _problem(409, f"campaign is {campaign['status']}")
        if if_match != f'"{campaign["version"]}"':
            return _problem(428 if if_match is None else 412, "send If-Match")
        del fakes.campaigns[campaign_id]
        return Response(status_code=204)

    @app.get("/api/v1/budget/campaigns/{campaign_id}/funding")
    def funding(campaign_id: str):
        return {"items": [f for (_, c), f in sorted(fakes.funding.items()) if c == campaign_id]}

    @app.post("/api/v1/budget/budgets/{budget_id}/campaign-funding/optimize")
    def optimize(budget_id: str, body: dict):
        # Spends the ceiling evenly over the channels, returning 2.5 per unit.
        share = Decimal(body["ceiling"]) / len(body["channels"])
        lines = [{"channel_id": f"ch_{kind}", "channel_kind": kind, "amount": f"{share:.2f}",
                  "per_phase": [{"kind": p["kind"], "amount": f"{share / len(body['phases']):.2f}"}
                                for p in body["phases"]],
                  "expected_return": f"{share * Decimal('2.5'):.2f}", "marginal_roi": "2.5"}
                 for kind in body["channels"]]
        total = share * len(body["channels"])
        target = body.get("target_return")
        return {"lines": lines, "total": f"{total:.2f}",
                "expected_return": f"{total * Decimal('2.5'):.2f}",
                "target_reached": None if target is None else total * Decimal("2.5") >= Decimal(target),
                "status": "optimal",
                "uncommitted": [{"channel_id": f"ch_{k}", "amount": "100000.00"}
                                for k in body["channels"]]}

    @app.put("/api/v1/budget/budgets/{budget_id}/campaigns/{campaign_id}")
    def put_funding(budget_id: str, campaign_id: str, body: dict, response: Response):
        if campaign_id not in fakes.campaigns:
            return _problem(422, f"the calendar has no campaign {campaign_id}")
        response.status_code = 200 if (budget_id, campaign_id) in fakes.funding else 201
        return fakes.fund(budget_id, campaign_id, body["lines"])

    @app.delete("/api/v1/budget/budgets/{budget_id}/campaigns/{campaign_id}")
    def delete_funding(budget_id: str, campaign_id: str):
        if fakes.funding.pop((budget_id, campaign_id), None) is None:
            return _problem(404, "not funded")
        return Response(status_code=204)

    return app


def serve(fakes: Fakes) -> ThreadedServer:
    return ThreadedServer(fake_app(fakes)).start()
