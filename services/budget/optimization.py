"""The optimizer's API shapes, and their translation to and from `optimize`'s dataclasses."""
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from services.budget import optimize
from shared.errors import invalid_fields
from shared.money import minor_units
from shared.types import Currency, Money

# Documented input limits: a request beyond them is a 422, never a hang.
MAX_CHANNELS = 2000
MAX_PERIODS = 104
MAX_CELLS = 110_000          # channels × periods
MAX_POINTS = 200
MAX_GROUPS = 200
MAX_DEALS = 300

Amount = Annotated[Decimal, Field(ge=0, le=Decimal("1e15"), allow_inf_nan=False)]
Rate = Annotated[Decimal, Field(ge=0, le=Decimal("1e6"), allow_inf_nan=False)]
Share = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
Identifier = Annotated[str, Field(min_length=1, max_length=100)]
# Ratios (ROI, shadow prices) go out as decimal strings, like money.
Ratio = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinearResponse(_Strict):
    type: Literal["linear"]
    roi: Rate = Field(description="Return per unit spent, e.g. 2.1.")


class PointsResponse(_Strict):
    type: Literal["points"]
    points: list[tuple[Amount, Amount]] = Field(
        min_length=2, max_length=MAX_POINTS,
        description="(spend, return) pairs from (0, 0), spend strictly increasing; linear "
                    "between points, flat beyond the last.")

    @model_validator(mode="after")
    def _shape(self):
        if self.points[0] != (0, 0):
            raise ValueError("the first point must be (0, 0): no spend, no return")
        if any(b[0] <= a[0] for a, b in zip(self.points, self.points[1:])):
            raise ValueError("spend must strictly increase from one point to the next")
        return self


class HillResponse(_Strict):
    type: Literal["hill"]
    beta: Amount = Field(gt=0, description="Saturation: the most the channel can return.")
    k: Amount = Field(gt=0, description="Spend at which half of beta is reached.")
    alpha: Decimal = Field(ge=Decimal("0.1"), le=10, allow_inf_nan=False,
                           description="Shape: concave at ≤ 1, S-shaped above 1.")


class DealResponse(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["deal"]
    cost: Amount = Field(gt=0, description="Bought whole for exactly this, or not at all.")
    return_: Amount = Field(alias="return", description="What the deal returns if bought.")


Response = Annotated[LinearResponse | PointsResponse | HillResponse | DealResponse,
                     Field(discriminator="type")]


class OptimizationChannel(_Strict):
    id: Identifier
    response: Response
    min: Amount | None = None
    max: Amount | None = None
    min_if_used: bool = Field(False, description="`min` means: at least min if used at all.")


class OptimizationGroup(_Strict):
    id: Identifier
    channels: list[Identifier] = Field(min_length=1)
    min_share: Share | None = Field(None, description="Of total spend: 0.2 = at least 20 %.")
    max_share: Share | None = None


class OptimizationPeriod(_Strict):
    id: Identifier
    weight: Rate = Field(Decimal(1), description="Return multiplier in this period (seasonality).")
    cap: Amount | None = Field(None, description="Most that may be spent in this period.")


class ReservePolicy(_Strict):
    percent: Decimal | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    amount: Amount | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of percent or amount")
        return self


class IncrementalMode(_Strict):
    previous: dict[Identifier, Amount] = Field(description="Amount per channel in the last plan.")
    tolerance_percent: Decimal = Field(ge=0, le=100, allow_inf_nan=False,
                                       description="Each channel stays within ± this percent.")


class OptimizationRequest(_Strict):
    currency: Currency
    total: Amount
    reserve: ReservePolicy | None = None
    objective: Literal["max_return", "min_spend", "max_profit", "target_roi"] = "max_return"
    target_return: Amount | None = Field(None, description="Required by `min_spend`.")
    target_roi: Rate | None = Field(None, description="Required by `target_roi`: return/spend.")
    channels: list[OptimizationChannel] = Field(min_length=1, max_length=MAX_CHANNELS)
    groups: list[OptimizationGroup] = Field([], max_length=MAX_GROUPS)
    periods: list[OptimizationPeriod] = Field([], max_length=MAX_PERIODS)
    incremental: IncrementalMode | None = None
    solver: Literal["highs", "cbc"] = "highs"
    time_limit_seconds: float = Field(30, gt=0, le=60,
                                      description="Past it, the best plan found is returned as "
                                                  "`feasible` with its gap.")


class PeriodAllocationPublic(BaseModel):
    period: str
    amount: Money
    expected_return: Money


class ChannelAllocationPublic(BaseModel):
    channel: str
    amount: Money
    expected_return: Money
    marginal_roi: Ratio | None = Field(description="Return of the next unit here; null for a deal.")
    binding: list[str]
    periods: list[PeriodAllocationPublic]


class SolverPublic(BaseModel):
    name: str
    seconds: float


class OptimizationPublic(BaseModel):
    status: Literal["optimal", "feasible"]
    currency: str
    total: Money
    reserve: Money
    spend: Money
    unspent: Money
    expected_return: Money
    marginal_value_of_budget: Ratio | None = Field(
        description="Extra objective per extra unit of budget (the budget's shadow price).")
    allocations: list[ChannelAllocationPublic]
    binding_constraints: list[str]
    approximation_error: float = Field(
        description="Bound on how much more the true optimum could return, relative to this "
                    "plan's expected return.")
    gap: float | None = Field(description="Solver's optimality gap; 0 when proven optimal.")
    solver: SolverPublic


def check_request(request: OptimizationRequest) -> None:
    """Raise InvalidRequest listing every cross-field problem of `request` (all at once)."""
    errors: list[tuple[str, str]] = []
    decimals = minor_units(request.currency)
    quantum = Decimal(1).scaleb(-decimals)

    def money(field: str, amount: Decimal | None) -> None:
        if amount is not None and amount != amount.quantize(quantum):
            errors.append((field, f"{amount} has more decimals than {request.currency} allows "
                                  f"({decimals}); round it to {amount.quantize(quantum)}"))

    money("total", request.total)
    if request.reserve:
        money("reserve.amount", request.reserve.amount)
        if request.reserve.amount is not None and request.reserve.amount > request.total:
            errors.append(("reserve.amount", "the reserve cannot exceed the total"))
    ids = [c.id for c in request.channels]
    seen: set[str] = set()
    deals = 0
    for i, channel in enumerate(request.channels):
        where = f"channels[{i}]"
        if channel.id in seen:
            errors.append((f"{where}.id", f"channel id {channel.id!r} is used twice"))
        seen.add(channel.id)
        money(f"{where}.min", channel.min)
        money(f"{where}.max", channel.max)
        if channel.min is not None and channel.max is not None and channel.min > channel.max:
            errors.append((f"{where}.min", f"min {channel.min} is above max {channel.max}"))
        if isinstance(channel.response, DealResponse):
            deals += 1
            money(f"{where}.response.cost", channel.response.cost)
            if channel.min is not None or channel.max is not None:
                errors.append((where, "a deal is bought whole or not at all; drop min and max"))
        if channel.min_if_used and channel.min is None:
            errors.append((f"{where}.min_if_used", "min_if_used needs a min"))
    if deals > MAX_DEALS:
        errors.append(("channels", f"{deals} deals; at most {MAX_DEALS} are accepted"))
    for i, group in enumerate(request.groups):
        for name in group.channels:
            if name not in seen:
                errors.append((f"groups[{i}].channels", f"unknown channel {name!r}; known: {', '.join(ids[:20])}"))
        if group.min_share is not None and group.max_share is not None and group.min_share > group.max_share:
            errors.append((f"groups[{i}].min_share", "min_share is above max_share"))
    if len({g.id for g in request.groups}) != len(request.groups):
        errors.append(("groups", "group ids must be unique"))
    if len({p.id for p in request.periods}) != len(request.periods):
        errors.append(("periods", "period ids must be unique"))
    for i, period in enumerate(request.periods):
        money(f"periods[{i}].cap", period.cap)
    if len(request.channels) * max(len(request.periods), 1) > MAX_CELLS:
        errors.append(("periods", f"channels × periods is above {MAX_CELLS}; use fewer periods "
                                  "or split the problem"))
    if request.incremental:
        for name, amount in request.incremental.previous.items():
            if name not in seen:
                errors.append((f"incremental.previous.{name}", f"unknown channel {name!r}"))
            money(f"incremental.previous.{name}", amount)
    if request.objective == "min_spend" and request.target_return is None:
        errors.append(("target_return", "the min_spend objective needs a target_return"))
    if request.objective == "target_roi" and request.target_roi is None:
        errors.append(("target_roi", "the target_roi objective needs a target_roi"))
    if errors:
        raise invalid_fields(errors)


def to_problem(request: OptimizationRequest) -> optimize.Problem:
    """Translate a checked request into the optimizer's dataclasses."""
    reserve = request.reserve or ReservePolicy(percent=Decimal(0))
    incremental = None
    if request.incremental:
        incremental = optimize.Incremental(dict(request.incremental.previous),
                                           request.incremental.tolerance_percent / 100)
    return optimize.Problem(
        total=request.total, decimals=minor_units(request.currency),
        reserve=optimize.Reserve(percent=reserve.percent, amount=reserve.amount),
        channels=tuple(optimize.Channel(c.id, _response(c.response), c.min, c.max, c.min_if_used)
                       for c in request.channels),
        groups=tuple(optimize.Group(g.id, tuple(g.channels), g.min_share, g.max_share)
                     for g in request.groups),
        periods=tuple(optimize.Period(p.id, p.weight, p.cap) for p in request.periods),
        objective=request.objective, target_return=request.target_return,
        target_roi=request.target_roi, incremental=incremental, solver=request.solver,
        time_limit=request.time_limit_seconds)


def _response(response: Response) -> optimize.Response:
    match response:
        case LinearResponse():
            return optimize.Linear(response.roi)
        case PointsResponse():
            return optimize.Points(tuple(response.points))
        case HillResponse():
            return optimize.Hill(response.beta, response.k, response.alpha)
        case DealResponse():
            return optimize.Deal(response.cost, response.return_)


def to_public(allocation: optimize.Allocation, currency: str, decimals: int) -> OptimizationPublic:
    quantum = Decimal(1).scaleb(-decimals)
    return OptimizationPublic(
        status=allocation.status, currency=currency, total=allocation.total.quantize(quantum),
        reserve=allocation.reserve, spend=allocation.spend, unspent=allocation.unspent,
        expected_return=allocation.expected_return,
        marginal_value_of_budget=allocation.marginal_value_of_budget,
        allocations=[ChannelAllocationPublic(
            channel=a.channel, amount=a.amount, expected_return=a.expected_return,
            marginal_roi=a.marginal_roi, binding=list(a.binding),
            periods=[PeriodAllocationPublic(period=p.period, amount=p.amount,
                                            expected_return=p.expected_return) for p in a.periods])
            for a in allocation.allocations],
        binding_constraints=list(allocation.binding_constraints),
        approximation_error=allocation.approximation_error, gap=allocation.gap,
        solver=SolverPublic(name=allocation.solver, seconds=allocation.seconds))
