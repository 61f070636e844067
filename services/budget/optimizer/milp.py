"""Solve the scaled problem as a MILP (any curve, deal or constraint) and read its shadow price."""
import numpy as np
import pulp

from services.budget.optimizer.answer import Infeasible
from services.budget.optimizer.backends import run, solver_label
from services.budget.optimizer.builder import Builder, Variables, build, constraint_name
from services.budget.optimizer.infeasibility import conflicts
from services.budget.optimizer.scaled import EPS, Cell, ScaledProblem, Solution


def solve_milp(model: ScaledProblem, cells: list[Cell], started: float) -> Solution:
    """The MILP's plan, or `Infeasible` naming the smallest change that makes one possible."""
    builder, made = build(model, cells)
    status, gap = run(builder.prob, model.problem, started)
    if status == "infeasible":
        raise Infeasible(conflicts(model, cells, started))
    spend = np.maximum(np.array([pulp.value(e) or 0.0 for e in made.cell_spend], dtype=float), 0.0)
    model_return = sum(model_value(cell, float(x)) for cell, x in zip(cells, spend))
    marginal = budget_dual(builder, made, model, started)
    return Solution(spend, status, gap, solver_label(model.problem), marginal, model_return)


def model_value(cell: Cell, spend: float) -> float:
    """The piecewise-linear model's return at `spend` (filled in order, whatever the solver's
    split among equal-valued segments)."""
    if cell.deal is not None:
        return cell.deal[1] if spend > EPS else 0.0
    seg = cell.segments
    assert seg is not None
    xs = np.concatenate([[0.0], np.cumsum(seg.lengths)])
    ys = np.concatenate([[0.0], np.cumsum(seg.lengths * seg.slopes)])
    return cell.weight * float(np.interp(spend, xs, ys))


def budget_dual(builder: Builder, made: Variables, model: ScaledProblem,
                started: float) -> float | None:
    """The shadow price of the budget; for a MILP, of the LP with its binaries fixed."""
    prob = builder.prob
    if made.binaries:
        for var in made.binaries:
            fixed = round(var.varValue or 0.0)
            var.cat, var.lowBound, var.upBound = pulp.LpContinuous, fixed, fixed
        if run(prob, model.problem, started)[0] == "infeasible":
            return None
    constraint = prob.get_constraint_by_name(constraint_name("budget"))
    if constraint.pi is None:
        return None
    return abs(float(constraint.pi))
