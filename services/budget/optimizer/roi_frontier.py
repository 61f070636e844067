"""`target_roi` over concave curves, by the greedy's frontier: no MILP.

F(s), the most return of a plan spending at most s, is the greedy's return with a budget of s
(`greedy.fill_segments`): concave in s, and 0 at s = 0 where no channel has a floor, so F(s)/s
falls as s grows. The plans returning at least t·s therefore spend at most s*, the largest s
within the money where h(s) = F(s) − t·s ≥ 0, and the most return among them is F(s*): the
greedy's plan with a budget of s*. Newton's steps on h from the money down find s*: h is
concave, so each step's tangent (its slope the greedy's price at s, less t) lies above h and
crosses zero between s* and s, and on the pieces (F piecewise linear) a step from s*'s own
segment lands on it. Example: a channel whose first 10 units return 5 each and next 10 return
1 each, with 100 to spend at a target of 3: F(20) = 60 = 3 × 20, so s* = 20 (the greedy's
plan at the money, 20, returns 60 too; a target of 4 gives s* = 50 / 3 = 16.67, for 66.67).

The bound: a plan on the true curves returns at most its pieces' return plus the curves' rises
above them, E (Σ weight · the segments' error), so it spends at most s_U, the largest s where
F(s) + E ≥ t·s, and returns at most F(s_U) + E: a bound that counts the target's row loosened
by the rises as well as the return raised. F is concave and the greedy's price λ at s* is a
slope above it past s*: F(s) ≤ F(s*) + λ·(s − s*), so s_U − s* ≤ (h(s*) + E) / (t − λ) where
λ < t (else the money), and F(s_U) + E ≤ F(s*) + λ·(s_U − s*) + E, with no other fill.

Period caps are not in F: a plan keeping them is their optimum too (the caps only take plans
away), and one breaking them is left to the MILP. Groups' shares and floors (which make F(s)/s
rise where a floor's channel returns little) are the MILP's too (`applies`).
"""
import copy
import math
import time

import numpy as np

from services.budget.optimizer import greedy
from services.budget.optimizer.answer import Infeasible, SolveTimeout
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.greedy import Curves, Fill
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem, Solution

# Newton's steps on h at most; each is a greedy's fill (0.02-0.1 s at 1,000 x 52).
STEPS = 60
# A plan whose pieces lack at most this share of target × spend is on s* (floats' noise: the
# rounding's repair, `solver._cut`, takes off the cents the true curves still lack).
NOISE = 1e-12


def applies(model: ScaledProblem, cells: Cells) -> bool:
    """Whether `solve` answers this problem: target_roi under `bounds_only`."""
    problem = model.problem
    return problem.objective == "target_roi" and problem.target_roi is not None and \
        bounds_only(model, cells)


def bounds_only(model: ScaledProblem, cells: Cells) -> bool:
    """Whether the problem's rules are bounds alone: concave curves (no deal, no conditional
    floor), no group and no floor, so that a plan within the money, the channels' and the
    periods' caps keeps them all (`within_bounds`)."""
    return not model.problem.groups and not any(low > 0 for low in model.lower) and \
        greedy.concave_curves(model, cells)


def within_bounds(model: ScaledProblem, cells: Cells, spend: Floats,
                  tolerance: float = 1e-7) -> bool:
    """Whether the plan `spend` (per cell, scaled) keeps the money, every channel's, period's
    and cell's cap, within `tolerance` (scaled, as `Formulation.feasible`'s): every rule of a
    problem of `bounds_only`."""
    channels = np.bincount(cells.channel, weights=spend, minlength=len(model.upper))
    periods = np.bincount(cells.period, weights=spend, minlength=len(model.periods))
    return bool(float(spend.sum()) <= model.budget + tolerance and np.all(spend >= -tolerance)
                and np.all(spend <= cells.upper + tolerance)
                and np.all(channels <= np.asarray(model.upper) + tolerance)
                and np.all(periods <= _period_caps(model) + tolerance))


def solve(model: ScaledProblem, cells: Cells, deadline: float = math.inf,
          past: float | None = None) -> Solution | None:
    """The most return among plans on the pieces returning at least target_roi × spend (see the
    module), `optimal` on the pieces (`ceiling` bounds it on the true curves); None where the
    plan breaks a period's cap (or Newton's steps do not settle). `Infeasible` (naming nothing
    yet, as the MILP's route under `infeasibility.unnamed`) where no plan that spends meets the
    target on the pieces; `SolveTimeout` where `deadline` (`time.perf_counter()`) passes
    before the plan is found, as the MILP's would. `past`: a spend (scaled) no plan meeting
    the target spends more than, where Newton's steps start (a coarser cut's `ceiling`)."""
    fill = _frontier(model, Curves.of(cells), deadline, past)
    if fill is not None and float(fill.spend.sum()) <= EPS:
        raise Infeasible([])
    if fill is None or not _keeps_caps(model, cells, fill):
        return None
    return Solution(spend=fill.spend, status="optimal", gap=0.0, solver="greedy",
                    marginal_value=fill.marginal, model_return=fill.model_return)


def ceiling(model: ScaledProblem, cells: Cells, plan: Solution) -> tuple[float, float]:
    """The most return a plan meeting target_roi on the true curves can make, and the most it
    can spend (both scaled), from `solve`'s `plan` on `cells` (see the module)."""
    rise = rises(cells)
    target = float(model.problem.target_roi or 0)
    price = plan.marginal_value or 0.0
    spent = float(plan.spend.sum())
    further = model.budget - spent
    if price < target:
        further = min(further, (plan.model_return - target * spent + rise) / (target - price))
    further = max(further, 0.0)
    return plan.model_return + price * further + rise, spent + further


def rises(cells: Cells) -> float:
    """E: the most a plan's return on the true curves can lie above its pieces' (scaled), each
    cell's segments' error times its weight (a deal's pieces are exact)."""
    distinct, curve = cells.curve_of
    errors = np.array([0.0 if segments is None else segments.error
                       for segments in distinct])[curve]
    return float(cells.weight @ errors)


def _frontier(model: ScaledProblem, curves: Curves, deadline: float,
              past: float | None) -> Fill | None:
    """The greedy's plan at s*, the largest budget within the money where its return reaches
    target_roi × s*, by Newton's steps from the money (or `past`) down (None where STEPS end
    first)."""
    target = float(model.problem.target_roi or 0)
    some = np.flatnonzero(curves.size > 0)
    if not np.any(curves.value(some, np.zeros(len(some), dtype=np.intp)) > target):
        # No piece returns more than the target a unit: only the plan of nothing meets it
        # (three fills of the money to find so at 1,000 x 52, 0.8 s of CPU).
        return greedy.fill_segments(with_budget(model, 0.0), curves)
    fill = greedy.fill_segments(model if past is None or past >= model.budget else
                                with_budget(model, past), curves)
    for _ in range(STEPS):
        spent = float(fill.spend.sum())
        short = target * spent - fill.model_return
        if short <= NOISE * target * spent:
            return fill
        if time.perf_counter() >= deadline:
            raise SolveTimeout("no plan meeting target_roi found within the time limit")
        # h's slope at s is the greedy's price there less t, below 0 where h(s) < 0 (h is
        # concave and h(0) ≥ 0), but for floats' noise; the money left unspent is priced at 0.
        if fill.marginal >= target:
            return None
        budget = max(spent - short / (target - fill.marginal), 0.0)
        fill = greedy.fill_segments(with_budget(model, budget), curves, near=fill)
    return None


def with_budget(model: ScaledProblem, budget: float) -> ScaledProblem:
    """`model` with `budget` (scaled) to spend."""
    smaller = copy.copy(model)
    smaller.budget = budget
    return smaller


def _keeps_caps(model: ScaledProblem, cells: Cells, fill: Fill) -> bool:
    """Whether `fill` spends within every period's cap."""
    caps = _period_caps(model)
    spent = np.bincount(cells.period, weights=fill.spend, minlength=len(caps))
    return bool(np.all(spent <= caps * (1 + EPS) + EPS))


def _period_caps(model: ScaledProblem) -> Floats:
    """Per period, its cap (scaled; infinite where it has none)."""
    return np.array([math.inf if period.cap is None else model.money(period.cap)
                     for period in model.periods])
