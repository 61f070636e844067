"""The campaign-funding what-if: the best spend of a campaign within a ceiling, on the budget's
channels of the campaign's kinds, within what the current plan has not yet given campaigns.

Each channel's response curve covers the budget's fiscal period. Cut to the campaign, phase p
gets r_p(x) = s_p · R(x / s_p), s_p the phase's share of the fiscal period by working days
(Monday to Friday; the budget has no market): the optimizer's period rule, given the phases
plus the rest of the fiscal period as periods with their working days as shares, the rest with
a spending cap of 0. With `phase_weights`, each phase may take at most its weight's part of the
ceiling. Nothing is stored.

Example: a linear channel (ROI 2.1) returns 2.1 per unit in any phase; a points curve whose
first 100,000 return 250,000 gives a campaign whose phases are 30 % of the fiscal period's
working days 2.5 per unit on its first 30,000 (0.3 · 100,000), then its next slope."""
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from services.budget import optimizer, whatif
from services.budget.ledger.budgets import PhaseWeights
from services.budget.ledger.funding import channel_capacity, committed_minor, require_current_plan
from services.budget.ledger.loaders import get_budget
from services.budget.ledger.tables import Budget, Channel
from shared.channels import CHANNEL_KINDS, ChannelKind
from shared.errors import invalid_fields
from shared.money import from_minor, minor_units, quantum, to_minor
from shared.types import Amount, Money, Ratio, StrictModel
from shared.workdays import WEEKEND
from shared.workers import WorkerPool

PhaseKind = Literal["warmup", "burst", "sustain", "wrapup"]
REST = "rest"
TIME_LIMIT = 10.0


class PhaseSpanIn(StrictModel):
    kind: PhaseKind
    start_date: date
    end_date: date


class FundingOptimizeRequest(StrictModel):
    start_date: date
    end_date: date
    phases: list[PhaseSpanIn] = Field([], max_length=50, description="Without phases, the "
                                      "campaign's window is one (and per_phase is empty).")
    channels: list[ChannelKind] = Field(min_length=1, max_length=len(CHANNEL_KINDS),
                                        description="The campaign's channel kinds.")
    ceiling: Amount = Field(description="The most the campaign may spend.")
    target_return: Amount | None = Field(None, description="Reported as reached or not.")
    phase_weights: PhaseWeights | None = Field(None, description="Each phase takes at most its "
                                               "kind's weight's part of the ceiling (split "
                                               "over that kind's phases by working days).")


class OptimizedPhasePublic(BaseModel):
    kind: str
    amount: Money


class OptimizedLinePublic(BaseModel):
    channel_id: str
    channel_kind: str
    amount: Money
    per_phase: list[OptimizedPhasePublic]
    expected_return: Money
    marginal_roi: Ratio | None


class ChannelMoneyPublic(BaseModel):
    channel_id: str
    amount: Money


class FundingOptimizationPublic(BaseModel):
    lines: list[OptimizedLinePublic]
    total: Money
    expected_return: Money
    target_reached: bool | None = Field(description="null without a target_return.")
    status: Literal["optimal", "feasible"]
    uncommitted: list[ChannelMoneyPublic] = Field(description="What each channel had left in "
                                                  "the current plan before this campaign.")


def working_days(start: date, end: date) -> int:
    """Monday-to-Friday days from start to end, inclusive."""
    return sum((start + timedelta(days=i)).weekday() not in WEEKEND
               for i in range((end - start).days + 1))


def _phases(request: FundingOptimizeRequest, budget: Budget) -> list[tuple[str, int]]:
    """(kind, working days inside the fiscal period) per phase; 422 naming a bad one."""
    spans = request.phases or [PhaseSpanIn(kind="burst", start_date=request.start_date,
                                           end_date=request.end_date)]
    errors: list[tuple[str, str]] = []
    phases: list[tuple[str, int]] = []
    for i, span in enumerate(spans):
        where = f"phases[{i}]" if request.phases else "end_date"
        if span.end_date < span.start_date:
            errors.append((where, f"ends ({span.end_date}) before it starts ({span.start_date})"))
            continue
        days = working_days(max(span.start_date, budget.start_date),
                            min(span.end_date, budget.end_date))
        if days == 0:
            errors.append((where, f"has no working day inside the budget's fiscal period "
                                  f"{budget.start_date}..{budget.end_date}"))
        phases.append((span.kind, days))
    if errors:
        raise invalid_fields(errors)
    return phases


def _caps(request: FundingOptimizeRequest, phases: list[tuple[str, int]],
          decimals: int) -> list[Decimal | None]:
    """Each phase's most: its kind's weight's part of the ceiling, split over the kind's phases
    by working days, rounded down to the minor unit (so the caps never exceed the ceiling)."""
    if request.phase_weights is None:
        return [None] * len(phases)
    given = dict(request.phase_weights)
    weights = {kind: given[kind] for kind, _ in phases}
    if not any(weights.values()):
        weights = dict.fromkeys(weights, Decimal(1))
    total = sum(weights.values(), Decimal(0))
    kind_days = {k: sum(d for kind, d in phases if kind == k) for k in weights}
    return [(request.ceiling * weights[kind] * days / (total * kind_days[kind]))
            .quantize(quantum(decimals), rounding=ROUND_FLOOR) for kind, days in phases]


def optimize_funding(*, session: Session, budget_id: str, request: FundingOptimizeRequest,
                     workers: WorkerPool, grace_seconds: float,
                     progress: whatif.OnProgress | None = None,
                     cancelled: whatif.IsCancelled | None = None) -> FundingOptimizationPublic:
    """Find the campaign's best funding within its ceiling and the plan's uncommitted money."""
    budget = get_budget(session, budget_id)
    require_current_plan(budget)
    if request.end_date < request.start_date:
        raise invalid_fields([("end_date", f"the campaign ends ({request.end_date}) before it "
                                           f"starts ({request.start_date})")])
    channels = session.exec(select(Channel).where(
        Channel.budget_id == budget.id, Channel.state != "exited",
        Channel.kind.in_(request.channels)).order_by(Channel.id)).all()  # type: ignore[attr-defined]
    if not channels:
        kinds = sorted(set(session.exec(select(Channel.kind).where(
            Channel.budget_id == budget.id, Channel.state != "exited"))))
        raise invalid_fields([("channels", f"the budget has no channel of kinds "
                                           f"{', '.join(request.channels)}; its kinds are: "
                                           f"{', '.join(kinds) or 'none'}")])
    phases = _phases(request, budget)
    decimals = minor_units(budget.currency)
    try:
        to_minor(request.ceiling, budget.currency)
    except ValueError as error:
        raise invalid_fields([("ceiling", str(error))]) from None
    capacity = channel_capacity(session, budget)
    taken = committed_minor(session, budget.id)
    left = {c.id: max(capacity.get(c.id, 0) - taken.get(c.id, 0), 0) for c in channels}
    rest = working_days(budget.start_date, budget.end_date) - sum(d for _, d in phases)
    ids = {f"phase-{i}": kind for i, (kind, _) in enumerate(phases)}
    periods = [optimizer.Period(i, share=Decimal(days), cap=cap)
               for i, (_, days), cap in zip(ids, phases, _caps(request, phases, decimals))]
    if rest > 0:
        periods.append(optimizer.Period(REST, share=Decimal(rest), cap=Decimal(0)))
    money = lambda units: from_minor(units, budget.currency)  # noqa: E731
    problem = optimizer.Problem(
        total=request.ceiling, decimals=decimals, reserve=optimizer.Reserve(amount=Decimal(0)),
        channels=tuple(optimizer.Channel(c.id, whatif.parse_response(c.response), None,
                                         money(left[c.id])) for c in channels),
        periods=tuple(periods), time_limit=TIME_LIMIT)
    whatif.check(problem)
    # No transaction stays open while the solver works.
    session.rollback()
    allocation = whatif.solve(problem=problem, workers=workers, grace_seconds=grace_seconds,
                              progress=progress, cancelled=cancelled)
    kind_of = {c.id: c.kind for c in channels}
    lines = [OptimizedLinePublic(
        channel_id=a.channel, channel_kind=kind_of[a.channel], amount=a.amount,
        per_phase=[OptimizedPhasePublic(kind=ids[p.period], amount=p.amount)
                   for p in a.periods if p.period != REST and request.phases],
        expected_return=a.expected_return, marginal_roi=a.marginal_roi)
        for a in allocation.allocations]
    total = money(sum(to_minor(line.amount, budget.currency) for line in lines))
    earned = money(sum(to_minor(line.expected_return, budget.currency) for line in lines))
    return FundingOptimizationPublic(
        lines=lines, total=total, expected_return=earned,
        target_reached=None if request.target_return is None else earned >= request.target_return,
        status=allocation.status,
        uncommitted=[ChannelMoneyPublic(channel_id=c.id, amount=money(left[c.id]))
                     for c in channels])
