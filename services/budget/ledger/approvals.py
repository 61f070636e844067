"""Four eyes, the second key: confirm or cancel a pending draw or plan approval.

The confirmer must be another principal than the one who asked (and, for a plan, than the one
who made it): the gateway's role policy decides who may confirm at all (admin, planner). A
confirmed draw is entered in the reserve's ledger with its author and its confirmer; a
confirmed approval makes the plan current, if its money is still the budget's."""
from typing import Literal

from sqlmodel import Session, select

from services.budget.ledger import audit, plans, reserve
from services.budget.ledger.loaders import get_budget, get_plan
from services.budget.ledger.pending import PendingActionPublic, PendingStatus, pending_public
from services.budget.ledger.tables import Budget, PendingAction, page_order, utcnow
from shared.errors import Conflict, Forbidden, NotFound
from shared.internal_auth import Caller
from shared.pagination import Page, paginate


def _get_pending(session: Session, budget: Budget, pending_id: str) -> PendingAction:
    action = session.get(PendingAction, pending_id)
    if action is None or action.budget_id != budget.id:
        raise NotFound(f"Budget {budget.id!r} has no pending action {pending_id!r}; list them at "
                       f"/api/v1/budget/budgets/{budget.id}/pending.")
    return action


def _decidable(action: PendingAction) -> None:
    if action.status != "pending":
        raise Conflict(f"Pending action {action.id!r} was already {action.status} by "
                       f"{action.decided_by}; nothing is left to decide.", pending_status=action.status)


def list_pending(*, session: Session, budget_id: str, status: PendingStatus | None, limit: int,
                 cursor: str | None) -> Page[PendingActionPublic]:
    """List a budget's four-eyes actions, oldest first."""
    budget = get_budget(session, budget_id)
    statement = select(PendingAction).where(PendingAction.budget_id == budget.id)
    if status is not None:
        statement = statement.where(PendingAction.status == status)
    rows, next_cursor = paginate(session, statement, order_by=page_order(PendingAction.id),
                                 limit=limit, cursor=cursor)
    return Page[PendingActionPublic](items=[pending_public(budget, a) for a in rows],
                                     next_cursor=next_cursor)


def confirm(*, session: Session, budget_id: str, pending_id: str,
            caller: Caller) -> PendingActionPublic:
    """Make a pending draw or plan approval effective, as a second key holder."""
    budget = get_budget(session, budget_id, lock=True)
    action = _get_pending(session, budget, pending_id)
    _decidable(action)
    authors = {action.requested_by}
    plan = None
    if action.kind == "approval":
        assert action.plan_number is not None
        plan = get_plan(session, budget.id, action.plan_number)
        authors.add(plan.created_by)
    if caller.principal in authors:
        raise Forbidden(f"{caller.principal} asked for this or made the plan; four eyes need "
                        "another key holder (admin or planner) to confirm it.")
    if plan is not None:
        if budget.current_plan != plan.number:
            plans.check_approvable(session, budget, plan)
            plans.make_current(session, budget, plan, caller)
    else:
        action.entry_id = reserve.enter_pending_draw(session, budget, action, caller).id
        action.plan_number = budget.current_plan
    return _decide(session, budget, action, "confirmed", caller)


def cancel(*, session: Session, budget_id: str, pending_id: str,
           caller: Caller) -> PendingActionPublic:
    """Withdraw or refuse a pending action; a held draw's money is free again."""
    budget = get_budget(session, budget_id, lock=True)
    action = _get_pending(session, budget, pending_id)
    _decidable(action)
    if action.kind == "draw":
        # What the reserve has left changed: so did the budget's representation.
        budget.version += 1
        budget.updated_at = utcnow()
        session.add(budget)
    return _decide(session, budget, action, "cancelled", caller)


def _decide(session: Session, budget: Budget, action: PendingAction,
            status: Literal["confirmed", "cancelled"], caller: Caller) -> PendingActionPublic:
    action.status, action.decided_by, action.decided_at = status, caller.principal, utcnow()
    action.decided_by_name = caller.name
    session.add(action)
    session.flush()
    public = pending_public(budget, action)
    audit.record(session, budget_id=budget.id, caller=caller, action=f"pending.{status}",
                 target=action.id, changes={"after": public})
    session.commit()
    return public
