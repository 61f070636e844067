"""`min_spend` over concave curves, by the greedy's frontier: no MILP.

F(s), the most return of a plan spending at most s, is the greedy's return with a budget of s
(`greedy.fill_segments`; under period caps the greedy with period prices, `period_prices`):
concave and non-decreasing in s from the channels' floors, L, up. The least spend reaching a
target T is s*, where F(s*) = T, and the greedy's plan there is the answer on the pieces. Where
F at the money is below T, no plan reaches the target (`Infeasible`, named from the plan of most
return, as the MILP's route names it: `solver._most_return_cut`).

The greedy's price λ at s (the budget's row price) is a supergradient of F there: F(x) ≤ F(s) +
λ·(x − s) for every x. So a step s + (T − F(s)) / λ never passes s*, from below or from above:
one step from the money down, then Newton's steps up, each a greedy's fill, stop at s* (on the
pieces F is piecewise linear, and a step from s*'s own segment lands on it). Example: one
channel whose first 10 units return 5 each and next 10 return 1 each, target 60: F(20) = 60 at
price 1, the step down lands on 20 − 0 = 20; a target of 55 steps down to 15, F(15) = 55.

The bound: a plan on the true curves returns at most its pieces' return plus the curves' rises
above them, E (`roi_frontier.rises`), so one reaching T returns T − E on the pieces and spends
at least s* − (F(s*) − T + E) / λ*, λ* the price at s*: `error`.
"""
import math
import time
from decimal import Decimal

from services.budget.optimizer import greedy, period_prices
from services.budget.optimizer.answer import Infeasible, SolveTimeout
from services.budget.optimizer.greedy import Curves
from services.budget.optimizer.roi_frontier import NOISE, STEPS, most, rises
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem, Solution

# Where F's tangent proves less, F is read at this share less spend than the plan's: half of
# the error an `optimal` answer allows, the rest left for the units the rounding adds.
PROBE = 0.5e-3


def applies(model: ScaledProblem, cells: Cells) -> bool:
    """Whether `solve` answers this problem: min_spend over concave curves (no deal, no
    conditional floor) with no group's share (F's price there is not the budget's row alone)."""
    problem = model.problem
    return problem.objective == "min_spend" and problem.target_return is not None and \
        not problem.groups and greedy.concave_curves(model, cells)


def solve(model: ScaledProblem, cells: Cells, deadline: float = math.inf,
          start: period_prices.Start | None = None
          ) -> tuple[Solution | None, period_prices.Start | None]:
    """The greedy's plan at s*, the least spend whose most return on the pieces reaches
    target_return (see the module), `optimal` on the pieces (`error` bounds it on the true
    curves), with where the next cut's period prices start; where the steps (at most STEPS) end
    first, the least budget tried that reaches the target (`error` bounds it too); None where
    the greedy with period prices finds no plan (the MILP's route then answers).
    `Infeasible` (naming nothing yet) where the most return at the money falls short of the
    target; `SolveTimeout` where `deadline` (`time.perf_counter()`) passes first."""
    target = model.money(model.problem.target_return or Decimal(0))
    curves = Curves.of(cells)
    high = most(model, cells, curves, model.budget, deadline, start, None)
    if high is None:
        return None, None
    if high.plan.model_return < target * (1 - NOISE):
        raise Infeasible([])
    # s* lies in [low, top]: F(low) < target (or low is the floors' spend, which no plan
    # spends less than), F(top) ≥ target, `high` its plan.
    low, top = float(sum(model.lower)), model.budget
    budget = _below(top, high.plan, target, low)
    # What the last plan below s* lacked of the target, and where its Newton's step lands.
    lacked, step = math.inf, low
    point = high
    for _ in range(STEPS):
        if time.perf_counter() >= deadline:
            raise SolveTimeout("no plan meeting target_return found within the time limit")
        if top - low <= NOISE * top:
            break
        found = most(model, cells, curves, budget, deadline, point.start, point.fill)
        if found is None:
            return None, None
        point = found
        short = target - point.plan.model_return
        if abs(short) <= NOISE * target:
            return point.plan, point.start
        price = point.plan.marginal_value or 0.0
        if short < 0:
            # A bisection's plan, past s*.
            high, top = point, budget
        elif price <= EPS:
            # F is flat here, below the target it reaches at the money: floats' noise.
            return None, None
        else:
            # Newton's steps from below close in fast where F bends little, slowly where the
            # pieces past here fall steeply: a step that took off less than half of what was
            # lacked is followed by a bisection.
            slow = short > lacked / 2
            low, lacked, step = budget, short, budget + short / price
            if slow:
                budget = (low + top) / 2
                continue
        budget = min(max(step, _below(top, high.plan, target, low)), top)
    # The steps ended (or the bracket closed) above s*: the plan at the bracket's top meets the
    # target, and `error` bounds it.
    return high.plan, high.start


def _below(budget: float, plan: Solution, target: float, low: float) -> float:
    """The step from `budget`, whose `plan` returns at least `target`, down F's tangent to the
    target: at most s* (F's price is a supergradient), and at least `low`."""
    price = plan.marginal_value or 0.0
    if price <= EPS:
        return low
    return max(low, budget - (plan.model_return - target) / price)


def error(model: ScaledProblem, cells: Cells, plan: Solution,
          deadline: float = math.inf) -> float:
    """How much less a plan reaching target_return on the true curves could spend than `solve`'s
    `plan`, relative to its spend (see the module); 0 for a plan of nothing. Where F's tangent
    proves less than half of TARGET_ERROR (its price at a kink may be the slope past it: 0
    where a channel's cap ends F's rise), F is read at that much less spend: below target − E
    there (F never falls), no plan reaching the target spends that little."""
    spent = float(plan.spend.sum())
    if spent <= EPS:
        return 0.0
    target = model.money(model.problem.target_return or Decimal(0))
    rise = rises(cells)
    price = plan.marginal_value or 0.0
    # The period prices' plan is proven within its gap of F's (their bound holds at its price).
    excess = plan.model_return * (1 + (plan.gap or 0.0)) - target + rise
    least = float(sum(model.lower))
    if price > EPS:
        least = max(least, spent - excess / price)
    probe = spent * (1 - PROBE)
    if least < probe and time.perf_counter() < deadline:
        point = most(model, cells, Curves.of(cells), probe, deadline, None, None)
        if point is not None and \
                point.plan.model_return * (1 + (point.plan.gap or 0.0)) < target - rise:
            least = probe
    return max(spent - least, 0.0) / spent
