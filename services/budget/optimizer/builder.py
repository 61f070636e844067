"""The MILP over a scaled problem's cells: one function per constraint family, each constraint
named after what it protects (`min:video`, `group_min:brand`), so an answer or an
infeasibility can say which rule binds.

In elastic mode every request constraint gets a penalised slack, so minimising the slacks
finds the smallest change that makes an infeasible request feasible (`infeasibility.py`).
"""
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import pulp

from services.budget.optimizer.scaled import Cell, ScaledProblem

# Among plans with the same return, spend less: money on a flat curve earns nothing.
SPEND_TIE_BREAK = 1e-7
# PuLP's expressions are untyped; this names what a value is.
Expression = Any


def constraint_name(name: str) -> str:
    """A solver-safe name for constraint `name`, the same in every process.

    Non-alphanumerics become `_`, and a digest of the original keeps names that differ only
    there apart (`min:a-b`, `min:a_b`); `hash()` would change per process (PYTHONHASHSEED) and
    so would every LP file written.
    """
    digest = hashlib.blake2s(name.encode(), digest_size=4).hexdigest()
    return "c_" + "".join(ch if ch.isalnum() else "_" for ch in name) + f"_{digest}"


@dataclass
class Builder:
    """A PuLP problem with named constraints and, in elastic mode, their slacks."""

    prob: pulp.LpProblem
    elastic: bool
    slacks: dict[str, tuple[pulp.LpVariable, float]] = field(default_factory=dict)

    def require(self, name: str, lhs: Expression, sense: Literal["<=", ">="], rhs: float, *,
                penalty: float = 1.0) -> None:
        """Add `lhs sense rhs` as constraint `name` (with a slack of `penalty` when elastic)."""
        if self.elastic:
            slack = self.prob.add_variable(f"slack_{len(self.slacks)}", lowBound=0)
            self.slacks[name] = (slack, penalty)
            lhs = lhs - slack if sense == "<=" else lhs + slack
        constraint = lhs <= rhs if sense == "<=" else lhs >= rhs
        self.prob += constraint, constraint_name(name)


@dataclass
class Variables:
    segments: list[list[pulp.LpVariable]]     # per cell
    deals: list[pulp.LpVariable | None]       # per cell
    binaries: list[pulp.LpVariable]
    used: dict[int, pulp.LpVariable]          # per min_if_used channel
    cell_spend: list[Expression]
    cell_return: list[Expression]


def variables(builder: Builder, model: ScaledProblem, cells: list[Cell]) -> Variables:
    """Segment amounts (gated in order by binaries where the curve is not concave) and deals."""
    prob = builder.prob
    segments: list[list[pulp.LpVariable]] = []
    deals: list[pulp.LpVariable | None] = []
    binaries: list[pulp.LpVariable] = []
    spend: list[Expression] = []
    earned: list[Expression] = []
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
        assert seg is not None
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
    return Variables(segments, deals, binaries, used, spend, earned)


def channel_spend(cells: list[Cell], variables: Variables, channel: int) -> Expression:
    return pulp.lpSum(variables.cell_spend[i] for i, cell in enumerate(cells)
                      if cell.channel == channel)


def budget(builder: Builder, model: ScaledProblem, total_spend: Expression) -> None:
    """Spend at most the money available (total − reserve)."""
    builder.require("budget", total_spend, "<=", model.budget, penalty=1.001)


def channel_bounds(builder: Builder, model: ScaledProblem, cells: list[Cell],
                   variables: Variables) -> None:
    """Hard floors and caps; "min if used" through the channel's `used` binary; deals once."""
    for c, channel in enumerate(model.problem.channels):
        amount = channel_spend(cells, variables, c)
        deal_cells = [variables.deals[i] for i, cell in enumerate(cells) if cell.channel == c
                      and variables.deals[i] is not None]
        if deal_cells:
            builder.prob += pulp.lpSum(deal_cells) <= 1, f"once_{c}"
        low, high = model.lower[c], model.upper[c]
        if c in variables.used:
            assert channel.min is not None
            used = variables.used[c]
            builder.prob += amount <= min(high, model.budget) * used, f"used_{c}"
            builder.require(f"min:{channel.id}", amount - model.money(channel.min) * used, ">=", 0)
        elif low > 0:
            builder.require(f"min:{channel.id}", amount, ">=", low)
        if high < model.budget:
            builder.require(f"max:{channel.id}", amount, "<=", high)


def group_shares(builder: Builder, model: ScaledProblem, cells: list[Cell], variables: Variables,
                 total_spend: Expression) -> None:
    """Each group's share of total spend within its bounds (brand ≥ 20 %)."""
    for group in model.problem.groups:
        members = [model.index[c] for c in group.channels]
        amount = pulp.lpSum(channel_spend(cells, variables, c) for c in members)
        if group.min_share is not None:
            builder.require(f"group_min:{group.id}",
                            amount - float(group.min_share) * total_spend, ">=", 0)
        if group.max_share is not None:
            builder.require(f"group_max:{group.id}",
                            amount - float(group.max_share) * total_spend, "<=", 0)


def period_caps(builder: Builder, model: ScaledProblem, cells: list[Cell],
                variables: Variables) -> None:
    """At most a period's cap spent in it, over all channels."""
    for p, period in enumerate(model.problem.periods):
        if period.cap is not None:
            amount = pulp.lpSum(variables.cell_spend[i] for i, cell in enumerate(cells)
                                if cell.period == p)
            builder.require(f"period_cap:{period.id}", amount, "<=", model.money(period.cap))


def targets(builder: Builder, model: ScaledProblem, total_spend: Expression,
            total_return: Expression) -> None:
    """The least-cost objectives' floors: the target return, or return ≥ target ROI × spend."""
    problem = model.problem
    if problem.objective == "min_spend":
        assert problem.target_return is not None
        builder.require("target_return", total_return, ">=", model.money(problem.target_return))
    if problem.objective == "target_roi":
        assert problem.target_roi is not None
        builder.require("target_roi", total_return - float(problem.target_roi) * total_spend,
                        ">=", 0)


def objective(builder: Builder, model: ScaledProblem, total_spend: Expression,
              total_return: Expression) -> None:
    """The request's objective, or in elastic mode the penalised slacks."""
    if builder.elastic:
        builder.prob += pulp.lpSum(penalty * slack for slack, penalty in builder.slacks.values())
    elif model.problem.objective == "min_spend":
        builder.prob += total_spend
    elif model.problem.objective == "max_profit":
        builder.prob += total_return - total_spend
    else:
        builder.prob += total_return - SPEND_TIE_BREAK * total_spend


def build(model: ScaledProblem, cells: list[Cell], *,
          elastic: bool = False) -> tuple[Builder, Variables]:
    """The whole model: variables, every constraint family, the objective."""
    maximise = model.problem.objective != "min_spend" and not elastic
    builder = Builder(pulp.LpProblem("allocation", pulp.LpMaximize if maximise else pulp.LpMinimize),
                      elastic)
    made = variables(builder, model, cells)
    total_spend = pulp.lpSum(made.cell_spend)
    total_return = pulp.lpSum(made.cell_return)
    budget(builder, model, total_spend)
    channel_bounds(builder, model, cells, made)
    group_shares(builder, model, cells, made, total_spend)
    period_caps(builder, model, cells, made)
    targets(builder, model, total_spend, total_return)
    objective(builder, model, total_spend, total_return)
    return builder, made
