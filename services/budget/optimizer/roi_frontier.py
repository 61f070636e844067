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
plan at the money, 20, returns 60 too; a target of 4 gives s* = 40 / 3 = 13.33, for 53.33).

The bound: a plan on the true curves returns at most its pieces' return plus the curves' rises
above them, E (Σ weight · the segments' error), so it spends at most s_U, the largest s where
F(s) + E ≥ t·s, and returns at most F(s_U) + E: a bound that counts the target's row loosened
by the rises as well as the return raised. F is concave and the greedy's price λ at s* is a
slope above it past s*: F(s) ≤ F(s*) + λ·(s − s*), so s_U − s* ≤ (h(s*) + E) / (t − λ) where
λ < t (else the money), and F(s_U) + E ≤ F(s*) + λ·(s_U − s*) + E, with no other fill.

Floors (the channels' hard `min`, incremental floors), ΣL in all: no plan spends less than ΣL,
and F(s) for s ≥ ΣL is the greedy's return with a budget of s, which buys every floor with its
channel's steepest segments first and counts their return (`greedy.fill_segments` takes the
floors as bounds). F is then the optimum of an LP whose budget row's right-hand side is s: still
concave and non-decreasing on [ΣL, money], its price λ still a slope above it. So h is concave
there, but h(ΣL) may be negative (a floor on a channel returning less than t a unit): the s
where h ≥ 0 are an interval [a, s*], maybe empty, and the most return among them is F(s*).
Newton's steps from the money down find s* as before, never stepping below ΣL, and tell where
max h < 0 (`Infeasible`, naming nothing yet, as the MILP's route): where a step's tangent, which
lies above h, crosses zero below ΣL, or where the price at an s with h(s) < 0 is at least t (h's
slope λ − t ≥ 0 there, so h ≤ h(s) < 0 left of s; right of s, the earlier steps' tangents lie
below zero). Example: the channel above beside a channel b returning 0.5 a unit with a floor of
10, 100 to spend. F(s) = 5 + 5(s − 10) up to 20, 55 + (s − 20) up to 30, then 65 + 0.5(s − 30).
At a target of 2, a step from the money (F(100) = 100, λ = 0.5) lands on s* = 100 − 100 / 1.5 =
33.33: the channel at 20 and b at 13.33 return 66.67, twice their spend. At a target of 4 the step
lands on 14.29, where h = 26.43 − 57.14 < 0 at a price of 5: no plan meets it (the best, 55 for
20, returns 2.75 a unit: the first channel's 5 a unit comes with b's floor). The bound above
holds as it is: it reads F only at s* and past it.

A `min_if_used` floor (bought at it or not at all) makes F non-concave: the MILP's, as are
groups' shares (`applies`), and floors past the money or a channel's cap.

Under period caps F is the greedy's with period prices (`period_prices`: an LP's optimum, proven
within its gap, its budget row's price the step's slope), as `spend_frontier`'s: concave in s
too, so the same steps and bound hold, the gap added to F's bound.
"""
import copy
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from services.budget.optimizer import greedy, period_prices
from services.budget.optimizer.answer import Infeasible, SolveTimeout
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.greedy import Curves, Fill
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem, Solution

# Newton's steps on h at most; each is F at one budget: a greedy's fill (0.02-0.1 s at
# 1,000 x 52), under period caps the period prices' (0.07-0.3 s of CPU at 200 x 26).
STEPS = 60
# A plan whose pieces lack at most this share of target × spend is on s* (floats' noise: the
# rounding's repair, `solver._cut`, takes off the cents the true curves still lack).
NOISE = 1e-12


def applies(model: ScaledProblem, cells: Cells) -> bool:
    """Whether `solve` answers this problem: target_roi under `bounds_only` (floors too)."""
    problem = model.problem
    return problem.objective == "target_roi" and problem.target_roi is not None and \
        bounds_only(model, cells)


def bounds_only(model: ScaledProblem, cells: Cells) -> bool:
    """Whether the problem's rules are bounds alone: concave curves (no deal, no conditional
    floor) and no group, so that a plan within the money, the channels' floors and caps and the
    periods' caps keeps them all (`within_bounds`)."""
    return not model.problem.groups and greedy.concave_curves(model, cells)


def within_bounds(model: ScaledProblem, cells: Cells, spend: Floats,
                  tolerance: float = 1e-7) -> bool:
    """Whether the plan `spend` (per cell, scaled) keeps the money, every channel's floor and
    cap, every period's and cell's cap, within `tolerance` (scaled, as `Formulation.feasible`'s):
    every rule of a problem of `bounds_only`."""
    channels = np.bincount(cells.channel, weights=spend, minlength=len(model.upper))
    periods = np.bincount(cells.period, weights=spend, minlength=len(model.periods))
    return bool(float(spend.sum()) <= model.budget + tolerance and np.all(spend >= -tolerance)
                and np.all(spend <= cells.upper + tolerance)
                and np.all(channels <= np.asarray(model.upper) + tolerance)
                and np.all(channels >= np.asarray(model.lower) - tolerance)
                and np.all(periods <= _period_caps(model) + tolerance))


def solve(model: ScaledProblem, cells: Cells, deadline: float = math.inf,
          past: float | None = None, start: period_prices.Start | None = None
          ) -> tuple[Solution | None, period_prices.Start | None]:
    """The most return among plans on the pieces returning at least target_roi × spend (see the
    module), `optimal` on the pieces (`ceiling` bounds it on the true curves), with where the
    next cut's period prices start; None where the period prices' LP finds no plan (or Newton's
    steps do not settle). `Infeasible` (naming nothing yet, as the MILP's route under
    `infeasibility.unnamed`) where no plan that spends meets the target on the pieces;
    `SolveTimeout` where `deadline` (`time.perf_counter()`) passes before the plan is found, as
    the MILP's would. `past`: a spend (scaled) no plan meeting the target spends more than,
    where Newton's steps start (a coarser cut's `ceiling`); `start`: that cut's period prices."""
    point = _frontier(model, cells, deadline, past, start)
    if point is None:
        if time.perf_counter() >= deadline:
            raise SolveTimeout("no plan meeting target_roi found within the time limit")
        return None, None
    if float(point.plan.spend.sum()) <= EPS:
        raise Infeasible([])
    # The period prices' Lagrangian bounds the most return at the plan's spend alone, not that
    # of plans the curves' rises let spend more (`ceiling` bounds those).
    return replace(point.plan, priced=None), point.start


def ceiling(model: ScaledProblem, cells: Cells, plan: Solution) -> tuple[float, float]:
    """The most return a plan meeting target_roi on the true curves can make, and the most it
    can spend (both scaled), from `solve`'s `plan` on `cells` (see the module)."""
    rise = rises(cells)
    target = float(model.problem.target_roi or 0)
    price = plan.marginal_value or 0.0
    spent = float(plan.spend.sum())
    # The period prices' plan is proven within its gap of F's (their bound holds at its price).
    most = plan.model_return * (1 + (plan.gap or 0.0))
    further = model.budget - spent
    if price < target:
        further = min(further, (most - target * spent + rise) / (target - price))
    further = max(further, 0.0)
    return most + price * further + rise, spent + further


def rises(cells: Cells) -> float:
    """E: the most a plan's return on the true curves can lie above its pieces' (scaled), each
    cell's segments' error times its weight (a deal's pieces are exact)."""
    distinct, curve = cells.curve_of
    errors = np.array([0.0 if segments is None else segments.error
                       for segments in distinct])[curve]
    return float(cells.weight @ errors)


def _frontier(model: ScaledProblem, cells: Cells, deadline: float, past: float | None,
              start: period_prices.Start | None) -> "Point | None":
    """F's plan at s*, the largest budget within the money where its return reaches
    target_roi × s*, by Newton's steps from the money (or `past`) down, never below the floors
    (None where STEPS end first, or the period prices find no plan); `Infeasible` where the
    floors leave no s (see the module)."""
    target = float(model.problem.target_roi or 0)
    curves = Curves.of(cells)
    # What the floors spend as `greedy.fill_segments` sums them: a budget below it is no
    # budget the greedy can keep.
    floors = float(np.clip(0.0, model.lower, model.upper).sum())
    some = np.flatnonzero(curves.size > 0)
    if floors <= EPS and \
            not np.any(curves.value(some, np.zeros(len(some), dtype=np.intp)) > target):
        # No piece returns more than the target a unit: only the plan of nothing meets it
        # (three fills of the money to find so at 1,000 x 52, 0.8 s of CPU).
        return most(model, cells, curves, 0.0, deadline, None, None)
    budget = model.budget if past is None else min(max(past, floors), model.budget)
    point = most(model, cells, curves, budget, deadline, start, None)
    for _ in range(STEPS):
        if point is None:
            return None
        plan = point.plan
        spent = float(plan.spend.sum())
        short = target * spent - plan.model_return
        if short <= NOISE * target * spent:
            return point
        if time.perf_counter() >= deadline:
            raise SolveTimeout("no plan meeting target_roi found within the time limit")
        # h's slope at s is F's price there less t. Without floors it is below 0 where h(s) < 0
        # (h is concave and h(0) = 0), but for floats' noise; with them h(s) < 0 at a slope of
        # at least 0 leaves h < 0 everywhere. The money left unspent is priced at 0.
        price = plan.marginal_value or 0.0
        if price >= target:
            if floors > EPS:
                raise Infeasible([])
            return None
        budget = spent - short / (target - price)
        if budget <= floors:
            if spent <= floors * (1 + NOISE) + EPS:
                # The step's tangent, above h, crosses zero below the floors, from the floors.
                raise Infeasible([])
            budget = floors
        point = most(model, cells, curves, budget, deadline, point.start, point.fill)
    return None


@dataclass(frozen=True)
class Point:
    """F at one budget: the plan, and where the next step's fill starts (the period prices'
    `Start` under caps, else the greedy's `Fill`)."""

    plan: Solution
    start: period_prices.Start | None
    fill: Fill | None


def most(model: ScaledProblem, cells: Cells, curves: Curves, budget: float, deadline: float,
         start: period_prices.Start | None, near: Fill | None) -> Point | None:
    """F(budget): the most return on the pieces with `budget` (scaled) to spend, at least the
    floors, its plan and price (a supergradient of F), `optimal`; None where the period prices'
    LP finds none. `start`, `near`: the last step's, where this one's prices and levels are
    sought first."""
    smaller = with_budget(model, budget)
    if period_prices.applies(model):
        plan, start = period_prices.solve(smaller, cells, deadline, start)
        return None if plan is None else Point(plan, start, None)
    fill = greedy.fill_segments(smaller, curves, near=near)
    return Point(Solution(spend=fill.spend, status="optimal", gap=0.0, solver="greedy",
                          marginal_value=fill.marginal, model_return=fill.model_return),
                 None, fill)


def with_budget(model: ScaledProblem, budget: float) -> ScaledProblem:
    """`model` with `budget` (scaled) to spend."""
    smaller = copy.copy(model)
    smaller.budget = budget
    return smaller


def _period_caps(model: ScaledProblem) -> Floats:
    """Per period, its cap (scaled; infinite where it has none)."""
    return np.array([math.inf if period.cap is None else model.money(period.cap)
                     for period in model.periods])
