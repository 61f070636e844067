"""The budget optimizer: how much to put in each channel, holding back an emergency reserve.

Pure: frozen dataclasses in, an `Allocation` out; no database, no HTTP.

The model. Money available M = total − reserve (the reserve is held back exactly). Each channel
earns on its own response curve, per period when periods are given (weighted by the period's
seasonality), and the plan maximises expected return (or reaches a target return at least cost,
maximises profit, or keeps return/spend above a target ROI) subject to
- spend ≤ M;
- per-channel min/max (a hard floor, or "at least min if used at all");
- channel-group share bounds (brand ≥ 20 % of spend);
- per-period spend caps;
- incremental mode: each channel within ±x % of a previous allocation.
Curves become piecewise-linear segments (`curves.py`); concave runs are exact LP pieces and
non-concave runs and all-or-nothing deals get binaries, so the answer is the global optimum of the
approximation (a MILP), solved by HiGHS through PuLP (or CBC). A concave problem whose only
constraints are the budget and per-channel bounds is solved exactly by a greedy over segments
sorted by slope (`greedy.py`), which agrees with the PuLP model and runs in milliseconds.

    >>> problem = Problem(total=Decimal("1000"), decimals=2, reserve=Reserve(percent=Decimal(10)),
    ...                   channels=(Channel("search", Linear(Decimal("2"))),))
    >>> solve(problem).spend
    Decimal('900.00')
"""
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

import numpy as np
import pulp

from services.budget import curves, greedy
from services.budget.rounding import round_allocation

Objective = Literal["max_return", "min_spend", "max_profit", "target_roi"]
SolverName = Literal["highs", "cbc"]

# The approximation is refined until the true optimum can be at most this far above the plan.
TARGET_ERROR = 1e-3
# A MILP stops once proven within this of its optimum; with the curve error it stays < 0.1 %.
MIP_GAP = 2e-4
_FIRST_TOLERANCE = 4e-4   # of each curve's value at its cap; usually meets TARGET_ERROR at once
_REFINEMENTS = 3
# Scaled money is 1 for the whole budget; a cent on a billion is 1e-11, so 1e-9 is "equal".
_EPS = 1e-9
# Among plans with the same return, spend less: money on a flat curve earns nothing.
_SPEND_TIE_BREAK = 1e-7


@dataclass(frozen=True)
class Linear:
    """Constant return on investment: return = roi × spend."""

    roi: Decimal


@dataclass(frozen=True)
class Points:
    """(spend, return) points from (0, 0), sorted by spend; linear between, flat beyond."""

    points: tuple[tuple[Decimal, Decimal], ...]


@dataclass(frozen=True)
class Hill:
    """Saturation curve: return = beta · s^alpha / (s^alpha + k^alpha); S-shaped when alpha > 1."""

    beta: Decimal
    k: Decimal
    alpha: Decimal


@dataclass(frozen=True)
class Deal:
    """All or nothing: spend exactly `cost` for `value`, or nothing."""

    cost: Decimal
    value: Decimal


Response = Linear | Points | Hill | Deal


@dataclass(frozen=True)
class Channel:
    id: str
    response: Response
    min: Decimal | None = None
    max: Decimal | None = None
    # When set, `min` means "at least min if the channel is used at all".
    min_if_used: bool = False


@dataclass(frozen=True)
class Group:
    id: str
    channels: tuple[str, ...]
    min_share: Decimal | None = None   # fractions of total spend, 0.2 = 20 %
    max_share: Decimal | None = None


@dataclass(frozen=True)
class Period:
    id: str
    weight: Decimal = Decimal(1)       # seasonality: return multiplier in this period
    cap: Decimal | None = None         # most that may be spent in this period


@dataclass(frozen=True)
class Reserve:
    """Held back: a percent of the total or a fixed amount."""

    percent: Decimal | None = None
    amount: Decimal | None = None

    def of(self, total: Decimal, decimals: int) -> Decimal:
        if self.amount is not None:
            return self.amount
        share = total * (self.percent or Decimal(0)) / 100
        return share.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Incremental:
    """Keep each channel of `previous` within ±`tolerance` (0.1 = 10 %) of its amount there."""

    previous: Mapping[str, Decimal]
    tolerance: Decimal


@dataclass(frozen=True)
class Problem:
    total: Decimal
    decimals: int                      # the currency's minor-unit decimals
    channels: tuple[Channel, ...]
    reserve: Reserve = field(default_factory=Reserve)
    groups: tuple[Group, ...] = ()
    periods: tuple[Period, ...] = ()
    objective: Objective = "max_return"
    target_return: Decimal | None = None   # min_spend
    target_roi: Decimal | None = None      # target_roi
    incremental: Incremental | None = None
    solver: SolverName = "highs"
    time_limit: float = 30.0


@dataclass(frozen=True)
class PeriodAllocation:
    period: str
    amount: Decimal
    expected_return: Decimal


@dataclass(frozen=True)
class ChannelAllocation:
    channel: str
    amount: Decimal
    expected_return: Decimal
    marginal_roi: Decimal | None       # return of the next unit here; None for a deal
    binding: tuple[str, ...]
    periods: tuple[PeriodAllocation, ...] = ()


@dataclass(frozen=True)
class Allocation:
    status: Literal["optimal", "feasible"]
    total: Decimal
    reserve: Decimal
    spend: Decimal
    unspent: Decimal
    expected_return: Decimal
    marginal_value_of_budget: Decimal | None
    allocations: tuple[ChannelAllocation, ...]
    binding_constraints: tuple[str, ...]
    approximation_error: float         # bound on how far the true optimum can beat this plan
    gap: float | None                  # the solver's optimality gap (MILP), 0 when proven
    solver: str
    seconds: float


@dataclass(frozen=True)
class Conflict:
    constraint: str
    change: Decimal                    # the smallest relaxation of this constraint that helps
    detail: str


class Infeasible(Exception):
    """No plan meets every constraint; `conflicts` is the smallest set of changes that fixes it."""

    def __init__(self, conflicts: list[Conflict]):
        super().__init__("; ".join(c.detail for c in conflicts))
        self.conflicts = conflicts

    def __reduce__(self):   # crosses the worker-process boundary intact
        return Infeasible, (self.conflicts,)


class SolveTimeout(Exception):
    """The time limit passed before the solver found any plan."""


def solve(problem: Problem) -> Allocation:
    """Return the best allocation of `problem`, or raise `Infeasible` naming the conflict."""
    started = time.perf_counter()
    model = _Scaled(problem)
    tolerance = _FIRST_TOLERANCE
    for _ in range(_REFINEMENTS):
        cells = model.cells(tolerance)
        if greedy.applies(model, cells):
            solution = greedy.solve(model, cells)
        else:
            solution = _solve_milp(model, cells, started)
        error = _approximation_error(model, cells, solution)
        if error <= TARGET_ERROR or not any(c.segments and c.segments.error for c in cells):
            break
        tolerance *= max(0.5 * TARGET_ERROR / error, 1e-3)
    return _allocation(model, cells, solution, error, time.perf_counter() - started)


# --- the scaled model -------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One channel in one period: its curve as segments, or its deal."""

    channel: int
    period: int
    weight: float
    upper: float
    segments: curves.Segments | None   # None for a deal
    deal: tuple[float, float] | None   # (cost, value), scaled


@dataclass
class Solution:
    spend: np.ndarray          # per cell, scaled
    status: str
    gap: float | None
    solver: str
    marginal_value: float | None
    model_return: float        # objective-side return of the piecewise-linear model, scaled


class _Scaled:
    """The problem in floats, money divided by the money available so the budget is 1."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.reserve = problem.reserve.of(problem.total, problem.decimals)
        self.available = problem.total - self.reserve
        self.unit = float(self.available) if self.available > 0 else 1.0
        self.budget = float(self.available) / self.unit
        self.periods = problem.periods or (Period(id=""),)
        self.index = {c.id: i for i, c in enumerate(problem.channels)}
        self.lower, self.upper = self._bounds()
        self._cache: dict = {}

    def money(self, amount: Decimal | None) -> float | None:
        return None if amount is None else float(amount) / self.unit

    def _bounds(self) -> tuple[list[float], list[float]]:
        """Per channel: hard floor and cap, scaled; incremental bounds folded in."""
        lower, upper = [], []
        incremental = self.problem.incremental
        for channel in self.problem.channels:
            low = 0.0 if channel.min_if_used or channel.min is None else self.money(channel.min)
            high = self.budget if channel.max is None else min(self.money(channel.max), self.budget)
            if incremental and channel.id in incremental.previous:
                previous = self.money(incremental.previous[channel.id])
                share = float(incremental.tolerance)
                low, high = max(low, previous * (1 - share)), min(high, previous * (1 + share))
            lower.append(low)
            upper.append(high)
        return lower, upper

    def cells(self, tolerance: float) -> list[Cell]:
        cells = []
        for c, channel in enumerate(self.problem.channels):
            for p, period in enumerate(self.periods):
                cap = self.money(period.cap)
                upper = min(self.upper[c], cap if cap is not None else math.inf)
                weight = float(period.weight)
                response = channel.response
                if isinstance(response, Deal):
                    deal = (self.money(response.cost), self.money(response.value) * weight)
                    cells.append(Cell(c, p, weight, upper, None, deal))
                elif upper > _EPS:
                    cells.append(Cell(c, p, weight, upper, self._segments(response, upper, tolerance), None))
        return cells

    def _segments(self, response: Response, upper: float, tolerance: float) -> curves.Segments:
        key = (id(response), upper, tolerance)
        if key not in self._cache:
            if isinstance(response, Linear):
                segments = curves.linear_segments(float(response.roi), upper)
            elif isinstance(response, Points):
                points = [(float(s) / self.unit, float(r) / self.unit) for s, r in response.points]
                segments = curves.points_segments(points, upper)
            else:
                beta, k = float(response.beta) / self.unit, float(response.k) / self.unit
                alpha = float(response.alpha)
                segments = curves.hill_segments(beta, k, alpha, upper,
                                                 tolerance * float(curves.hill(upper, beta, k, alpha)))
            self._cache[key] = segments
        return self._cache[key]

    def true_return(self, cell: Cell, spend: float) -> float:
        """The return of `spend` in `cell` on the channel's true curve, scaled."""
        response = self.problem.channels[cell.channel].response
        if isinstance(response, Deal):
            return cell.deal[1] if spend > _EPS else 0.0
        if isinstance(response, Linear):
            value = float(response.roi) * spend
        elif isinstance(response, Points):
            xs = [float(s) / self.unit for s, _ in response.points]
            ys = [float(r) / self.unit for _, r in response.points]
            value = float(np.interp(spend, xs, ys))
        else:
            value = float(curves.hill(spend, float(response.beta) / self.unit,
                                      float(response.k) / self.unit, float(response.alpha)))
        return cell.weight * value

    def true_slope(self, cell: Cell, spend: float) -> float | None:
        """The return of the next unit spent in `cell` on the true curve."""
        response = self.problem.channels[cell.channel].response
        if isinstance(response, Deal):
            return None
        if isinstance(response, Linear):
            return cell.weight * float(response.roi)
        if isinstance(response, Points):
            xs = [float(s) / self.unit for s, _ in response.points]
            ys = [float(r) / self.unit for _, r in response.points]
            right = int(np.searchsorted(xs, spend + _EPS, side="right"))
            if right >= len(xs):
                return 0.0
            return cell.weight * (ys[right] - ys[right - 1]) / (xs[right] - xs[right - 1])
        return cell.weight * float(curves.hill_slope(spend, float(response.beta) / self.unit,
                                                     float(response.k) / self.unit,
                                                     float(response.alpha)))


# --- the PuLP model ---------------------------------------------------------------------------

class _Builder:
    """A PuLP problem with named constraints; in elastic mode every request constraint gets a
    penalised slack, so minimising the slacks finds the smallest change that makes it feasible."""

    def __init__(self, name: str, sense: int, elastic: bool):
        self.prob = pulp.LpProblem(name, sense)
        self.elastic = elastic
        self.slacks: dict[str, tuple[pulp.LpVariable, float]] = {}   # name → (slack, penalty)

    def require(self, name: str, lhs, sense: str, rhs, *, penalty: float = 1.0) -> None:
        if self.elastic:
            slack = self.prob.add_variable(f"slack_{len(self.slacks)}", lowBound=0)
            self.slacks[name] = (slack, penalty)
            lhs = lhs - slack if sense == "<=" else lhs + slack
        constraint = lhs <= rhs if sense == "<=" else lhs >= rhs
        self.prob += constraint, _constraint_name(name)


def _constraint_name(name: str) -> str:
    return "c_" + "".join(ch if ch.isalnum() else "_" for ch in name) + f"_{abs(hash(name)) % 10**8}"


@dataclass
class _Variables:
    segments: list[list[pulp.LpVariable]]     # per cell
    deals: list[pulp.LpVariable | None]       # per cell
    binaries: list[pulp.LpVariable]
    used: dict[int, pulp.LpVariable]          # per min_if_used channel
    cell_spend: list[pulp.LpAffineExpression]
    cell_return: list[pulp.LpAffineExpression]


def _variables(builder: _Builder, model: _Scaled, cells: list[Cell]) -> _Variables:
    """Segment amounts (gated in order by binaries where the curve is not concave) and deals."""
    prob = builder.prob
    segments, deals, binaries, spend, earned = [], [], [], [], []
    for i, cell in enumerate(cells):
        if cell.deal is not None:
            bought = prob.add_variable(f"deal_{i}", cat=pulp.LpBinary)
            binaries.append(bought)
            segments.append([])
            deals.append(bought)
            spend.append(cell.deal[0] * bought)
            earned.append(cell.deal[1] * bought)
            continue
        seg = cell.segments
        amounts = [prob.add_variable(f"s_{i}_{j}", lowBound=0, upBound=float(length))
                   for j, length in enumerate(seg.lengths)]
        gates = [prob.add_variable(f"z_{i}_{j}", cat=pulp.LpBinary) for j in range(seg.gated)]
        for j, gate in enumerate(gates):   # z_j = 1: segment j is full and j+1 may be used
            prob += amounts[j] >= float(seg.lengths[j]) * gate
            following = amounts[j + 1:] if j + 1 == seg.gated else amounts[j + 1:j + 2]
            for amount, length in zip(following, seg.lengths[j + 1:]):
                prob += amount <= float(length) * gate
        binaries.extend(gates)
        segments.append(amounts)
        deals.append(None)
        spend.append(pulp.lpSum(amounts))
        earned.append(pulp.LpAffineExpression(
            [(a, cell.weight * float(s)) for a, s in zip(amounts, seg.slopes)]))
    used = {}
    for c, channel in enumerate(model.problem.channels):
        if channel.min_if_used and channel.min is not None:
            used[c] = prob.add_variable(f"used_{c}", cat=pulp.LpBinary)
            binaries.append(used[c])
    return _Variables(segments, deals, binaries, used, spend, earned)


def _channel_spend(cells: list[Cell], variables: _Variables, channel: int):
    return pulp.lpSum(variables.cell_spend[i] for i, cell in enumerate(cells) if cell.channel == channel)


def _budget(builder: _Builder, model: _Scaled, total_spend) -> None:
    builder.require("budget", total_spend, "<=", model.budget, penalty=1.001)


def _channel_bounds(builder: _Builder, model: _Scaled, cells: list[Cell], variables: _Variables) -> None:
    """Hard floors and caps; "min if used" through the channel's `used` binary; deals once."""
    for c, channel in enumerate(model.problem.channels):
        amount = _channel_spend(cells, variables, c)
        deal_cells = [variables.deals[i] for i, cell in enumerate(cells) if cell.channel == c
                      and variables.deals[i] is not None]
        if deal_cells:
            builder.prob += pulp.lpSum(deal_cells) <= 1, f"once_{c}"
        low, high = model.lower[c], model.upper[c]
        if c in variables.used:
            used = variables.used[c]
            builder.prob += amount <= min(high, model.budget) * used, f"used_{c}"
            builder.require(f"min:{channel.id}", amount - model.money(channel.min) * used, ">=", 0)
        elif low > 0:
            builder.require(f"min:{channel.id}", amount, ">=", low)
        if high < model.budget:
            builder.require(f"max:{channel.id}", amount, "<=", high)


def _group_shares(builder: _Builder, model: _Scaled, cells: list[Cell], variables: _Variables,
                  total_spend) -> None:
    for group in model.problem.groups:
        members = [model.index[c] for c in group.channels]
        amount = pulp.lpSum(_channel_spend(cells, variables, c) for c in members)
        if group.min_share is not None:
            builder.require(f"group_min:{group.id}", amount - float(group.min_share) * total_spend, ">=", 0)
        if group.max_share is not None:
            builder.require(f"group_max:{group.id}", amount - float(group.max_share) * total_spend, "<=", 0)


def _period_caps(builder: _Builder, model: _Scaled, cells: list[Cell], variables: _Variables) -> None:
    for p, period in enumerate(model.problem.periods):
        if period.cap is not None:
            amount = pulp.lpSum(variables.cell_spend[i] for i, cell in enumerate(cells) if cell.period == p)
            builder.require(f"period_cap:{period.id}", amount, "<=", model.money(period.cap))


def _objective(builder: _Builder, model: _Scaled, total_spend, total_return) -> None:
    problem = model.problem
    if builder.elastic:
        builder.prob += pulp.lpSum(penalty * slack for slack, penalty in builder.slacks.values())
    elif problem.objective == "min_spend":
        builder.prob += total_spend
    elif problem.objective == "max_profit":
        builder.prob += total_return - total_spend
    else:
        builder.prob += total_return - _SPEND_TIE_BREAK * total_spend


def _targets(builder: _Builder, model: _Scaled, total_spend, total_return) -> None:
    problem = model.problem
    if problem.objective == "min_spend":
        builder.require("target_return", total_return, ">=", model.money(problem.target_return))
    if problem.objective == "target_roi":
        builder.require("target_roi", total_return - float(problem.target_roi) * total_spend, ">=", 0)


def _build(model: _Scaled, cells: list[Cell], *, elastic: bool = False) -> tuple[_Builder, _Variables]:
    maximise = model.problem.objective != "min_spend" and not elastic
    builder = _Builder("allocation", pulp.LpMaximize if maximise else pulp.LpMinimize, elastic)
    variables = _variables(builder, model, cells)
    total_spend = pulp.lpSum(variables.cell_spend)
    total_return = pulp.lpSum(variables.cell_return)
    _budget(builder, model, total_spend)
    _channel_bounds(builder, model, cells, variables)
    _group_shares(builder, model, cells, variables, total_spend)
    _period_caps(builder, model, cells, variables)
    _targets(builder, model, total_spend, total_return)
    _objective(builder, model, total_spend, total_return)
    return builder, variables


def _solver(model: _Scaled, started: float):
    remaining = max(model.problem.time_limit - (time.perf_counter() - started), 1.0)
    if model.problem.solver == "cbc":
        return pulp.PULP_CBC_CMD(msg=False, timeLimit=remaining, gapRel=MIP_GAP)
    return pulp.HiGHS(msg=False, timeLimit=remaining, gapRel=MIP_GAP, threads=1)


def _run(prob: pulp.LpProblem, model: _Scaled, started: float) -> tuple[str, float | None]:
    """Solve; return ("optimal" | "feasible" | "infeasible", gap)."""
    solver = _solver(model, started)
    prob.solve(solver)
    if prob.status == pulp.LpStatusInfeasible:
        return "infeasible", None
    if prob.sol_status == pulp.LpSolutionNoSolutionFound or prob.status == pulp.LpStatusNotSolved:
        raise SolveTimeout(f"no plan found within {model.problem.time_limit:g} s")
    if isinstance(solver, pulp.HiGHS):
        highs = prob.solverModel
        proven = highs.getModelStatus() == highs.getModelStatus().__class__.kOptimal
        gap = float(highs.getInfo().mip_gap) if prob.isMIP() else 0.0
        if not math.isfinite(gap):
            gap = None
        return ("optimal" if proven else "feasible"), (gap if prob.isMIP() else 0.0)
    proven = prob.sol_status == pulp.LpSolutionOptimal
    return ("optimal" if proven else "feasible"), (0.0 if proven else None)


def _solve_milp(model: _Scaled, cells: list[Cell], started: float) -> Solution:
    builder, variables = _build(model, cells)
    status, gap = _run(builder.prob, model, started)
    if status == "infeasible":
        raise Infeasible(_conflicts(model, cells, started))
    spend = np.maximum(np.array([pulp.value(e) or 0.0 for e in variables.cell_spend], dtype=float), 0.0)
    model_return = sum(_model_value(cell, x) for cell, x in zip(cells, spend))
    marginal = _budget_dual(builder, variables, model, started)
    name = "CBC" if model.problem.solver == "cbc" else "HiGHS"
    return Solution(spend, status, gap, name, marginal, model_return)


def _model_value(cell: Cell, spend: float) -> float:
    """The piecewise-linear model's return at `spend` (filled in order, whatever the solver's
    split among equal-valued segments)."""
    if cell.deal is not None:
        return cell.deal[1] if spend > _EPS else 0.0
    seg = cell.segments
    xs = np.concatenate([[0.0], np.cumsum(seg.lengths)])
    ys = np.concatenate([[0.0], np.cumsum(seg.lengths * seg.slopes)])
    return cell.weight * float(np.interp(spend, xs, ys))


def _budget_dual(builder: _Builder, variables: _Variables, model: _Scaled, started: float) -> float | None:
    """The shadow price of the budget; for a MILP, of the LP with its binaries fixed."""
    prob = builder.prob
    if variables.binaries:
        for var in variables.binaries:
            fixed = round(var.varValue or 0.0)
            var.cat, var.lowBound, var.upBound = pulp.LpContinuous, fixed, fixed
        if _run(prob, model, started)[0] == "infeasible":
            return None
    constraint = prob.get_constraint_by_name(_constraint_name("budget"))
    if constraint.pi is None:
        return None
    return abs(float(constraint.pi))


# --- infeasibility -----------------------------------------------------------------------------

_ADVICE = {
    "budget": "raise the money available (total minus reserve) by {amount}",
    "min": "lower the minimum of channel {name} by {amount}",
    "max": "raise the maximum of channel {name} by {amount}",
    "group_min": "lower the minimum share of group {name}: it is {amount} short",
    "group_max": "raise the maximum share of group {name}: it is {amount} over",
    "period_cap": "raise the cap of period {name} by {amount}",
    "target_return": "lower target_return by {amount}",
    "target_roi": "lower target_roi: the return falls {amount} short of it",
}


def _conflicts(model: _Scaled, cells: list[Cell], started: float) -> list[Conflict]:
    """Name the constraints to relax, and by how much, with an elastic version of the model."""
    builder, _ = _build(model, cells, elastic=True)
    _run(builder.prob, model, started)
    quantum = Decimal(1).scaleb(-model.problem.decimals)
    conflicts = []
    for name, (slack, _) in builder.slacks.items():
        if (slack.varValue or 0.0) <= 1e-7:
            continue
        # Up to the next minor unit, past the solver's float noise (1e-6 of a unit).
        units = math.ceil(slack.varValue * model.unit / float(quantum) - 1e-6)
        change = units * quantum
        family, _, label = name.partition(":")
        advice = _ADVICE[family].format(name=label, amount=change)
        conflicts.append(Conflict(name, change, advice))
    return conflicts


# --- the answer --------------------------------------------------------------------------------

def _approximation_error(model: _Scaled, cells: list[Cell], solution: Solution) -> float:
    """Bound how far the true optimum can lie above the plan, relative to the plan's return.

    No plan's true return exceeds the model's by more than the sum of each curve's largest rise
    above its pieces, and the model's optimum is at most this plan's model return plus the gap,
    so true optimum − this plan's true return ≤ model optimum − true return + Σ rises.
    """
    true = sum(model.true_return(cell, x) for cell, x in zip(cells, solution.spend))
    rises = sum(cell.weight * cell.segments.error for cell in cells if cell.segments is not None)
    # The model's optimum is at most this plan's model return plus the solver's gap.
    model_optimum = solution.model_return * (1 + (solution.gap or 0.0))
    bound = max(model_optimum - true + rises, 0.0)
    return bound / true if true > _EPS else (0.0 if bound <= _EPS else math.inf)


def _allocation(model: _Scaled, cells: list[Cell], solution: Solution, error: float,
                seconds: float) -> Allocation:
    problem = model.problem
    quantum = Decimal(1).scaleb(-problem.decimals)
    rounded = round_allocation(model, cells, solution.spend)
    allocations, binding_all = [], []
    where = {(cell.channel, cell.period): i for i, cell in enumerate(cells)}
    for c, channel in enumerate(problem.channels):
        mine = {p: where[c, p] for p in range(len(model.periods)) if (c, p) in where}
        periods = []
        channel_return = Decimal(0)
        best_slope = None
        for p, period in enumerate(model.periods):
            if p not in mine:   # nothing may be spent here (a zero cap)
                periods.append(PeriodAllocation(period.id, 0 * quantum, 0 * quantum))
                continue
            cell, amount = cells[mine[p]], rounded.cells[mine[p]]
            earned = _money(model.true_return(cell, float(amount) / model.unit) * model.unit, quantum)
            channel_return += earned
            periods.append(PeriodAllocation(period.id, amount, earned))
            slope = model.true_slope(cell, float(amount) / model.unit)
            if slope is not None and (best_slope is None or slope > best_slope):
                best_slope = slope
        binding = _channel_binding(model, channel, rounded.channels[c])
        binding_all.extend(f"{name}:{channel.id}" for name in binding)
        allocations.append(ChannelAllocation(
            channel=channel.id, amount=rounded.channels[c], expected_return=channel_return,
            marginal_roi=None if best_slope is None else _ratio(best_slope),
            binding=tuple(binding), periods=tuple(periods) if problem.periods else ()))
    spend = sum((a.amount for a in allocations), Decimal(0))
    unspent = model.available - spend
    expected = sum((a.expected_return for a in allocations), Decimal(0))
    global_binding = _global_binding(model, rounded, spend, unspent, expected, quantum)
    marginal = solution.marginal_value
    return Allocation(
        status=solution.status, total=problem.total, reserve=model.reserve, spend=spend,
        unspent=unspent, expected_return=expected,
        marginal_value_of_budget=None if marginal is None else _ratio(marginal),
        allocations=tuple(allocations), binding_constraints=tuple(global_binding + binding_all),
        approximation_error=round(float(error), 8), gap=solution.gap, solver=solution.solver,
        seconds=round(seconds, 4))


def _money(value: float, quantum: Decimal) -> Decimal:
    return Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_EVEN)


def _ratio(value: float) -> Decimal:
    """Six decimals; a concave Hill curve's slope at zero spend is infinite, shown as 1e12."""
    if not math.isfinite(value):
        value = 1e12
    return Decimal(repr(round(value, 6))).quantize(Decimal("0.000001"))


def _channel_binding(model: _Scaled, channel: Channel, amount: Decimal) -> list[str]:
    binding = []
    if channel.max is not None and amount == channel.max:
        binding.append("max")
    if channel.min is not None and amount == channel.min:
        binding.append("min")
    incremental = model.problem.incremental
    if incremental and channel.id in incremental.previous:
        previous = incremental.previous[channel.id]
        quantum = Decimal(1).scaleb(-model.problem.decimals)
        if abs(amount - previous * (1 + incremental.tolerance)) < quantum:
            binding.append("incremental_max")
        if abs(amount - previous * (1 - incremental.tolerance)) < quantum:
            binding.append("incremental_min")
    return binding


def _global_binding(model: _Scaled, rounded, spend: Decimal, unspent: Decimal, expected: Decimal,
                    quantum: Decimal) -> list[str]:
    problem = model.problem
    binding = ["budget"] if unspent == 0 else []
    slack = quantum * max(len(problem.channels), 1)
    for group in problem.groups:
        amount = sum((rounded.channels[model.index[c]] for c in group.channels), Decimal(0))
        if group.min_share is not None and abs(amount - group.min_share * spend) <= slack:
            binding.append(f"group_min:{group.id}")
        if group.max_share is not None and abs(amount - group.max_share * spend) <= slack:
            binding.append(f"group_max:{group.id}")
    for p, period in enumerate(problem.periods):
        if period.cap is not None and rounded.periods[p] == period.cap:
            binding.append(f"period_cap:{period.id}")
    if problem.objective == "min_spend" and expected - problem.target_return <= slack:
        binding.append("target_return")
    if problem.objective == "target_roi" and spend > 0 and \
            expected - problem.target_roi * spend <= slack * problem.target_roi:
        binding.append("target_roi")
    return binding

