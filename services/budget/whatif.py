"""The what-if `POST /optimize`: its API shapes, their conversion to and from the optimizer's
dataclasses (the only place that knows both), and the use case that solves without storing.

Stored plans use the same conversion and solve: they build a `Problem` from the ledger and
record what was asked in these shapes (`request_of`), so a plan shows exactly what a what-if
with the same figures would have been sent."""
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)
from typing_extensions import TypedDict

from services.budget import optimizer
from shared.errors import UnprocessableContent, invalid_fields
from shared.money import minor_units, quantum
from shared.types import (
    MAX_SOLVE_SECONDS,
    Amount,
    Currency,
    Identifier,
    Money,
    Number,
    Percent,
    Rate,
    Ratio,
    Share,
    StrictModel,
    TimeLimit,
)
from shared.workers import WorkerPool, WorkerTimeout

# Documented input limits: a request beyond them is a 422, never a hang.
MAX_CHANNELS = 2000
MAX_PERIODS = 104
MAX_CELLS = 110_000          # channels × periods
MAX_POINTS = 200
MAX_GROUPS = 200
MAX_DEALS = 300
DEFAULT_SECONDS = 30


class LinearResponse(StrictModel):
    type: Literal["linear"]
    roi: Rate = Field(description="Return per unit spent, e.g. 2.1.")


class PointsResponse(StrictModel):
    type: Literal["points"]
    points: list[tuple[Amount, Amount]] = Field(
        min_length=2, max_length=MAX_POINTS,
        description="(spend, return) pairs from (0, 0), spend strictly increasing; linear "
                    "between points, flat beyond the last.")

    @model_validator(mode="after")
    def _shape(self) -> "PointsResponse":
        if self.points[0] != (0, 0):
            raise ValueError("the first point must be (0, 0): no spend, no return")
        if any(b[0] <= a[0] for a, b in zip(self.points, self.points[1:])):
            raise ValueError("spend must strictly increase from one point to the next")
        return self


class HillResponse(StrictModel):
    type: Literal["hill"]
    beta: Amount = Field(gt=0, description="Saturation: the most the channel can return.")
    k: Amount = Field(gt=0, description="Spend at which half of beta is reached.")
    alpha: Annotated[Number, Field(ge=Decimal("0.1"), le=10)] = Field(
        description="Shape, from 0.1 to 10: concave at ≤ 1, S-shaped above 1.")


class DealResponse(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["deal"]
    cost: Amount = Field(gt=0, description="Bought whole for exactly this, or not at all.")
    return_: Amount = Field(alias="return", description="What the deal returns if bought.")


Response = Annotated[LinearResponse | PointsResponse | HillResponse | DealResponse,
                     Field(discriminator="type")]
# mypy reads the Annotated union as a value here, or not, depending on the order it checks
# modules in; pydantic takes it as the type it is.
_RESPONSE: TypeAdapter[Response] = TypeAdapter(Response)  # type: ignore[arg-type, unused-ignore]


class OptimizationChannel(StrictModel):
    id: Identifier
    response: Response
    min: Amount | None = None
    max: Amount | None = None
    min_if_used: bool = Field(False, description="`min` means: at least min if used at all.")


class OptimizationGroup(StrictModel):
    id: Identifier
    channels: list[Identifier] = Field(min_length=1)
    min_share: Share | None = Field(None, description="Of total spend: 0.2 = at least 20 %.")
    max_share: Share | None = None


class OptimizationPeriod(StrictModel):
    id: Identifier
    weight: Rate = Field(Decimal(1), description="Return multiplier in this period (seasonality).")
    cap: Amount | None = Field(None, description="Most that may be spent in this period.")


class ReservePolicy(StrictModel):
    percent: Percent | None = None
    amount: Amount | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "ReservePolicy":
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of percent or amount")
        return self


class IncrementalMode(StrictModel):
    previous: dict[Identifier, Amount] = Field(description="Amount per channel in the last plan.")
    tolerance_percent: Percent = Field(
                                       description="Each channel stays within ± this percent.")


class OptimizationRequest(StrictModel):
    currency: Currency
    total: Amount
    reserve: ReservePolicy | None = None
    objective: optimizer.Objective = "max_return"
    target_return: Amount | None = Field(None, description="Required by `min_spend`.")
    target_roi: Rate | None = Field(None, description="Required by `target_roi`: return/spend.")
    channels: list[OptimizationChannel] = Field(min_length=1, max_length=MAX_CHANNELS)
    groups: list[OptimizationGroup] = Field([], max_length=MAX_GROUPS)
    periods: list[OptimizationPeriod] = Field([], max_length=MAX_PERIODS)
    incremental: IncrementalMode | None = None
    solver: optimizer.SolverName = "highs"
    time_limit_seconds: TimeLimit = Field(
        DEFAULT_SECONDS, description="Past it, the best plan found is returned as `feasible` "
                                     "with its gap.")


class PeriodAllocationPublic(TypedDict):
    # A dict, not a model: a plan has up to 110,000 of these, and a dict costs a fraction of a
    # model to make. Its JSON and its schema are the same.
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
    status: Literal["optimal", "feasible"] = Field(description=(
        "`optimal`: proven within 0.1 % of the best plan the request allows on its true "
        "curves (`approximation_error`, which holds the `gap`, ≤ 0.001); `feasible`: the best "
        "plan found within the time limit or before a cancel, `gap` saying how far it may be."))
    currency: str
    total: Money
    reserve: Money
    spend: Money
    unspent: Money
    expected_return: Money
    marginal_value_of_budget: Ratio | None = Field(description=(
        "Extra objective per extra unit of money to spend (after the reserve: the budget's "
        "shadow price); with deals or S-curves, with the plan's choices kept (the deals "
        "bought, each curve on the stretch it spends on). Null only when the time limit left "
        "no time to price it, or after a cancel."))
    allocations: list[ChannelAllocationPublic]
    binding_constraints: list[str]
    approximation_error: float | None = Field(description=(
        "Proven bound on how much more the true optimum could return, relative to this plan's "
        "expected return (the `gap` included; where the solver was stopped before any bound, a "
        "Lagrangian relaxation's). Null only when the plan returns nothing while a plan could "
        "return more: no relative bound is finite."))
    gap: float | None = Field(description=(
        "Relative distance from this plan's objective to the solver's proven bound for the "
        "solved (piecewise) model; small but rarely 0 under `optimal`; null when no bound "
        "is known."))
    solver: SolverPublic


class InfeasiblePlan(UnprocessableContent):
    slug, title = "infeasible-plan", "No plan meets every constraint"


class SolveTimeLimit(UnprocessableContent):
    slug, title = "solve-time-limit", "No plan found within the time limit"


# --- conversion ----------------------------------------------------------------------------

def to_response(shape: Response) -> optimizer.Response:
    """The optimizer's curve for an API response shape."""
    match shape:
        case LinearResponse():
            return optimizer.Linear(shape.roi)
        case PointsResponse():
            return optimizer.Points(tuple(shape.points))
        case HillResponse():
            return optimizer.Hill(shape.beta, shape.k, shape.alpha)
        case DealResponse():
            return optimizer.Deal(shape.cost, shape.return_)


def parse_response(data: object) -> optimizer.Response:
    """The optimizer's curve for a response stored as JSON (as the API wrote it)."""
    return to_response(_RESPONSE.validate_python(data))


def _response_shape(response: optimizer.Response) -> Response:
    match response:
        case optimizer.Linear():
            return LinearResponse(type="linear", roi=response.roi)
        case optimizer.Points():
            return PointsResponse(type="points", points=list(response.points))
        case optimizer.Hill():
            return HillResponse(type="hill", beta=response.beta, k=response.k,
                                alpha=response.alpha)
        case optimizer.Deal():
            return DealResponse(type="deal", cost=response.cost, return_=response.value)


def to_problem(request: OptimizationRequest) -> optimizer.Problem:
    """Translate a request into the optimizer's dataclasses (`check` says if it can be solved)."""
    reserve = request.reserve or ReservePolicy(percent=Decimal(0))
    incremental = None
    if request.incremental:
        incremental = optimizer.Incremental(dict(request.incremental.previous),
                                            request.incremental.tolerance_percent / 100)
    return optimizer.Problem(
        total=request.total, decimals=minor_units(request.currency),
        reserve=optimizer.Reserve(percent=reserve.percent, amount=reserve.amount),
        channels=tuple(optimizer.Channel(c.id, to_response(c.response), c.min, c.max,
                                         c.min_if_used) for c in request.channels),
        groups=tuple(optimizer.Group(g.id, tuple(g.channels), g.min_share, g.max_share)
                     for g in request.groups),
        periods=tuple(optimizer.Period(p.id, p.weight, p.cap) for p in request.periods),
        objective=request.objective, target_return=request.target_return,
        target_roi=request.target_roi, incremental=incremental, solver=request.solver,
        time_limit=request.time_limit_seconds)


def request_of(problem: optimizer.Problem, currency: str, *,
               tolerance_percent: Decimal | None = None) -> OptimizationRequest:
    """The request that `to_problem` turns into `problem`: what a stored plan records it asked.
    `tolerance_percent` is the incremental tolerance as the caller gave it (the problem holds
    it as a fraction)."""
    incremental = problem.incremental
    return OptimizationRequest(
        currency=currency, total=problem.total,
        reserve=ReservePolicy(percent=problem.reserve.percent, amount=problem.reserve.amount),
        objective=problem.objective, target_return=problem.target_return,
        target_roi=problem.target_roi,
        channels=[OptimizationChannel(id=c.id, response=_response_shape(c.response), min=c.min,
                                      max=c.max, min_if_used=c.min_if_used)
                  for c in problem.channels],
        groups=[OptimizationGroup(id=g.id, channels=list(g.channels), min_share=g.min_share,
                                  max_share=g.max_share) for g in problem.groups],
        periods=[OptimizationPeriod(id=p.id, weight=p.weight, cap=p.cap) for p in problem.periods],
        incremental=None if incremental is None else IncrementalMode(
            previous=dict(incremental.previous),
            tolerance_percent=tolerance_percent if tolerance_percent is not None
            else incremental.tolerance * 100),
        solver=problem.solver, time_limit_seconds=problem.time_limit)


def check(problem: optimizer.Problem) -> None:
    """Raise InvalidRequest listing every problem of `problem` at once: the optimizer's own
    rules, then this API's size limits (past them a solve could take too long)."""
    errors = [(issue.field, issue.detail) for issue in optimizer.check_problem(problem)]
    deals = sum(isinstance(c.response, optimizer.Deal) for c in problem.channels)
    if deals > MAX_DEALS:
        errors.append(("channels", f"{deals} deals; at most {MAX_DEALS} are accepted"))
    if len(problem.channels) * max(len(problem.periods), 1) > MAX_CELLS:
        errors.append(("periods", f"channels × periods is above {MAX_CELLS}; use fewer periods "
                                  "or split the problem"))
    if errors:
        raise invalid_fields(errors)


def to_public(allocation: optimizer.Allocation, currency: str) -> OptimizationPublic:
    """The optimizer's answer in the API's shape."""
    # Every total with the currency's decimals, however the request wrote it: a fixed reserve
    # of "150000" is answered as "150000.00".
    exact = quantum(minor_units(currency))
    figures = allocation.figures
    amounts, returns = figures.money(figures.amounts), figures.money(figures.returns)
    cells = figures.money(figures.cell_amounts.ravel())
    earned = figures.money(figures.cell_returns.ravel())
    width = len(figures.periods)
    # Made without validation: every figure is the optimizer's, already of its field's type,
    # and validating a plan's 52,000 cells took longer than finding them.
    return OptimizationPublic.model_construct(
        status=allocation.status, currency=currency, total=allocation.total.quantize(exact),
        reserve=allocation.reserve.quantize(exact), spend=allocation.spend.quantize(exact),
        unspent=allocation.unspent.quantize(exact),
        expected_return=allocation.expected_return.quantize(exact),
        marginal_value_of_budget=allocation.marginal_value_of_budget,
        allocations=[ChannelAllocationPublic.model_construct(
            channel=channel, amount=amounts[c], expected_return=returns[c],
            marginal_roi=allocation.marginal_roi[c], binding=list(allocation.binding[c]),
            periods=[PeriodAllocationPublic(period=period, amount=cells[k],
                                            expected_return=earned[k])
                     for k, period in enumerate(figures.periods, start=c * width)])
            for c, channel in enumerate(allocation.channels)],
        binding_constraints=list(allocation.binding_constraints),
        approximation_error=allocation.approximation_error
        if math.isfinite(allocation.approximation_error) else None, gap=allocation.gap,
        solver=SolverPublic(name=allocation.solver, seconds=allocation.seconds))


# --- use cases -----------------------------------------------------------------------------

# A solve's progress as the worker pool relays it: the optimizer's `Progress` as a dict.
OnProgress = Callable[[Mapping[str, Any]], None]
IsCancelled = Callable[[], bool]


def solve(*, problem: optimizer.Problem, workers: WorkerPool, grace_seconds: float,
          progress: OnProgress | None = None,
          cancelled: IsCancelled | None = None) -> optimizer.Allocation:
    """Solve a checked problem in a worker process; an impossible one is a 422 naming the fix.

    `progress` hears the solver's incumbent, bound and gap as they improve; once `cancelled()`
    turns true the optimizer answers its best plan so far (`feasible`, with its gap), or
    `workers.Cancelled` is raised when it has none."""
    try:
        allocation: optimizer.Allocation = workers.run(
            optimizer.solve, problem, timeout=problem.time_limit + grace_seconds,
            progress=progress, cancelled=cancelled, stop_at_timeout=True)
    except optimizer.Infeasible as infeasible:
        conflicts = infeasible.conflicts
        # The elastic model's slacks are one change: every part of it is needed, so a part
        # is enough by itself only where it is the whole change. A conflict marked `alone`
        # is another fix, enough by itself.
        single = sum(not c.alone for c in conflicts) == 1
        alone = [c.detail for c in conflicts if c.alone or single]
        together = [c.detail for c in conflicts if not (c.alone or single)]
        raise InfeasiblePlan(
            "No allocation meets every constraint. "
            + (f"Enough alone: {'; or '.join(alone)}." if alone else "")
            + (f"{' Or the' if alone else 'The'} smallest change that makes one possible, "
               f"all of these together: {'; '.join(together)}." if together else ""),
            conflicts=[{"constraint": c.constraint, "change": format(c.change, "f"),
                        "detail": c.detail, "alone": c.alone or single}
                       for c in conflicts]) from None
    except optimizer.TooSteep:
        raise UnprocessableContent(
            "A curve returns more per unit near zero spend than the solver can take (1e15 or "
            "more a unit): state the money in a larger unit (thousands), or give the curve a "
            "larger k or an alpha nearer 1.") from None
    except (optimizer.SolveTimeout, WorkerTimeout):
        raise SolveTimeLimit(
            f"The solver found no plan within {problem.time_limit:g} s. Raise time_limit_seconds "
            f"(up to {MAX_SOLVE_SECONDS}), or make the problem smaller: {_what_to_cut(problem)}.") from None
    return allocation


def _what_to_cut(problem: optimizer.Problem) -> str:
    """What makes this problem large, so the advice names only what the request has."""
    responses = [channel.response for channel in problem.channels]
    parts = ["fewer channels"] + ["fewer periods"] * (len(problem.periods) > 1)
    parts += ["fewer deals"] * any(isinstance(r, optimizer.Deal) for r in responses)
    parts += ["fewer S-shaped curves"] * any(isinstance(r, optimizer.Hill) and r.alpha > 1
                                             for r in responses)
    return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]


def optimize_budget(*, request: OptimizationRequest, workers: WorkerPool, grace_seconds: float,
                    progress: OnProgress | None = None,
                    cancelled: IsCancelled | None = None) -> OptimizationPublic:
    """Find the best allocation of the request's budget; nothing is stored."""
    problem = to_problem(request)
    check(problem)
    allocation = solve(problem=problem, workers=workers, grace_seconds=grace_seconds,
                       progress=progress, cancelled=cancelled)
    return to_public(allocation, request.currency)
