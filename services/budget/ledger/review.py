"""Channel review: the department playbook's rules applied to actuals.

- admit a channel in `testing` when its ROI is ≥ admit_ratio (1.15) × the active channels'
  average ROI;
- scale an `active` channel up at ≥ scale_ratio (1.30) × that average;
- exit any channel whose ROI was below exit_ratio (0.5) × the target ROI in each of its last
  exit_periods (3) consecutive reported periods.
The average is spend-weighted (total return / total spend of `active` and `scaling` channels),
so a small channel's lucky month does not move it. Without a target ROI in the budget's
rules, the target is that average.

Applying the review moves the channels the caller confirms in one transaction: `admit`
(testing → active), `scale_up` (active → scaling), `exit` (→ exited); each must still be the
channel's recommendation when applied, so a review read before new actuals cannot act on
figures that changed since.
"""
from collections import defaultdict
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from services.budget.ledger import audit
from services.budget.ledger.budgets import PlaybookRules
from services.budget.ledger.channels import channel_public
from services.budget.ledger.kept import KeptAnswers
from services.budget.ledger.loaders import budget_periods, get_budget
from services.budget.ledger.tables import Budget, Channel, utcnow
from services.budget.ledger.variance import cells
from shared.errors import Conflict, invalid_fields
from shared.internal_auth import Caller
from shared.kept import Kept
from shared.money import from_minor
from shared.types import Identifier, Money, Ratio, StrictModel

Recommendation = Literal["admit", "keep_testing", "scale_up", "keep", "exit", "no_data", "none"]
PLACES = Decimal("0.0001")


class ChannelReviewPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel_id: str
    channel: str
    state: str
    recommendation: Recommendation
    reason: str
    spend: Money
    return_: Money = Field(alias="return")
    roi: Ratio | None
    ratio_to_average: Ratio | None = Field(description="roi / active_average_roi.")
    periods_below_exit: list[str] = Field(description="The trailing run of reported periods "
                                          "with ROI below exit_ratio × target_roi.")


class ReviewPublic(BaseModel):
    rules: PlaybookRules
    active_average_roi: Ratio | None
    target_roi: Ratio | None
    target_source: Literal["rules", "active_average"]
    channels: list[ChannelReviewPublic]


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    return None if denominator == 0 else (numerator / denominator).quantize(PLACES)


def read_review_json(*, session: Session, budget_id: str, kept: KeptAnswers) -> Kept:
    """Answer the review's JSON: the kept one while the budget is as it was made from."""
    budget = get_budget(session, budget_id)
    return kept.answer("review", budget,
                       lambda: review_of(session, budget).model_dump_json(by_alias=True).encode())


def review_of(session: Session, budget: Budget) -> ReviewPublic:
    """Recommend, per channel, what the playbook says to do next, with the figures behind it."""
    rules = PlaybookRules.model_validate(budget.rules)
    channels = session.exec(select(Channel).where(Channel.budget_id == budget.id)
                            .order_by(Channel.id)).all()
    position = {p.id: i for i, p in enumerate(budget_periods(budget))}
    history: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for (channel_id, period), cell in sorted(cells(session, budget).items(),
                                             key=lambda item: position[item[0][1]]):
        if cell.reported:
            history[channel_id].append((period, cell.spend, cell.earned))
    totals = {c.id: (sum(s for _, s, _ in history[c.id]), sum(r for _, _, r in history[c.id]))
              for c in channels}
    active = [totals[c.id] for c in channels if c.state in ("active", "scaling")]
    average = _ratio(Decimal(sum(r for _, r in active)), Decimal(sum(s for s, _ in active)))
    target = rules.target_roi if rules.target_roi is not None else average
    reviews = []
    for channel in channels:
        spend, earned = totals[channel.id]
        roi = _ratio(Decimal(earned), Decimal(spend))
        below = _trailing_below(history[channel.id], target, rules)
        recommendation, reason = _recommend(channel.state, roi, average, target, below, rules)
        reviews.append(ChannelReviewPublic(
            channel_id=channel.id, channel=channel.name, state=channel.state,
            recommendation=recommendation, reason=reason,
            spend=from_minor(spend, budget.currency), return_=from_minor(earned, budget.currency),
            roi=roi, ratio_to_average=None if roi is None or not average else _ratio(roi, average),
            periods_below_exit=below))
    return ReviewPublic(rules=rules, active_average_roi=average, target_roi=target,
                        target_source="rules" if rules.target_roi is not None else "active_average",
                        channels=reviews)


def _trailing_below(history: list[tuple[str, int, int]], target: Decimal | None,
                    rules: PlaybookRules) -> list[str]:
    """The latest reported periods, newest last, whose ROI was each below the exit line."""
    if target is None:
        return []
    line = rules.exit_ratio * target
    run: list[str] = []
    for period, spend, earned in reversed(history):
        if spend == 0 or Decimal(earned) / Decimal(spend) >= line:
            break
        run.insert(0, period)
    return run


def _recommend(state: str, roi: Decimal | None, average: Decimal | None, target: Decimal | None,
               below: list[str], rules: PlaybookRules) -> tuple[Recommendation, str]:
    if state == "exited":
        return "none", "the channel has exited"
    if roi is None:
        return "no_data", "no spend reported yet"
    if len(below) >= rules.exit_periods:
        return "exit", (f"ROI below {rules.exit_ratio} × target {target} in {len(below)} "
                        f"consecutive periods ({', '.join(below)})")
    if average is None or average == 0:
        return ("keep_testing" if state == "testing" else "keep"), \
            "no active channel has spend to compare with"
    if state == "testing":
        if roi >= rules.admit_ratio * average:
            return "admit", f"ROI {roi} ≥ {rules.admit_ratio} × active average {average}"
        return "keep_testing", f"ROI {roi} < {rules.admit_ratio} × active average {average}"
    if state == "active" and roi >= rules.scale_ratio * average:
        return "scale_up", f"ROI {roi} ≥ {rules.scale_ratio} × active average {average}"
    return "keep", f"ROI {roi} against active average {average}"


ReviewAction = Literal["admit", "scale_up", "exit"]
# The state each action moves a channel to.
TARGET_STATE: dict[ReviewAction, str] = {"admit": "active", "scale_up": "scaling",
                                         "exit": "exited"}


class ConfirmedAction(StrictModel):
    channel_id: Identifier
    action: ReviewAction


class ReviewApply(StrictModel):
    actions: list[ConfirmedAction] = Field(min_length=1, max_length=2000, description="The "
                                           "recommendations you confirm, each as the review "
                                           "gives it now.")


class AppliedActionPublic(BaseModel):
    channel_id: str
    channel: str
    action: ReviewAction
    from_state: str
    to_state: str
    version: int = Field(description="The channel's new version (its ETag).")


class ReviewAppliedPublic(BaseModel):
    applied: list[AppliedActionPublic]


def apply_review(*, session: Session, budget_id: str, apply_in: ReviewApply,
                 caller: Caller) -> ReviewAppliedPublic:
    """Apply the confirmed recommendations of the channel review, all or none."""
    budget = get_budget(session, budget_id, lock=True)
    current = {c.channel_id: c for c in review_of(session, budget).channels}
    errors, seen = [], set()
    for i, confirmed in enumerate(apply_in.actions):
        if confirmed.channel_id not in current:
            errors.append((f"actions[{i}].channel_id",
                           f"budget has no channel {confirmed.channel_id!r}"))
        elif confirmed.channel_id in seen:
            errors.append((f"actions[{i}].channel_id", f"channel {confirmed.channel_id!r} is "
                                                       "listed twice; confirm one action each"))
        seen.add(confirmed.channel_id)
    if errors:
        raise invalid_fields(errors)
    stale = [(confirmed, current[confirmed.channel_id]) for confirmed in apply_in.actions
             if current[confirmed.channel_id].recommendation != confirmed.action]
    if stale:
        raise Conflict("The review no longer recommends " + "; ".join(
            f"{c.action} for channel {now.channel!r} ({c.channel_id}): it now says "
            f"{now.recommendation} ({now.reason})" for c, now in stale)
            + ". Read the review again and confirm what it says now.",
            channels=[{"channel_id": c.channel_id, "confirmed": c.action,
                       "recommendation": now.recommendation} for c, now in stale])
    applied = []
    for confirmed in apply_in.actions:
        channel = session.get(Channel, confirmed.channel_id)
        assert channel is not None
        before = channel_public(budget, channel)
        channel.state = TARGET_STATE[confirmed.action]
        channel.version += 1
        channel.updated_at = utcnow()
        session.add(channel)
        session.flush()
        after = channel_public(budget, channel)
        audit.record(session, budget_id=budget.id, caller=caller, action="channel.update",
                     target=channel.id, changes=audit.diff(before, after)
                     | {"review": confirmed.action})
        applied.append(AppliedActionPublic(channel_id=channel.id, channel=channel.name,
                                           action=confirmed.action, from_state=before.state,
                                           to_state=channel.state, version=channel.version))
    session.commit()
    return ReviewAppliedPublic(applied=applied)
