"""Concave curves under period caps: the greedy with a price per period, proven by a small LP.

Relaxing each period's cap with a price λ_p leaves the greedy's problem (`greedy`) with every
slope in period p lowered by λ_p. The prices are found by a few rounds of adjustment: the
greedy at the current prices gives each channel's level, and each capped period's price then
moves to where its cells, cut at their channel's level plus the price, spend its cap. That
plan is near the optimum but not exact (the channels' levels move with the prices, ties share
money the greedy cannot split across periods), so it only chooses which segments matter: each
cell keeps as columns the segments around its threshold (its channel's level plus its period's
price); those above are bought, those below are not. HiGHS solves that LP (a few columns per
cell, rows for the budget, the capped periods and the channels with a floor or cap) and its row
prices are checked against every segment of every cell: the Lagrangian bound

    L(μ, λ, ν) = μ·B + Σ_p λ_p·C_p + Σ_i ν_i·(U_i or L_i) + Σ_cells Σ_s len_s·max(0, v_s − τ_c),
    τ_c = μ + λ_p + ν_i  (+1 for max_profit),

holds for any such prices, so the LP's plan is proven when it earns L (to float noise). Where a
segment outside a cell's columns is priced to move, the cell's columns widen to take it in and
the LP is solved again (column generation); it ends when the bound meets the plan.

Groups' shares are rows of the same LP: Σ over a group's channels ≤ (or ≥) its share of the
total spend T, a column of its own (T ≤ B, its row Σ spend − T = 0). The greedy starts the
columns knowing nothing of them; their row prices ρ_g then move each member's threshold,
τ_c = μ + λ_p + ν_i + Σ_{g ∋ i} ρ_g (+1), and the bound gains max(0, μ + Σ_g share_g·ρ_g)·B
in place of μ·B, so the same check proves the plan and the same widening finds the columns.
"""
import math
import time
from dataclasses import dataclass, replace

import highspy
import numpy as np

from services.budget.optimizer.backends import (
    Stop,
    hear_deadline,
    new_highs,
    pass_model,
    run_watched,
)
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.greedy import Curves, Fill, Flags, Indices, fill_segments
from services.budget.optimizer.scaled import EPS, Cells, Priced, ScaledProblem, Solution

# Rounds of price adjustment before the LP (each one greedy over every cell).
PRICE_ROUNDS = 12
# The prices have settled when the plan misses the caps by this share of the budget, or
# stalled when a round does not take the miss below this share of the last one. The LP's
# columns (each cell's segments within WINDOW of its threshold) take up such a miss: settled
# at 1e-7, the last rounds (0.1-0.2 s each at 1,000 × 52) closed a few ten-thousandths of the
# budget for the same LP and the same plan to the cent (the trial's 1,000 × 52: 5 greedy
# passes → 4; half the channels capped at a few thousand 7 → 5; weeks of weight 0 6 → 4); at
# 1e-3 the columns missed the caps and widened on three shapes of four.
SETTLED, STALLED = 3e-4, 0.9
# Rounds whose prices move by at least SLOW times the last round's move (in its direction)
# converge too slowly to be walked: the prices leap to where such moves would add up to,
# moving by step / (1 − ratio), the ratio taken as at most LEAP (Aitken's extrapolation).
# Every week capped with channels' floors and caps (`points_all_capped`, 1,000 × 52): the
# moves shrink by 0.7-0.85 a round, 12 rounds left the prices 0.05 off (τ about 2.1); two
# leaps, 8 rounds, 0.03 off. The shapes that settle in 3-5 rounds move by 0.1-0.26 of their
# last move and do not leap.
SLOW, LEAP = 0.5, 0.8
# A cell's columns: its segments worth within this share of its threshold; this many times
# wider when they cannot meet the rows.
WINDOW, WIDER = 1e-3, 8.0
# A round's new columns reach at most this many segments past a cell's columns, twice as far
# each round: the first row prices with groups are far off (the greedy ignores the groups), and
# every segment between its columns and such a threshold made LPs of 120,000 columns (the
# benchmark's 400 × 8 with 200 groups: 21 → 2.8 s). Without groups, PLAIN_GROWTH: trial 21's
# 500 × 26 with every week capped (the greedy's ties put 0.32 of the budget over the caps; a
# first LP 7.7 from its bound, its budget row slack) grew 8 past every cell to 64,000 columns
# (2.0 s of CPU), 2 past to 21,000 (0.5 s) at a gap as near (3e-3, 6e-3); the whole solve
# 3.8 → 2.3 s. With groups 2 chose other deals in `department_l8`'s first plan (14.47 M → 14.42 M).
GROWTH, PLAIN_GROWTH = 8, 2
# An LP whose columns were widened to meet its rows, and whose plan is proven within this
# (relative to its return), has row prices near the optimum's: the next LP's columns start
# again from its plan (`solve`). Further off, its thresholds are too: with every week capped
# at 96 % of an even share (1,000 × 52), the columns started again after an LP at a gap of 3.4
# and grown towards its thresholds took four LPs of 54,000-60,000 columns (13 s of CPU; 8 s
# never starting again); grown from its own columns, one LP of 87,000 at a gap of 1.4e-3,
# then started again, three of 1,500 (4.8 s).
RESTART_GAP = 0.1
# Columns grown towards far-off thresholds (never widened) can be as many: the greedy knows
# nothing of the groups, and trial 21's 500 × 26 with one at `max_share` 0.15 grew to 58,000
# and solved them three times, the second at a gap of 1.4e-7 (6.3 s of CPU); started again
# from that plan, 330 (2.3 s). Such an LP's columns are left only this near the optimum, and
# again only NEARER than the last start: at 1e-2, the benchmark's 200 × 4 with 200 groups
# started again at 1.3e-4 and crept to its optimum in eleven LPs of 200 columns, where the
# LP of 12,600 it left was proven by one more; started again at every plan nearer than the
# last, it never was in twelve. Without groups the greedy knows every row, and a grown LP's plan
# within RESTART_GAP (nearer than the last start) is near enough: trial 21's 500 x 26 with every
# week capped at 0.96 or 1.1 of an even share, a first LP 7.7 from its bound, grew to 64,000
# columns at 3e-3, then solved 71,000 twice (6.4 s of CPU); started again there, 3.8 s.
GROWN_GAP, NEARER = 1e-5, 1e-2
# Column generation rounds before giving up (the MILP route then solves the problem).
LP_ROUNDS = 12
# The plan is proven when the bound is within this of it, relative to its return.
PROVEN_GAP = 1e-9
# A finite stand-in for a channel level of ±∞ (it takes all of its segments, or none).
_FAR = 1e30
# After a stop, unless heeded, the rounds go on this long for a first plan (an LP's, which
# meets every row), and end at the first: a worker waits 5 s for the answer once its stop is
# heard (`shared.workers`), the plan's rounding and writing take the rest. Run to their proven
# plan, the rounds took 9-22 s past a cancel with a group's share (trial 21's 500 × 26 and
# 1,000 × 52): the worker was killed and the plan lost.
STOPPED_SECONDS = 2.0


class _Stopping:
    """`stop` asked until it turns true (asking is what a worker hears), and when it did."""

    def __init__(self, stop: Stop | None, grace: float) -> None:
        self.stop, self.grace = stop, grace
        self.at: float | None = None

    def heard(self) -> bool:
        if self.at is None and self.stop is not None and self.stop():
            self.at = time.perf_counter()
        return self.at is not None

    def late(self) -> bool:
        """Heard, and `grace` after it."""
        at = self.at if self.heard() else None
        return at is not None and time.perf_counter() > at + self.grace


def applies(model: ScaledProblem) -> bool:
    """Whether some period has a cap or some group a share (the problem otherwise is the plain
    greedy's)."""
    return bool(model.problem.groups) or any(period.cap is not None
                                             for period in model.problem.periods)


def solve(model: ScaledProblem, cells: Cells, deadline: float = math.inf,
          start: "Start | None" = None,
          stop: Stop | None = None,
          heed: bool = False) -> tuple[Solution | None, "Start | None"]:
    """The optimum of concave cells under the budget, channel bounds, period caps and groups'
    shares, proven by the bound above, and where the next round starts; no plan when the LP
    finds none (the caller then takes the MILP route, which names the conflict of
    an impossible request), the deadline passes before any LP's plan (after one, that plan is
    the answer, `feasible` with its gap) or, with `heed`, `stop()` turns true.

    `stop` is asked at each round and while an LP runs. Once it turns true the rounds end
    with the last LP's plan (it meets every row), `feasible` with its gap, or, before any,
    go on for STOPPED_SECONDS for one. With `heed` the caller has another answer to give
    (the MILP's first plan: `first_plan`), and a stop ends the rounds with no plan.
    `start`: the last round's, on the same problem cut more coarsely (finer segments move
    its prices very little).
    """
    stopping = _Stopping(stop, 0.0 if heed else STOPPED_SECONDS)
    curves = Curves.of(cells)
    caps = np.array([math.inf if p.cap is None else model.money(p.cap) for p in model.periods])
    period = cells.period
    plain = replace(curves, price=None)
    near = None if start is None else start.near
    if start is not None and model.problem.groups:
        threshold = start.threshold
    else:
        threshold, near = _adjusted(model, curves, period, caps,
                                    np.zeros(len(caps)) if start is None else start.prices, near,
                                    stopping, deadline)
    margin = WINDOW
    low, high = _window(plain, threshold, margin)
    lp = _Restricted(model, plain, period, caps)
    answer = last = None
    restarted = math.inf
    grown_gap, growth = (GROWN_GAP, GROWTH) if model.problem.groups else \
        (RESTART_GAP, PLAIN_GROWTH)
    for round_ in range(LP_ROUNDS):
        if stopping.heard() and answer is not None and not heed:
            return _solution(answer, "feasible"), None
        if stopping.late():
            return None, None
        if time.perf_counter() > deadline:
            # The last LP's plan meets every row and its bound holds at any prices: at the
            # deadline it is the answer, `feasible` with its gap (trial 21's 1,000 x 52 S-curves
            # with a group at 5 s: its first LP's plan at 1.7 s, then the second LP, of 146,000
            # columns, was stopped at the deadline and the request answered no plan).
            return (None, None) if last is None else \
                (_solution(last, "feasible"), _start(last, near))
        answer = lp.solve(low, high, deadline, stopping.late)
        if answer is None and time.perf_counter() > deadline:
            continue
        last = answer or last
        if answer is None:
            # The columns cannot meet the rows (the bought segments spend more than a cap, or
            # the columns reach no floor): widen every cell's window around its threshold, to
            # the whole curve at last; with the whole curves, the request is impossible.
            if margin > 1.0:
                return None, None
            margin *= WIDER
            wide_low, wide_high = _window(plain, threshold, margin) if margin <= 1.0 else \
                (np.zeros_like(low), plain.size)
            low, high = np.minimum(low, wide_low), np.maximum(high, wide_high)
            continue
        if answer.gap <= PROVEN_GAP or not _priced_to_move(plain, answer.threshold, low, high):
            # Proven; or every segment priced to move is a column already, and the gap left
            # is the LP's float noise: the plan is proven within it (the bound holds at any
            # prices). Widening the columns further only made the LP bigger: 74,000 columns
            # solved again for 6 s on a 1,000 × 52 shape, to the same gap of 3e-6.
            return _solution(answer, "optimal"), _start(answer, near)
        if margin > WINDOW and answer.gap <= RESTART_GAP or \
                answer.gap <= min(grown_gap, restarted * NEARER):
            # The columns were widened for the LP to meet its rows (or grew to a plan near the
            # optimum: `grown_gap`), and its row prices are near the optimum's: the columns start
            # again from the cells' segments its plan holds (so the next LP has that plan),
            # grown towards the new thresholds. Every week capped (`points_all_capped`): the LP
            # widened to 34,000 columns solved again with 200 more, 0.4 s; from its plan's 1,000
            # columns, four LPs of 0.05 s. With groups too (the segments the plan holds whole are then one
            # column at their mean slope, which returns what they do): a department's 160 x 52
            # first plan with its floors chosen (`bench/shapes.py`'s `department_l8`) widened
            # to the whole curves, 48,000 columns, then kept them in six more LPs (5.1 s of
            # CPU); started again, 1.1 s.
            low, high = answer.span
            margin, restarted = WINDOW, answer.gap
        near_low, near_high = _window(plain, answer.threshold, WINDOW)
        step = growth << round_
        low, high = np.minimum(low, np.maximum(near_low, low - step)), \
            np.maximum(high, np.minimum(near_high, high + step))
    return None, None


def _start(answer: "_Answer", near: Fill | None) -> "Start":
    return Start(prices=answer.prices, threshold=answer.threshold, near=near, rows=answer.rows)


def _solution(answer: "_Answer", status: str) -> Solution:
    return Solution(spend=answer.spend, status=status, gap=answer.gap, solver="greedy+highs",
                    marginal_value=answer.budget_price, model_return=answer.model_return,
                    priced=answer.priced)


def _adjusted(model: ScaledProblem, curves: Curves, period: Indices, caps: Floats,
              prices: Floats, fill: Fill | None,
              stopping: _Stopping | None = None,
              deadline: float = math.inf) -> tuple[Floats, Fill | None]:
    """Each cell's threshold (its channel's level plus its period's price) after rounds of
    price adjustment from `prices`: the greedy at the periods' prices, then each capped
    period's price moved to where its cells spend its cap (or, converging slowly, leaping
    ahead), until the plan meets the caps or stops getting closer (or `stopping` is late, or
    the `deadline` passes: 1,500 x 52 S-curves' envelopes with 13 capped weeks took 1.3 s of
    CPU, 2.7 s on a loaded machine, past a 5 s limit);
    and the last round's greedy plan. `fill`: a greedy plan at nearby prices (the last
    round's, on the curves cut more coarsely), or none."""
    # The rounds' greedy runs on the cells merged where alike: their thresholds are the same.
    alike, alike_period = _merged(curves, period, caps)
    missed = math.inf
    # The last round's moves of the prices: the next ones guessed from them (`_period_prices`).
    moves: Floats | None = None
    # After a leap: the prices of the step it extrapolated, taken should the leap miss more.
    fallback: Floats | None = None
    # The prices `fill` was made at, where it was made on these cells (not the coarser cut's).
    filled_at: Floats | None = None
    for round_ in range(PRICE_ROUNDS):
        if round_ > 0 and (stopping is not None and stopping.late() or
                           time.perf_counter() > deadline):
            break
        # Each round starts its selections at the last round's levels (the prices move less
        # each round): 30 → 12 rounds of selection on the trial's 1,000 × 52; moved against
        # the prices' move (`_moved`).
        near = fill if filled_at is None or fill is None else \
            _moved(fill, alike, alike_period, prices - filled_at)
        fill = fill_segments(model, replace(alike, price=prices[alike_period]), near=near)
        filled_at = prices
        levels = np.clip(fill.level, -_FAR, _FAR)
        spent = np.bincount(alike_period, weights=fill.spend, minlength=len(caps))
        # What the plan spends over the caps, and under those it prices.
        miss = float(np.maximum(spent - caps, 0.0).sum() +
                     np.where(prices > 0, np.maximum(caps - spent, 0.0), 0.0).sum())
        if fallback is not None and miss > missed and round_ < PRICE_ROUNDS - 1:
            # The leap overshot: back to the step it extrapolated, walked from there.
            prices, fallback, moves = fallback, None, None
            continue
        # Settled, or stalled: ties the greedy shares by channel, not by period, leave a miss
        # no price removes (the LP shares them).
        if miss <= SETTLED * model.budget or miss > STALLED * missed or \
                round_ == PRICE_ROUNDS - 1:
            break
        # The prices close in on their level about as the miss shrinks.
        guess = None if moves is None else moves * (miss / missed)
        missed = miss
        moved = _period_prices(alike, alike_period,
                               levels[alike.channel] + prices[alike_period], prices, caps, guess)
        step = moved - prices
        # Prices that do not move would give this round's plan again (the trial's 1,000 × 52
        # spent its last greedy pass of five so).
        if np.all(np.abs(step) <= EPS * np.maximum(prices, 1.0)):
            break
        # How this step compares with the last one walked (none after a leap).
        ratio = 0.0 if moves is None or fallback is not None else \
            float(step @ moves) / max(float(moves @ moves), EPS * EPS)
        fallback = None
        if SLOW <= ratio < 1.0:
            fallback = moved
            moved = np.maximum(prices + step / (1.0 - min(ratio, LEAP)), 0.0)
        moves = moved - prices
        prices = moved
    return levels[curves.channel] + prices[period], fill


def _moved(fill: Fill, curves: Curves, period: Indices, change: Floats) -> Fill:
    """`fill` with its levels moved as the periods' prices' `change` would move them, as a
    guess for the greedy at the new prices (`Curves.select`): each level down by the change
    its plan's money meets, on average weighted by the money. A price raised by δ in every
    period is the budget's (or a capped channel's) level lowered by δ, the same thresholds:
    with every week capped (`points_all_capped`) the budget's level fell 2.23 → 1.66 over the
    rounds as the prices rose, 5-10 % a round, each move four guesses from the last level
    (`NEAR` 10× further each time); moved, one or two."""
    paid = fill.spend * change[period]
    total = float(fill.spend.sum())
    budget = float(paid.sum()) / total if total > 0 else 0.0
    spent = curves.by_channel(fill.spend, len(fill.level))
    # A channel spending nothing moves as the budget's level does.
    own = np.divide(curves.by_channel(paid, len(fill.level)), spent,
                    out=np.full_like(spent, budget), where=spent > 0)
    return replace(fill, marginal=fill.marginal - budget, level=fill.level - own)


def _merged(curves: Curves, period: Indices, caps: Floats) -> tuple[Curves, Indices]:
    """The cells with those of the uncapped periods merged where alike (the same channel, curve
    and weight), each merged cell's segments as long as all of theirs together; and each cell's
    period (a merged cell's: one of its uncapped ones, whose price is 0). The greedy at the
    periods' prices gives the merged cells what the cells they stand for take together, at the
    same levels: with one weight and 39 weeks of 52 uncapped (`near_linear`), 52,000 cells are
    14,000 in each round."""
    uncapped = ~np.isfinite(caps)[period]
    weight = np.unique(curves.weight, return_inverse=True)[1].ravel()
    alike = (curves.channel * (int(curves.first.max(initial=0)) + 1) + curves.first) * \
        (int(weight.max(initial=0)) + 1) + weight
    # A capped cell is its own (its period's price is its own too): a key no other has.
    key = np.where(uncapped, alike, -1 - curves.cells)
    _, one, times = np.unique(key, return_index=True, return_counts=True)
    # Channel by channel, as the cells come (the greedy's selections need it).
    order = np.argsort(one)
    one, times = one[order], times[order]
    first = curves.first[one]
    many = np.flatnonzero(times > 1)
    running, returns = curves.running, curves.returns
    if len(many):
        # Each curve taken `times` over: its running sums of lengths and returns times that.
        scaled, which = np.unique(np.stack([first[many], times[many]], axis=1), axis=0,
                                  return_inverse=True)
        sizes = curves.size[one[many]][np.unique(which, return_index=True)[1]] + 1
        offsets = np.cumsum(sizes) - sizes
        at = np.repeat(scaled[:, 0], sizes) + np.arange(int(sizes.sum())) - \
            np.repeat(offsets, sizes)
        factor = np.repeat(scaled[:, 1], sizes).astype(float)
        first = first.copy()
        first[many] = len(running) + offsets[which.ravel()]
        running = np.r_[running, running[at] * factor]
        returns = np.r_[returns, returns[at] * factor]
    return Curves(slopes=curves.slopes, running=running, returns=returns,
                  start=curves.start[one], first=first, size=curves.size[one],
                  weight=curves.weight[one], channel=curves.channel[one]), period[one]


def _window(curves: Curves, threshold: Floats, share: float) -> tuple[Indices, Indices]:
    """Per cell, the positions of its segments worth within `share` of its threshold."""
    everyone = curves.cells
    margin = share * np.abs(threshold) + EPS
    low = curves.count(everyone, threshold + margin, strict=True)
    return low, curves.count(everyone, threshold - margin, strict=False, low=low)


def _priced_to_move(curves: Curves, threshold: Floats, low: Indices, high: Indices) -> bool:
    """Whether some cell has a segment outside its columns [low, high) that the bound at
    `threshold` counts: one bought (before `low`) worth less than its threshold, or one not
    bought (from `high` on) worth more."""
    # Segments come by falling slope: only the last bought and the first not bought can be.
    bought = np.flatnonzero(low > 0)
    rest = np.flatnonzero(high < curves.size)
    return bool(np.any(curves.value(bought, low[bought] - 1) < threshold[bought]) or
                np.any(curves.value(rest, high[rest]) > threshold[rest]))


def _period_prices(curves: Curves, period: Indices, threshold: Floats, prices: Floats,
                   caps: Floats, guess: Floats | None = None) -> Floats:
    """Each capped period's price such that its cells, cut at `threshold` (their channel's
    level plus their period's price) moved by the change, spend at most the cap; 0 where the
    cap holds at price 0. `guess`: per period, a guess at the change, which the selection tries
    first (where not 0): it finds the same prices, in 20 rounds where it took 26 (every week
    capped at 1,000 × 52, `points_all_capped`)."""
    order = np.argsort(period, kind="stable")
    mine = period[order]
    ordered = Curves(slopes=curves.slopes, running=curves.running, returns=curves.returns,
                     start=curves.start[order], first=curves.first[order],
                     size=curves.size[order], weight=curves.weight[order],
                     channel=curves.channel[order], price=threshold[order])
    everyone = ordered.cells
    # Candidates: the segments worth more than the period's price at 0 (a change of −λ_p).
    floor = -prices[mine]
    under = ordered.count(everyone, floor, strict=True)
    demand = np.bincount(mine, weights=ordered.taken(everyone, under), minlength=len(caps))
    change = np.where(demand <= caps, -prices, np.nan)

    def fits(amounts: Floats) -> Flags:
        return np.bincount(mine, weights=amounts, minlength=len(caps)) <= caps

    change, _, _ = ordered.select(np.zeros(len(everyone), dtype=np.intp), under, mine, change,
                                  fits, None if guess is None else
                                  np.where(guess != 0, guess, np.nan))
    return np.maximum(prices + np.nan_to_num(change), 0.0)


@dataclass(frozen=True)
class Start:
    """Where a finer round starts: with groups, each cell's threshold, its columns around it
    (the greedy knows nothing of the groups: the trial's 400 × 8 with 200 groups took 4 LPs at
    the second cut from the greedy, 1 from these); else the periods' prices, the price
    adjustment starting there (the cells' thresholds, cut finer, can leave columns that do not
    meet the caps: the trial's 1,000 × 52 then widened to an LP of 72,000 columns, 4.6 s)."""

    prices: Floats           # per period, λ_p
    threshold: Floats        # per cell, τ_c
    near: Fill | None        # the greedy's plan at the last prices, whose levels it tries first
    rows: dict[str, float]   # the bound's row prices, by the MILP's row names (`formulation`)


@dataclass(frozen=True)
class _Answer:
    spend: Floats            # per cell
    model_return: float      # on the segments
    budget_price: float
    gap: float               # the bound's lead over the plan, relative to its return
    threshold: Floats        # per cell, τ_c at the LP's row prices
    prices: Floats           # per period, λ_p
    priced: Priced           # the bound's prices, for the true curves' bound
    rows: dict[str, float]   # the same, by the MILP's row names (`formulation`)
    span: tuple[Indices, Indices]   # per cell, the segments the plan holds in part [from, to)


class _Restricted:
    """The LP over each cell's segments [low, high): those before `low` bought, after `high`
    not; rows for the total spend (a column T ≤ budget), each capped period, each channel with
    a floor or a cap and each group's share of T.

    With groups, a cell's segments before `low` are not bought but one column at their mean
    slope (a restriction: a concave curve returns at least that on any part of them) where a
    group's share can hold them back (a member of a group with a ceiling; every channel where
    a group has a floor): bought outright they could spend more on a group than its share allows,
    and the LP would have no plan however its other columns are chosen. Any other channel's
    are bought, as without groups: a column for each of the 52,000 cells of trial 20's
    department (1,000 x 52, one group of 166 channels at `max_share` 0.35) made LPs of 45,000
    columns, 0.5-0.6 s each; with those of its members' 8,600 cells only, 0.05-0.12 s.
    """

    def __init__(self, model: ScaledProblem, curves: Curves, period: Indices, caps: Floats):
        self.model, self.curves, self.period, self.caps = model, curves, period, caps
        self.threshold = 1.0 if model.problem.objective == "max_profit" else 0.0
        self.lower = np.asarray(model.lower, dtype=float)
        self.upper = np.asarray(model.upper, dtype=float)
        channels = len(self.lower)
        self.capped = np.flatnonzero(np.isfinite(caps))
        self.bounded = np.flatnonzero((self.lower > EPS) | (self.upper < model.budget - EPS))
        # Group rows: each group's floor (≥ 0) and ceiling (≤ 0) on Σ members − share · T.
        # Each named as the MILP's row (`formulation`).
        shares: list[tuple[list[int], float, bool, str]] = [
            (model.members(group), float(share), floor,
             f"group_{'min' if floor else 'max'}:{group.id}")
            for group in model.problem.groups
            for share, floor in ((group.min_share, True), (group.max_share, False))
            if share is not None]
        self.share = np.array([share for _, share, _, _ in shares])
        self.floor = np.array([floor for _, _, floor, _ in shares], dtype=bool)
        self.group_names = [name for *_, name in shares]
        # Row of each period and channel (−1: none); each channel's group rows, CSR-wise.
        self.period_row = np.full(len(caps), -1)
        self.period_row[self.capped] = 1 + np.arange(len(self.capped))
        self.channel_row = np.full(channels, -1)
        self.channel_row[self.bounded] = 1 + len(self.capped) + np.arange(len(self.bounded))
        self.first_group = 1 + len(self.capped) + len(self.bounded)
        pairs = np.array([(member, self.first_group + g) for g, (members, _, _, _) in
                          enumerate(shares) for member in members], dtype=np.intp).reshape(-1, 2)
        pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
        self.member_count = np.bincount(pairs[:, 0], minlength=channels)
        self.member_start = np.r_[0, np.cumsum(self.member_count)[:-1]]
        self.member_row = pairs[:, 1]
        self.rows = self.first_group + len(shares)
        # The channels whose segments before `low` a group's share can hold back: a member of
        # a group with a ceiling; any other's only loosen the ceilings, bought. With a floor,
        # every channel's are held: outside the group they raise the total the floor is a
        # share of, and held only there, the deals' first plan (`first_plan`: deals bought in
        # parts, linear pieces that tie) took another optimum of its LP and chose other deals
        # (`bench/shapes.py`'s `department_l8`, a brand floor: 14.47 M returned, then 14.32 M).
        member = np.zeros((len(shares), channels), dtype=bool)
        for g, (members, _, _, _) in enumerate(shares):
            member[g, members] = True
        self.held = np.any(member[~self.floor], axis=0) | bool(self.floor.any())

    def solve(self, low: Indices, high: Indices, deadline: float,
              stop: Stop | None = None) -> _Answer | None:
        """The LP's plan and its bound (None if the columns cannot meet the rows, or it is
        not solved by `deadline` or before `stop()`: one LP of 2,000 × 55 with period caps ran
        121 s past its deadline, its crossover hearing neither the interrupt nor the time limit;
        it is then left behind)."""
        curves, period, channel = self.curves, self.period, self.curves.channel
        everyone = curves.cells
        channels = len(self.lower)
        bought = curves.taken(everyone, low)
        bought_return = curves.returns[curves.first + low] * curves.weight
        # The columns: cell by cell, its positions low … high − 1; with groups, first one per
        # cell with segments before `low`, for them all.
        width = high - low
        cell = np.repeat(everyone, width)
        position = low[cell] + (np.arange(len(cell)) - np.repeat(np.cumsum(width) - width, width))
        length = curves.running[curves.first[cell] + position + 1] - \
            curves.running[curves.first[cell] + position]
        value = curves.value(cell, position)
        if len(self.share):
            block = np.flatnonzero((bought > EPS) & self.held[channel])
            cell = np.r_[block, cell]
            length = np.r_[bought[block], length]
            value = np.r_[bought_return[block] / bought[block], value]
            bought, bought_return = bought.copy(), bought_return.copy()
            bought[block] = bought_return[block] = 0.0
        rows = np.stack([np.zeros(len(cell), dtype=np.intp), self.period_row[period[cell]],
                         self.channel_row[channel[cell]]], axis=1)
        present = rows >= 0
        # Entries (column, row, coefficient): the rows above, each column's groups, and T's.
        memberships = self.member_count[channel[cell]]
        in_group = np.repeat(np.arange(len(cell)), memberships)
        offset = np.arange(len(in_group)) - np.repeat(np.cumsum(memberships) - memberships,
                                                      memberships)
        group_row = self.member_row[self.member_start[channel[cell]][in_group] + offset]
        total = len(cell)
        column = np.r_[np.nonzero(present)[0], in_group, np.full(1 + len(self.share), total)]
        row = np.r_[rows[present], group_row, 0, self.first_group + np.arange(len(self.share))]
        coefficient = np.r_[np.ones(int(present.sum()) + len(in_group)), -1.0, -self.share]
        order = np.argsort(column, kind="stable")
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = total + 1, self.rows
        lp.col_cost_ = np.r_[value - self.threshold, 0.0]
        lp.col_lower_ = np.zeros(total + 1)
        lp.col_upper_ = np.r_[length, self.model.budget]
        row_lower = np.full(self.rows, -highspy.kHighsInf)
        row_upper = np.zeros(self.rows)
        # Σ columns − T = −(what is bought): T is the total spend.
        row_lower[0] = row_upper[0] = -bought.sum()
        spent = np.bincount(period, weights=bought, minlength=len(self.caps))
        row_upper[1:1 + len(self.capped)] = self.caps[self.capped] - spent[self.capped]
        mine = np.bincount(channel, weights=bought, minlength=channels)[self.bounded]
        row_lower[1 + len(self.capped):self.first_group] = self.lower[self.bounded] - mine
        row_upper[1 + len(self.capped):self.first_group] = np.where(
            self.upper[self.bounded] < self.model.budget - EPS, self.upper[self.bounded] - mine,
            highspy.kHighsInf)
        groups = slice(self.first_group, self.rows)
        row_lower[groups] = np.where(self.floor, 0.0, -highspy.kHighsInf)
        row_upper[groups] = np.where(self.floor, highspy.kHighsInf, 0.0)
        lp.row_lower_, lp.row_upper_ = row_lower, row_upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.r_[0, np.cumsum(np.bincount(column, minlength=total + 1))]
        lp.a_matrix_.index_ = row[order]
        lp.a_matrix_.value_ = coefficient[order]
        lp.sense_ = highspy.ObjSense.kMaximize
        highs = new_highs()
        # The interior point method (its crossover gives a basis, so the row prices the bound
        # needs) is far steadier than the dual simplex here: the simplex took 7 s on some of
        # the benchmark's 400 × 8 LPs with 200 groups (45,000 boxed columns, 200 iterations),
        # it 1.3 s; on a 1,000 × 52 shape with half the channels capped at a few thousand the
        # simplex's first row prices left 9,100 cells priced to move (gap 0.12, then an LP of
        # 74,000 columns, 6 s), its first were proven at once (the whole solve 2.9 s, was
        # 13.5 s of CPU). Presolve is off: it found little to remove on these LPs (one column
        # per segment, few rows) and took most of the time (100 × 13 with tight caps over
        # linear channels: 2.7 → 0.6 s without it), and it called a 3,714-column LP with eight
        # weeks of weight 0 infeasible, whose columns held the last LP's feasible plan. With
        # groups' rows too (it had halved the dual simplex's time there): under the interior
        # point method it costs more than it saves on three of four grouped requests (the
        # benchmark's 200 × 4 and 400 × 8 with 20-200 groups: the LPs' CPU 3.6 → 3.0 s in all,
        # the trial's 400 × 8 0.5 → 0.7 s), the same plans.
        highs.setOptionValue("solver", "ipm")
        highs.setOptionValue("presolve", "off")
        pass_model(highs, lp)
        hear_deadline(highs, deadline)
        if not run_watched(highs, deadline, stop) or \
                highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        solution = highs.getSolution()
        x = np.clip(np.asarray(solution.col_value, dtype=float)[:total], 0.0, length)
        duals = np.asarray(solution.row_dual, dtype=float)
        spend = bought + np.bincount(cell, weights=x, minlength=len(everyone))
        model_return = float(bought_return.sum() + value @ x)
        # The segments the plan holds in part, per cell: from its first segment not wholly
        # bought to past its last bought at all (the groups' columns aside).
        ours = slice(len(cell) - len(position), len(cell))
        part, some = x[ours] < length[ours] * (1 - EPS), x[ours] > 0
        past = low.copy()
        np.maximum.at(past, cell[ours][some], position[some] + 1)
        first = high.copy()
        np.minimum.at(first, cell[ours][part], position[part])
        return self._bound(spend, model_return, duals, (np.minimum(first, past), past))

    def _bound(self, spend: Floats, model_return: float, duals: Floats,
               span: tuple[Indices, Indices]) -> _Answer:
        """The Lagrangian bound at the LP's row prices, over every segment of every cell."""
        curves = self.curves
        prices = np.zeros(len(self.caps))
        prices[self.capped] = np.maximum(duals[1:1 + len(self.capped)], 0.0)
        own = np.zeros(len(self.lower))
        own[self.bounded] = duals[1 + len(self.capped):self.first_group]
        group = duals[self.first_group:]
        group = np.where(self.floor, np.minimum(group, 0.0), np.maximum(group, 0.0))
        # Each channel's price from its groups' rows, and what a unit of T earns at these
        # prices (its cost 0, its entries −1 in the total's row and −share in the groups').
        member = np.repeat(np.arange(len(self.lower)), self.member_count)
        own_groups = np.bincount(member, weights=group[self.member_row - self.first_group],
                                 minlength=len(self.lower))
        total_price = float(duals[0])
        budget = max(total_price + float(self.share @ group), 0.0)
        tau = self.threshold + total_price + prices[self.period] + \
            (own + own_groups)[curves.channel]
        cells = curves.priced(tau)
        ends = np.where(own > 0, self.upper, self.lower)
        constant = budget * self.model.budget + \
            float(prices[self.capped] @ self.caps[self.capped]) + float(own @ ends)
        bound = constant + float(cells.sum())
        objective = model_return - self.threshold * float(spend.sum())
        # Relative to the return, or to a millionth of the budget where it returns less: groups
        # whose floors and ceilings meet only at zero spend leave an optimum of 0, the LP's
        # noise beside it no gap.
        gap = max(bound - objective, 0.0) / max(abs(model_return), 1e-6 * self.model.budget, EPS)
        # T's row price moved by the groups' shares is the budget row's, where the groups'
        # rows are over every cell's spend: Σ members − share · Σ cells.
        rows = {"budget": total_price + float(self.share @ group)}
        periods = self.model.periods
        rows.update((f"period_cap:{periods[p].id}", float(prices[p])) for p in self.capped)
        channels = self.model.problem.channels
        rows.update((f"{'max' if own[c] > 0 else 'min'}:{channels[c].id}", float(own[c]))
                    for c in self.bounded)
        rows.update(zip(self.group_names, group.tolist()))
        return _Answer(spend=spend, model_return=model_return, budget_price=budget, gap=gap,
                       threshold=tau, prices=prices,
                       priced=Priced(threshold=tau, constant=constant, segments=lambda: cells),
                       rows=rows, span=span)
