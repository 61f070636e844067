"""A budget's channels: return model, bounds, group and lifecycle state (the playbook's)."""
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from services.budget import optimizer
from services.budget.ledger import audit
from services.budget.ledger.loaders import get_budget, get_channel
from services.budget.ledger.tables import Budget, Channel, utcnow
from services.budget.whatif import Response, to_response
from shared.channels import ChannelKind
from shared.errors import Conflict, invalid_fields
from shared.idempotency import Idempotency
from shared.ids import new_id
from shared.internal_auth import Caller
from shared.money import from_minor, minor_units, to_minor
from shared.types import Amount, Identifier, Money, StrictModel
from shared.versioning import require_if_match

ChannelState = Literal["testing", "active", "scaling", "exited"]
# The playbook's lifecycle: a tested channel is admitted or dropped; an active one scales up
# or exits; an exited one may come back only through a new test.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "testing": ("active", "exited"),
    "active": ("scaling", "exited"),
    "scaling": ("active", "exited"),
    "exited": ("testing",),
}


class ChannelCreate(StrictModel):
    name: Identifier
    kind: ChannelKind
    response: Response = Field(description="The return model the optimizer uses, for spend "
                               "over the whole fiscal period.")
    min: Amount | None = None
    max: Amount | None = None
    min_if_used: bool = False
    group: Identifier | None = Field(None, description="Id of one of the budget's groups.")
    state: ChannelState = "active"


class ChannelUpdate(StrictModel):
    name: Identifier | None = None
    kind: ChannelKind | None = None
    response: Response | None = None
    min: Amount | None = None
    max: Amount | None = None
    min_if_used: bool | None = None
    group: Identifier | None = None
    state: ChannelState | None = None


class ChannelPublic(BaseModel):
    id: str
    budget_id: str
    name: str
    kind: str
    response: Response
    min: Money | None
    max: Money | None
    min_if_used: bool
    group: str | None
    state: str
    version: int
    created_at: datetime
    updated_at: datetime



def channel_public(budget: Budget, channel: Channel) -> ChannelPublic:
    """The channel as the API shows it, its bounds in the budget's currency."""
    money = {field: None if getattr(channel, f"{field}_minor") is None
             else from_minor(getattr(channel, f"{field}_minor"), budget.currency)
             for field in ("min", "max")}
    return ChannelPublic(**channel.model_dump(exclude={"min_minor", "max_minor"}), **money)


def _check_channel(session: Session, budget: Budget, channel: ChannelCreate,
                   channel_id: str | None) -> None:
    """Raise InvalidRequest / Conflict for a channel the budget cannot take."""
    # The optimizer's own rules for a channel's money, bounds and response speak here.
    domain = optimizer.Channel(channel.name, to_response(channel.response), channel.min,
                               channel.max, channel.min_if_used)
    errors = [(issue.field, issue.detail)
              for issue in optimizer.check_channel(domain, minor_units(budget.currency))]
    groups = [g["id"] for g in budget.groups]
    if channel.group is not None and channel.group not in groups:
        errors.append(("group", f"unknown group {channel.group!r}; the budget's groups are: "
                                f"{', '.join(groups) or 'none (add them to the budget first)'}"))
    if errors:
        raise invalid_fields(errors)
    clash = session.exec(select(Channel.id).where(Channel.budget_id == budget.id,
                                                  Channel.name == channel.name,
                                                  Channel.id != channel_id)).first()
    if clash is not None:
        raise Conflict(f"The budget already has a channel named {channel.name!r} ({clash}); "
                       "choose another name or update that channel.")


def create_channel(*, session: Session, idempotency: Idempotency, budget_id: str,
                   channel_in: ChannelCreate, caller: Caller) -> ChannelPublic:
    """Add a channel with its return model, bounds, group and lifecycle state to a budget."""
    budget = get_budget(session, budget_id, lock=True)
    _check_channel(session, budget, channel_in, None)
    channel = Channel(id=new_id("ch"), budget_id=budget.id,
                      **_channel_columns(budget, channel_in.model_dump(mode="json", by_alias=True)))
    session.add(channel)
    session.flush()
    public = channel_public(budget, channel)
    audit.record(session, budget_id=budget.id, caller=caller, action="channel.create",
                 target=channel.id, changes={"after": public})
    idempotency.record(session, public)
    session.commit()
    return public


def _channel_columns(budget: Budget, values: dict[str, Any]) -> dict[str, Any]:
    for field in ("min", "max"):
        if field in values:
            amount = values.pop(field)
            values[f"{field}_minor"] = None if amount is None \
                else to_minor(Decimal(amount), budget.currency)
    return values


def read_channel(*, session: Session, budget_id: str, channel_id: str) -> ChannelPublic:
    """Return one of a budget's channels."""
    budget = get_budget(session, budget_id)
    return channel_public(budget, get_channel(session, budget_id, channel_id))


def list_channels(*, session: Session, budget_id: str) -> list[ChannelPublic]:
    """Return a budget's channels in the order they were added."""
    budget = get_budget(session, budget_id)
    return [channel_public(budget, c) for c in session.exec(
        select(Channel).where(Channel.budget_id == budget_id).order_by(Channel.id))]


def update_channel(*, session: Session, budget_id: str, channel_id: str, update: ChannelUpdate,
                   if_match: str | None, caller: Caller) -> ChannelPublic:
    """Change a channel at the version the caller read; state moves follow the playbook."""
    budget = get_budget(session, budget_id, lock=True)
    channel = get_channel(session, budget_id, channel_id)
    require_if_match(if_match, channel.version, what="channel")
    before = channel_public(budget, channel)
    changes = update.model_dump(exclude_unset=True)
    merged = ChannelCreate.model_validate(before.model_dump(include=set(ChannelCreate.model_fields))
                                          | {k: getattr(update, k) for k in changes})
    if "state" in changes and update.state != channel.state:
        allowed = TRANSITIONS[channel.state]
        if update.state not in allowed:
            raise Conflict(f"A channel in state {channel.state!r} cannot move to "
                           f"{update.state!r}; allowed: {', '.join(allowed)}.",
                           allowed=list(allowed))
    _check_channel(session, budget, merged, channel.id)
    channel.sqlmodel_update(_channel_columns(budget, update.model_dump(
        mode="json", by_alias=True, exclude_unset=True)))
    channel.version += 1
    channel.updated_at = utcnow()
    session.add(channel)
    session.flush()
    after = channel_public(budget, channel)
    audit.record(session, budget_id=budget.id, caller=caller, action="channel.update",
                 target=channel.id, changes=audit.diff(before, after))
    session.commit()
    return after
