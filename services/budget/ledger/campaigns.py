"""Campaigns linked to budgets, as the budget knows them: read from the calendar when a budget
links them, then kept current by the calendar's event feed (`services.budget.propagation`).

A row stays after the last budget unlinks its campaign: it is still kept current, and a
budget that links the campaign again starts from a fresh read anyway. A campaign the calendar
deletes (only drafts can be) is dropped everywhere: its row, its links and its funding."""
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from sqlalchemy import String, cast, delete
from sqlmodel import Session, col, select

from services.budget.ledger.tables import (
    Budget,
    CampaignFunding,
    FundingLine,
    LinkedCampaign,
    utcnow,
)
from shared.client import ServiceClient
from shared.errors import ServiceUnavailable, invalid_fields

# A closed campaign takes no more money from the reserve.
CLOSED = ("cancelled", "completed")


class LinkedCampaignPublic(BaseModel):
    id: str
    name: str | None = Field(description="null until the budget service has read the campaign.")
    status: str | None = Field(description="The calendar's status: draft, planned, approved, "
                               "live, completed or cancelled.")
    start_date: date | None
    end_date: date | None
    synced_at: datetime | None = Field(description="When the budget last saw this change.")


def fetch_campaign(calendar: ServiceClient, campaign_id: str) -> dict[str, Any] | None:
    """The calendar's current state of a campaign; None if the calendar does not know it."""
    response = calendar.request("GET", f"/api/v1/calendar/campaigns/{quote(campaign_id, safe='')}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ServiceUnavailable("The calendar service could not confirm the campaigns; "
                                 "try again shortly.")
    state: dict[str, Any] = response.json()
    return state


def read_linked(calendar: ServiceClient, campaign_ids: list[str]) -> list[dict[str, Any]]:
    """The calendar's state of each campaign a budget links; InvalidRequest naming each id the
    calendar does not know."""
    states, errors = [], []
    for i, campaign_id in enumerate(campaign_ids):
        state = fetch_campaign(calendar, campaign_id)
        if state is None:
            errors.append((f"campaign_ids[{i}]", f"the calendar has no campaign {campaign_id!r}"))
        else:
            states.append(state)
    if errors:
        raise invalid_fields(errors)
    return states


def _values(state: dict[str, Any]) -> dict[str, Any]:
    dates = {field: None if state.get(field) is None else date.fromisoformat(state[field])
             for field in ("start_date", "end_date")}
    # Phases as JSON, in the calendar's (date) order: what a funded campaign is phased over.
    phases = [{key: phase[key] for key in ("id", "kind", "start_date", "end_date")}
              for phase in state.get("phases", [])]
    return {"name": state["name"], "status": state["status"],
            "objective": state.get("objective"), "phases": phases} | dates


def store(session: Session, state: dict[str, Any], *, event_id: str | None = None) -> bool:
    """Stage the calendar's `state` of a campaign; tell whether anything the budget shows of it
    changed (a state already stored changes nothing, not even its sync time)."""
    values = _values(state)
    row = session.get(LinkedCampaign, state["id"])
    if row is not None and all(getattr(row, k) == v for k, v in values.items()):
        return False
    row = row or LinkedCampaign(campaign_id=state["id"], **values)
    row.sqlmodel_update(values | {"event_id": event_id, "synced_at": utcnow()})
    session.add(row)
    return True


def linked(session: Session, campaign_ids: set[str]) -> set[str]:
    """The campaigns among these that some budget links (or once linked)."""
    if not campaign_ids:
        return set()
    return set(session.exec(select(LinkedCampaign.campaign_id)
                            .where(col(LinkedCampaign.campaign_id).in_(campaign_ids))).all())


def budgets_linking(session: Session, campaign_id: str) -> list[Budget]:
    """The budgets whose campaign_ids hold `campaign_id`, locked for update."""
    # The JSON list is searched as text on both backends, then checked exactly: the text
    # match only narrows the rows read.
    rows = session.exec(select(Budget).where(cast(Budget.campaign_ids, String).contains(
        campaign_id, autoescape=True)).with_for_update()).all()
    return [budget for budget in rows if campaign_id in budget.campaign_ids]


def drop(session: Session, campaign_id: str) -> list[Budget]:
    """Stage the removal of a deleted campaign: its links, its funding in every budget and
    its row; return the budgets that linked or funded it (locked), for their audit entries."""
    budgets = {b.id: b for b in budgets_linking(session, campaign_id)}
    funders = session.exec(select(Budget).join(CampaignFunding, col(CampaignFunding.budget_id) == Budget.id)
                           .where(CampaignFunding.campaign_id == campaign_id)
                           .with_for_update()).all()
    budgets |= {b.id: b for b in funders}
    for budget in budgets.values():
        budget.campaign_ids = [i for i in budget.campaign_ids if i != campaign_id]
        budget.version += 1
        budget.updated_at = utcnow()
        session.add(budget)
    session.execute(delete(FundingLine).where(col(FundingLine.campaign_id) == campaign_id))
    session.execute(delete(CampaignFunding).where(col(CampaignFunding.campaign_id) == campaign_id))
    session.execute(delete(LinkedCampaign).where(col(LinkedCampaign.campaign_id) == campaign_id))
    return sorted(budgets.values(), key=lambda b: b.id)


def closed_campaign(session: Session, campaign_id: str) -> LinkedCampaign | None:
    """The linked campaign if the calendar has closed it (cancelled or completed)."""
    row = session.get(LinkedCampaign, campaign_id)
    return row if row is not None and row.status in CLOSED else None


def linked_public(session: Session, budget: Budget) -> list[LinkedCampaignPublic]:
    """The budget's linked campaigns, in the order of its campaign_ids."""
    rows = {row.campaign_id: row for row in session.exec(select(LinkedCampaign).where(
        col(LinkedCampaign.campaign_id).in_(budget.campaign_ids)))} if budget.campaign_ids else {}
    return [LinkedCampaignPublic(id=i, name=row.name, status=row.status,
                                 start_date=row.start_date, end_date=row.end_date,
                                 synced_at=row.synced_at) if (row := rows.get(i)) is not None
            else LinkedCampaignPublic(id=i, name=None, status=None, start_date=None,
                                      end_date=None, synced_at=None)
            for i in budget.campaign_ids]
