"""Bound the MILP of deals by a search over the deals' choices, each priced with the periods'
caps kept.

The MILP that proves a plan found by `deal_search` has the deals as its only binaries (tangent
gating: every other cell by its envelope). Its LP relaxation buys deals in parts, split across
periods so that no period's cap gives up a whole deal's spend, and lies 0.25-0.6 % above the
plan at 50 x 13 "other shapes", where the answer's error bound leaves the proof 0.02-0.03 %.
HiGHS closed that by its root's cuts and strong branching in 3.2-6.3 s of CPU (its root LP made
from no basis over 25,000 columns), and at 100 x 26 (138,000 columns) found no root bound in
6 s.

The bound here holds for any prices y on the rows (signs as `windows.prices` keeps them): a
plan's objective c·x = y·Ax + d·x ≤ y·b + d·x, d = c − Aᵀy, for every row but the periods'
caps, which are kept. Each cap holds only its own period's columns, so d·x is at most, per
capped period, the most d·x of its columns within the cap, its deals whole (every subset of
those that pay tried) and its curves' columns in any part (taken by d per unit of spend, as the
fractional knapsack is solved), plus every other column at the better end of its bounds. Where
the caps' prices are those of the LP, L(y) prices a deal's spend at its period's price as if the
deal could be split; kept whole, a deal gives up its period's last curve units, which earn
more: 0.32 % above the plan at the root where L(y) is 0.46 %. The LP's prices are the best for
L(y), not for this bound: subgradient steps from them (`tuned`) take it to 0.04 % at the root
(100 x 26: 0.03 %, where L(y) is 0.61 %). A plan of a node (some deals fixed) is bounded the
same way with those deals forced or barred.

The search is best first over the deals' choices (each deal not bought, or bought in one
period): a node is priced from its LP's prices (`bounding`'s LPs, each from the last basis) or
its parent's, whichever bounds it lower, then tuned; its children are bounded at its prices
before any LP of theirs, and a node whose bound is within the gap of the plan is closed. The
LPs need not be of the model bounded (only their prices are used): they are the coarse
curves' model, the bound the real cells'.
"""
import functools
import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt

from services.budget.optimizer.backends import Bounded, Stop, new_highs
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.formulation import Formulation
from services.budget.optimizer.scaled import EPS, Cells
from services.budget.optimizer.windows import prices

# A period's deals that pay are tried as every subset up to this many; past it they are taken
# in parts, as its curves are (a looser bound, still one).
SUBSETS_UPTO = 10
# A subset of deals may pass its period's cap by this (scaled money): a plan the solver holds
# within its tolerance is bounded too.
SLACK = 1e-7
# The rows `formulate` makes for a gated cell's segments.
_GATES = ("fill_", "open_")
# The subgradient steps that price a node below the root (`tuned`), and how many steps
# without a gain halve the step.
NODE_STEPS, STALL = 10, 3
# The master's rounds that price the root (`mastered`), and how far each round's prices are
# taken towards the best so far.
ROOT_ROUNDS, SMOOTHING = 60, 0.5
# The master's rounds end once the bound is within this share of the master's value.
CLOSE = 1e-7
# Each deal channel's choice: the cell it is bought in, None where it is not bought.
Fixed = dict[int, int | None]


class Deals:
    """A formulation's deal columns (per deal channel, its cells' columns) and its periods'
    caps (per cap, its curves' columns and its deals' columns), laid out once per model."""

    def __init__(self, form: Formulation, cells: Cells):
        columns = np.flatnonzero(form.integer & (form.cell_of >= 0))
        columns = columns[cells.is_deal[form.cell_of[columns]]]
        self.columns = columns
        self.column_of = {int(form.cell_of[j]): int(j) for j in columns}
        self.channels: dict[int, list[int]] = {}
        for j in columns:
            cell = int(form.cell_of[j])
            self.channels.setdefault(int(cells.channel[cell]), []).append(cell)
        self.row = np.repeat(np.arange(len(form.row_names)), np.diff(form.start))
        self.caps = np.array([r for r, name in enumerate(form.row_names)
                              if name.startswith("period_cap:")], dtype=np.intp)
        is_deal = np.zeros(len(form.cost), dtype=bool)
        is_deal[columns] = True
        # A cap's entries: the curves' (cap, column, spend) in cap order, and its deals'.
        entries = np.concatenate([np.arange(form.start[r], form.start[r + 1])
                                  for r in self.caps]) if len(self.caps) else \
            np.zeros(0, dtype=np.intp)
        cap = np.repeat(np.arange(len(self.caps)), np.diff(form.start)[self.caps])
        curve = ~is_deal[form.index[entries]]
        self.curve_cap, self.curve = cap[curve], form.index[entries][curve]
        self.curve_spend = form.value[entries][curve]
        self.deal_in_cap = [form.index[entries][~curve & (cap == k)]
                            for k in range(len(self.caps))]
        self.deal_spend = [form.value[entries][~curve & (cap == k)]
                           for k in range(len(self.caps))]
        in_cap = np.zeros(len(form.cost), dtype=bool)
        in_cap[form.index[entries]] = True
        self.rest = ~in_cap & ~is_deal          # every other column: at its better end
        self.loose = columns[~in_cap[columns]]  # deals in uncapped periods

    def bounds(self, form: Formulation, fixed: Fixed) -> tuple[Floats, Floats]:
        """`form`'s column bounds with the deals of `fixed` bought where it says, not elsewhere."""
        lower, upper = form.col_lower.copy(), form.col_upper.copy()
        for channel, chosen in fixed.items():
            for cell in self.channels.get(channel, ()):
                j = self.column_of[cell]
                lower[j] = upper[j] = 1.0 if cell == chosen else 0.0
        return lower, upper


class Priced:
    """The bound at prices `y` on `form` (a maximisation), the periods' caps kept."""

    def __init__(self, form: Formulation, deals: Deals, y: Floats):
        y = y.copy()
        y[deals.caps] = 0.0
        d = form.cost - np.bincount(form.index, weights=form.value * y[deals.row],
                                    minlength=len(form.cost))
        self.form, self.y, self.d, self.deals = form, y, d, deals
        rhs = np.where(y > 0, form.row_upper, np.where(y < 0, form.row_lower, 0.0))
        rest = deals.rest
        self.constant = float(y @ rhs) + float(np.maximum(d[rest] * form.col_lower[rest],
                                                          d[rest] * form.col_upper[rest]).sum())
        # Per cap, its curves' most d·x within the room left as a concave function of that
        # room: their columns that pay, best per unit of spend first, as cumulative spend
        # and gain (`curves`).
        j, a, cap = deals.curve, deals.curve_spend, deals.curve_cap
        low, high = form.col_lower[j], form.col_upper[j]
        count = len(deals.caps)
        self.base = np.bincount(cap, weights=d[j] * low, minlength=count)
        self.room = form.row_upper[deals.caps] - np.bincount(cap, weights=a * low,
                                                             minlength=count)
        pays = np.flatnonzero((d[j] > 0) & (high > low))
        # Each cap's paying curve columns (positions in `deals.curve`), in the order filled.
        pays = pays[np.lexsort((-(d[j][pays] / a[pays]), cap[pays]))]
        widths = np.cumsum((high - low)[pays] * a[pays])
        gains = np.cumsum((d[j] * (high - low))[pays])
        ends = np.cumsum(np.bincount(cap[pays], minlength=count))
        self.curves, self.filled = [], []
        for first, end in zip(np.r_[0, ends[:-1]].tolist(), ends.tolist()):
            # Running sums from the cap's first column (one cumsum for all: a cumsum per cap
            # took a fifth of the pricing).
            before = (widths[first - 1], gains[first - 1]) if first else (0.0, 0.0)
            self.curves.append((np.concatenate(([0.0], widths[first:end] - before[0])),
                                np.concatenate(([0.0], gains[first:end] - before[1]))))
            self.filled.append(pays[first:end])

    def bound(self, lower: Floats, upper: Floats) -> float:
        """No plan whose deal columns lie within `lower`, `upper` has a larger objective."""
        d, deals = self.d, self.deals
        j = deals.loose
        total = self.constant + float(np.maximum(d[j] * lower[j], d[j] * upper[j]).sum())
        for k, (widths, gains) in enumerate(self.curves):
            cols, spend = deals.deal_in_cap[k], deals.deal_spend[k]
            forced = lower[cols] > 0.5
            free = ~forced & (upper[cols] > 0.5) & (d[cols] > 0)
            room = float(self.room[k] - spend[forced].sum())
            total += float(self.base[k] + d[cols][forced].sum()) + \
                _most(room, widths, gains, d[cols][free], spend[free])[0]
            if total == -math.inf:
                break
        return total

    def plan(self, lower: Floats, upper: Floats) -> Floats:
        """The column values the bound takes: each cap's deals and curves as `_most` fills
        it, every other column at the better end of its bounds."""
        form, d, deals = self.form, self.d, self.deals
        x = np.where(d > 0, form.col_upper, form.col_lower)
        on = deals.columns
        x[on] = np.where(d[on] > 0, upper[on], lower[on])
        j, a = deals.curve, deals.curve_spend
        x[j] = form.col_lower[j]
        for k, (widths, gains) in enumerate(self.curves):
            cols, spend = deals.deal_in_cap[k], deals.deal_spend[k]
            forced = lower[cols] > 0.5
            free = ~forced & (upper[cols] > 0.5) & (d[cols] > 0)
            room = float(self.room[k] - spend[forced].sum())
            _, bought, left = _most(room, widths, gains, d[cols][free], spend[free])
            x[cols] = 0.0
            x[cols[forced]] = 1.0
            x[cols[free][bought]] = 1.0
            run = self.filled[k]
            width = (form.col_upper[j[run]] - form.col_lower[j[run]]) * a[run]
            x[j[run]] += np.clip(left - (np.cumsum(width) - width), 0.0, width) / a[run]
        return x

    def slopes(self, lower: Floats, upper: Floats) -> Floats:
        """A subgradient of the bound in the prices (a row's right-hand side less its activity
        at the columns the bound takes), 0 on the caps, which are kept."""
        form, deals = self.form, self.deals
        x = self.plan(lower, upper)
        activity = np.bincount(deals.row, weights=form.value * x[form.index],
                               minlength=len(self.y))
        side = np.where(self.y > 0, form.row_upper, np.where(
            self.y < 0, form.row_lower, np.clip(activity, form.row_lower, form.row_upper)))
        slopes: Floats = side - activity
        slopes[deals.caps] = 0.0
        return slopes


@functools.cache
def _subsets(count: int) -> Floats:
    """Every subset of `count` items, one a row (1: in it)."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=count)))


def _most(room: float, widths: Floats, gains: Floats, deal_gain: Floats,
          deal_spend: Floats) -> tuple[float, npt.NDArray[np.bool_], float]:
    """The most of a period's curves (their value at each spend `widths` → `gains`, concave)
    and its deals (each whole) within `room` (−inf where even none fit), the deals it buys and
    the room it leaves the curves."""
    none = np.zeros(len(deal_gain), dtype=bool)
    if room < -SLACK:
        return -math.inf, none, 0.0
    if len(deal_gain) > SUBSETS_UPTO:
        # Taken in parts: the deals join the curves' columns, best per unit first (its
        # deals and room are a subgradient's only, which any choice may be).
        every = np.r_[np.diff(widths), deal_spend]
        gain = np.r_[np.diff(gains), deal_gain]
        order = np.argsort(-(gain / every), kind="stable")
        return float(np.interp(max(room, 0.0), np.r_[0.0, np.cumsum(every[order])],
                               np.r_[0.0, np.cumsum(gain[order])])), none, max(room, 0.0)
    subsets = _subsets(len(deal_gain))
    left = np.maximum(room - subsets @ deal_spend, 0.0)
    values = np.where(room - subsets @ deal_spend >= -SLACK,
                      subsets @ deal_gain + np.interp(left, widths, gains), -math.inf)
    best = int(np.argmax(values))
    return float(values[best]), subsets[best] > 0.5, float(left[best])


class _Master:
    """Dantzig-Wolfe's master over the bound's blocks (each capped period's columns, and every
    other column): the most a convex combination of each block's points seen so far (the
    plan's, and those the bound took at each prices) earns within every row but the caps. Its
    row prices are where those points' bound is least (Kelley's cutting planes in the
    prices), and its value is at most any prices' bound: each point keeps its cap, and its
    deals are whole."""

    def __init__(self, form: Formulation, deals: Deals, plan: Floats):
        kept = np.ones(len(form.row_names), dtype=bool)
        kept[deals.caps] = False
        self.rows = np.flatnonzero(kept)
        block = np.full(len(form.cost), len(deals.caps))
        block[deals.curve] = deals.curve_cap
        for k, columns in enumerate(deals.deal_in_cap):
            block[columns] = k
        # Blocks numbered as the master's convexity rows, only those with columns.
        blocks, block = np.unique(block, return_inverse=True)
        self.block, self.blocks = block, len(blocks)
        # The kept rows' entries, each as its block's (row, block) cell of the activity.
        entries = np.flatnonzero(kept[deals.row])
        self.entries = entries
        self.cell = block[form.index[entries]] * len(self.rows) + \
            (np.cumsum(kept)[deals.row[entries]] - 1)
        self.form = form
        self.highs = new_highs()
        self.highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        lower, upper = form.row_lower[self.rows], form.row_upper[self.rows]
        infinite = highspy.kHighsInf
        self.highs.addRows(len(self.rows), np.where(np.isfinite(lower), lower, -infinite),
                           np.where(np.isfinite(upper), upper, infinite), 0,
                           np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        # Each block's weights add up to 1.
        ones = np.ones(self.blocks)
        self.highs.addRows(self.blocks, ones, ones, 0, np.zeros(0, np.int32),
                           np.zeros(0, np.int32), np.zeros(0))
        self.add(plan)

    def add(self, x: Floats) -> None:
        """The blocks of the column values `x` as the master's columns."""
        form, count, blocks = self.form, len(self.rows), self.blocks
        entries = self.entries
        activity = np.bincount(self.cell, weights=form.value[entries] * x[form.index[entries]],
                               minlength=blocks * count).reshape(blocks, count)
        # Each column: its rows' activity, then a 1 in its block's convexity row.
        matrix = np.hstack([activity, np.eye(blocks)])
        columns, rows = np.nonzero(matrix)
        starts = np.searchsorted(columns, np.arange(blocks)).astype(np.int32)
        earned = np.bincount(self.block, weights=form.cost * x, minlength=blocks).astype(float)
        self.highs.addCols(blocks, earned, np.zeros(blocks), np.full(blocks, highspy.kHighsInf),
                           len(rows), starts, rows.astype(np.int32),
                           matrix[columns, rows].astype(float))

    def prices(self) -> tuple[float, Floats] | None:
        """The master's value and its prices on `form`'s rows (0 on the caps), None where it
        is not solved."""
        self.highs.run()
        if self.highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        y = np.zeros(len(self.form.row_names))
        y[self.rows] = np.asarray(self.highs.getSolution().row_dual)[:len(self.rows)]
        return float(self.highs.getInfo().objective_function_value), prices(self.form, y)


def mastered(start: Priced, plan: Floats, target: float, rounds: int,
             over: Stop) -> tuple[Priced, float]:
    """The prices that bound every plan (no deal fixed) lowest, from `start` and up to `rounds`
    of the master's (`_Master`, from the plan `plan`: column values of `start`'s model), each
    taken halfway towards the best so far where the last gained (Wentges' smoothing; where
    it did not, the master's own), until the bound is within `target` or within CLOSE of the
    master's value (the least any prices reach), or `over()`. At 50 x 13 other shapes the root
    is proven within the gap in 6-13 rounds (0.15-0.27 s of CPU) where the subgradient's 60
    steps left it 0.04 % above the plan."""
    form, deals = start.form, start.deals
    lower, upper = form.col_lower, form.col_upper
    master = _Master(form, deals, plan)
    best, value = start, start.bound(lower, upper)
    master.add(start.plan(lower, upper))
    gained = False
    for _ in range(rounds):
        if value <= target or over():
            break
        made = master.prices()
        if made is None or value - made[0] <= CLOSE * max(abs(value), EPS):
            break   # no prices bound the plans below the master's value
        y = SMOOTHING * best.y + (1 - SMOOTHING) * made[1] if gained else made[1]
        current = Priced(form, deals, prices(form, y))
        now = current.bound(lower, upper)
        master.add(current.plan(lower, upper))
        gained = now < value
        if gained:
            best, value = current, now
    return best, value


@dataclass(order=True)
class _Node:
    key: float                                    # −bound, for the heap
    order: int
    fixed: Fixed = field(compare=False)
    parent: Priced | None = field(default=None, compare=False)  # its parent's prices
    x: Floats | None = field(default=None, compare=False)        # its LP's point, once solved
    priced: Priced | None = field(default=None, compare=False)  # its own prices

    @property
    def bound(self) -> float:
        return -self.key


def on_rows(form: Formulation, other: Formulation, duals: Floats) -> Floats:
    """`other`'s row prices `duals` on `form`'s rows of the same name; the others (the gated
    cells' own rows, which differ with the cut) at 0: any prices of the right signs bound."""
    rows = {name: r for r, name in enumerate(other.row_names) if not name.startswith(_GATES)}
    y = np.zeros(len(form.row_names))
    for r, name in enumerate(form.row_names):
        if name in rows:
            y[r] = duals[rows[name]]
    return y


def bound(form: Formulation, cells: Cells, plan: Floats, floor: float, gap: float, y: Floats,
          lps: Callable[[], tuple[Formulation, Bounded]], until: float,
          stop: Stop | None = None) -> float | None:
    """A bound on the objective of `form`'s plans (a maximisation whose only binaries that
    matter are its deals; any other is taken in parts), searched until it is within `gap` of
    `floor` (the objective of the plan `plan`, its column values of `form`, which meet its
    rows) or `until` (a `time.perf_counter()` instant) or once `stop()` turns true (asked
    between the prices' rounds too). The root is priced from `y` (prices on `form`'s rows:
    any of the right signs bound); only where that does not prove the plan are the nodes
    searched, by the LPs `lps()` makes: a formulation of the same request's rows and cells
    (any cut of the curves) and its LP with the column bounds given, which price each node.
    None where no prices bound (a cap no plan keeps)."""
    target = floor + gap * max(abs(floor), EPS)

    def over() -> bool:
        # A node's steps take 10-50 ms each (25,000-138,000 columns): 60 of them at the root
        # would keep a cancel waiting seconds.
        return time.perf_counter() >= until or (stop is not None and stop())
    deals = Deals(form, cells)
    root, value = mastered(Priced(form, deals, prices(form, y)), plan, target, ROOT_ROUNDS, over)
    if value <= target or over():
        return None if value == -math.inf else value
    # The LPs only now: at 50 x 13 other shapes the root's prices prove the plan, and making
    # the coarse curves' model took as long as the bound (0.06 s of CPU).
    lp_form, solve = lps()
    lp_deals = Deals(lp_form, cells)
    same = lp_form is form

    def priced(duals: Floats) -> Priced:
        return Priced(form, deals, prices(form, on_rows(form, lp_form, duals)))

    closed = -math.inf            # the most a closed node's plans can reach
    counter = itertools.count()
    heap = [_Node(-value, next(counter), {}, priced=root)]
    while heap:
        node = heap[0]
        if node.bound <= max(target, closed):
            break
        heapq.heappop(heap)
        if node.priced is None or node.x is None:
            run = solve(*lp_deals.bounds(lp_form, node.fixed), until)
            if run.status == "none":
                heapq.heappush(heap, node)
                break
            if run.status == "infeasible" or run.row_dual is None or run.x is None:
                if same and run.status == "infeasible":
                    continue      # no plan in it
                heapq.heappush(heap, node)
                break
            node.x = run.x
            if node.priced is None:
                lower, upper = deals.bounds(form, node.fixed)
                start = priced(run.row_dual)
                assert node.parent is not None
                if node.parent.bound(lower, upper) < start.bound(lower, upper):
                    start = node.parent
                node.priced, value = tuned(start, lower, upper, floor, target, NODE_STEPS,
                                           over)
                node.key = -min(node.bound, value)
                if node.bound <= target:
                    closed = max(closed, node.bound)
                    continue
                heapq.heappush(heap, node)
                continue
        free = [c for c in deals.channels if c not in node.fixed]
        if not free:
            closed = max(closed, node.bound)   # every deal chosen: nothing left to split
            continue
        x = node.x
        # The deal the LP splits most (weighing the others' children at the node's prices as
        # well took more time than the LPs it saved).
        chosen = max(free, key=lambda c: _split(x, lp_deals, c))
        for fixed, child in _children(node, chosen, deals, form):
            if child <= target:
                closed = max(closed, child)
            else:
                heapq.heappush(heap, _Node(-min(child, node.bound), next(counter), fixed,
                                           node.priced))
        if over():
            break
    most = max([closed, *(n.bound for n in heap)])
    return None if most == -math.inf else most


def tuned(start: Priced, lower: Floats, upper: Floats, floor: float, target: float,
           steps: int, over: Stop) -> tuple[Priced, float]:
    """The prices from `start` that bound the plans within `lower`, `upper` lowest, found by
    up to `steps` subgradient steps (Polyak's, towards `floor`, halved after STALL steps that
    gain nothing), until the bound is within `target` or `over()`: the LP's prices are the
    best for L(y), not for the bound that keeps the caps (at 50 x 13 other shapes, 0.33 % above
    the plan at the LP's prices, 0.04 % after 40 steps; 100 x 26: 0.61 % by L(y), 0.03 %)."""
    form, deals = start.form, start.deals
    best, value = start, start.bound(lower, upper)
    current, now = best, value
    step, stall = 1.0, 0
    for _ in range(steps):
        if value <= target or now <= floor or over():
            break
        slopes = current.slopes(lower, upper)
        norm = float(slopes @ slopes)
        if norm <= 0.0:
            break
        y = current.y - step * (now - floor) / norm * slopes
        current = Priced(form, deals, prices(form, y))
        now = current.bound(lower, upper)
        if now < value:
            best, value, stall = current, now, 0
        else:
            stall += 1
            if stall == STALL:
                step, stall = step / 2, 0
    return best, value


def _children(node: _Node, channel: int, deals: Deals,
              form: Formulation) -> list[tuple[Fixed, float]]:
    """Each choice of the deal `channel` below `node` (not bought, or bought in one of its
    periods), bounded at the node's prices."""
    assert node.priced is not None
    made = []
    for choice in (None, *deals.channels[channel]):
        if choice is not None and form.col_upper[deals.column_of[choice]] < 0.5:
            continue
        fixed = {**node.fixed, channel: choice}
        made.append((fixed, node.priced.bound(*deals.bounds(form, fixed))))
    return made


def _split(x: Floats, deals: Deals, channel: int) -> float:
    """How far the LP's point `x` is from choosing the deal `channel` whole: 0 where it buys it
    in one period or not at all."""
    bought = np.array([x[deals.column_of[cell]] for cell in deals.channels.get(channel, ())
                       if cell in deals.column_of])
    if not len(bought):
        return 0.0
    return 1.0 - max(float(bought.max()), 1.0 - float(bought.sum()))
