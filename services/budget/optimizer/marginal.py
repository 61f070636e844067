"""The marginal value of one more unit of budget for a plan whose choices are its own.

With deals or S-curves the problem is a MILP and has no shadow price of its own; what a planner
reading "one more euro is worth X" needs is the price with the plan's choices kept: the deals
bought (and not), each "min if used" channel used or not, and each curve on the stretch the plan
spends on. That is the budget row's dual in a small LP, the plan's own model: each cell's curve
fixed up to the breakpoint below its spend and free on the segment it spends on (and on the one
below, where it sits on a breakpoint of a concave run), every other rule of the request as it is.
Decisions off the plan (buying another deal, crossing an S-curve's non-concave stretch) are not
one more euro's worth. On a concave problem the plan's segments are where the whole LP's optimum
sits, so the price is the whole LP's.

That price is a chord's: `next_unit_value` takes the same model to the true curves (what the
answer tells), and `first_unit_value` prices the first unit where nothing may be spent yet.

    >>> from decimal import Decimal
    >>> from services.budget.optimizer.problem import Channel, Linear, Problem
    >>> from services.budget.optimizer.scaled import ScaledProblem
    >>> model = ScaledProblem(Problem(total=Decimal(100), decimals=2,
    ...                               channels=(Channel("a", Linear(Decimal(2))),)))
    >>> cells = model.cells(1e-3)
    >>> round(budget_price(model, cells, np.array([1.0]), seconds=5.0), 6)
    2.0
"""
import math
import time

import highspy
import numpy as np
import numpy.typing as npt

from services.budget.optimizer.backends import Row, run_highs, solve_rows
from services.budget.optimizer.curves import Floats, Segments
from services.budget.optimizer.formulation import Formulation, formulate
from services.budget.optimizer.problem import Deal
from services.budget.optimizer.scaled import EPS, Cell, Cells, Indices, ScaledProblem

Bools = npt.NDArray[np.bool_]

# The own model's budget is raised by this (scaled money; the money that can matter is 1) to
# see where the next unit goes: past a kink at the plan, before the next one of any curve
# (segments are at least 1e-4 long), and far above HiGHS's 1e-7 tolerance.
STEP = 1e-5
# A column this far inside its bounds takes part of the step (is basic).
INSIDE = 1e-9
# Rows whose coefficients are returns: the curves' slopes enter them as they enter the
# objective.
RETURN_ROWS = ("target_roi",)
# The Newton step is made again at most this many times as cells and rows leave its set.
REPEATS = 8
# The most prices and linear cells' moves the Newton step solves for at once: a dense system,
# 0.1 s of CPU by least squares at this size, growing with the cube of it.
LARGEST = 400


def budget_price(model: ScaledProblem, cells: Cells, spend: Floats, *,
                 seconds: float) -> float | None:
    """The budget's shadow price with the choices of the plan `spend` (scaled, per cell) kept,
    or None when it is not priced within `seconds` (HiGHS gets what making its LP left)."""
    end = time.perf_counter() + seconds
    local, fixed = _own_segments(cells, spend, model.budget)
    form = formulate(model, local)
    _keep_choices(form, local, spend, fixed)
    # Interior point without presolve, as the polish's LP: on these thin columns it takes a
    # third of the simplex's time (0.1 s against 0.25-0.33 s at 200 x 26 with 5,460 cells).
    run = run_highs(form, end - time.perf_counter(), relax=True, interior=True)
    if run.status != "optimal" or run.row_dual is None:
        return None
    return abs(float(run.row_dual[form.row_index("budget")]))


def next_unit_value(model: ScaledProblem, cells: Cells, spend: Floats, *,
                    seconds: float) -> float | None:
    """What one more unit of budget adds to the objective on the TRUE curves, with the choices
    of the plan `spend` kept (deals, "min if used" channels used or not, each curve on the
    stretch it spends on): the derivative of the best objective in the budget; None when not
    found within `seconds`.

    The plan is optimal on the curves' pieces, not on the curves: a coarse piece's chord can be
    several percent off the curve's slope where the plan spends, and the cells next to the one
    the pieces price disagree on the curve by as much. So the rows the plan meets (`budget_price`'s
    own model, at the plan) and the cells free on a smooth curve (a Hill curve's concave part,
    inside their caps, wherever the pieces put them) are taken as the optimum's, and one Newton
    step on those KKT conditions finds the prices where every free cell's true slope matches its
    rows' prices (`_Newton`). A free cell that the step would take past its bounds, or a row
    whose price comes out on the wrong side, leaves the set and the step is made again.

    Where the plan's kinks decide (no free cell meets the budget: a `points` curve's point, a
    cell at its cap or floor, a linear channel filled; or rows bind that no free cell settles),
    and under target_roi (its row is not linear in the curves), the own model's pieces take
    the true slopes at the plan (`_on_true_slopes`) and its budget is raised by STEP: its price
    is where the next unit goes. Raising the budget is the rule at a kink: the value is the
    right-hand derivative, what the next unit earns, not what the last one did (two channels
    held at their incremental floors are worth the better of their slopes, 0.6636, not a mix).
    The README's example spends 420,000 on video at 0.864948 a unit on a piece whose chord is
    0.917887: its value is 0.864948; two Hill curves whose tangents at the pieces' plan are
    0.685 and 0.632 are valued 0.666 where the true optimum's is 0.6667.
    """
    end = time.perf_counter() + seconds
    local, fixed = _own_segments(cells, spend, model.budget)
    form = formulate(model, local)
    _keep_choices(form, local, spend, fixed)
    budget = form.row_index("budget")
    if model.problem.objective in ("max_return", "max_profit"):
        value = _Newton(model, local, spend, form).price(budget)
        if value is not None:
            return value
    _on_true_slopes(model, local, spend, form)
    form.row_upper[budget] += STEP
    run = run_highs(form, end - time.perf_counter(), relax=True)
    if run.status != "optimal" or run.row_dual is None:
        return None
    return abs(float(run.row_dual[budget]))


class _Newton:
    """The KKT conditions of the plan's rows on the true curves, near the plan `spend`: a free
    cell i (on a smooth concave stretch, inside its bounds) with slope t_i and curvature
    s_i < 0 (both weighted) moves by d_i = (a_i·y − c_i) / s_i, c_i = t_i (− 1 for
    `max_profit`), and the rows stay where they are: Σ a_ri d_i = 0 for each tight row r, so
    (A D Aᵀ) y = A D c with D = diag(1 / s). A free cell on a linear piece (s = 0) fixes
    a_i·y = c_i instead, its move a further unknown."""

    def __init__(self, model: ScaledProblem, cells: Cells, spend: Floats, form: Formulation):
        self.spend = spend
        right = model.true_slopes(cells, spend)
        # Just left of the plan (past `curve_slope`'s EPS), and the curvature over a step in
        # proportion to the spend: a cell of 52 weeks spends 1e-4 of the scaled money.
        near = 2 * EPS + 1e-7 * spend
        left = model.true_slopes(cells, np.maximum(spend - near, 0.0))
        delta = 1e-4 * spend
        with np.errstate(invalid="ignore"):   # ∞ − ∞: a concave Hill curve at 0
            bend = np.divide(model.true_slopes(cells, spend + delta) - model.true_slopes(
                cells, spend - delta), 2 * delta, out=np.zeros(len(spend)), where=delta > 0)
            kink = np.abs(right - left)
        # A curve that ends only where the money does goes on past it (`_own_segments`).
        upper = np.where(cells.upper >= model.budget - EPS, np.inf, cells.upper)
        # Smooth where the slope falls no faster than the curvature says (a kink falls by its
        # jump over a far shorter step).
        smooth = np.isfinite(right) & (kink <= 10 * np.abs(bend) * near + 1e-9 * np.maximum(
            np.abs(right), 1.0)) & (spend > INSIDE) & (spend < upper - INSIDE)
        self.curved = smooth & (bend < -1e-12)
        self.linear = smooth & (np.abs(bend) <= 1e-12)
        self.upper, self.bend = upper, bend
        self.cost = right - (model.problem.objective == "max_profit")
        # Each row's coefficient per cell (every piece of a cell has its cell's coefficient).
        counts = np.diff(form.start)
        row = np.repeat(np.arange(len(counts)), counts)
        x = form.columns_for(cells, spend)
        activity = np.bincount(row, weights=form.value * x[form.index], minlength=len(counts))
        self.at_upper = activity >= form.row_upper - 1e-7
        self.at_lower = activity <= form.row_lower + 1e-7
        on_cell = form.cell_of[form.index] >= 0
        pairs = np.unique(np.c_[row[on_cell], form.cell_of[form.index[on_cell]]], axis=0,
                          return_index=True)[1]
        taken = np.flatnonzero(on_cell)[pairs]
        self.row, self.cell, self.value = row[taken], form.cell_of[form.index[taken]], \
            form.value[taken]

    def price(self, budget: int) -> float | None:
        """The budget's price at the optimum one step away; None where the plan's kinks decide
        where the next unit goes (no free cell meets the budget, or rows bind that no free
        cell settles), or where the system is larger than LARGEST."""
        curved, linear = self.curved.copy(), self.linear.copy()
        tight = self.at_upper | self.at_lower
        for _ in range(REPEATS):
            mine = (curved | linear)[self.cell] & tight[self.row]
            rows = np.unique(self.row[mine])
            if budget not in rows:
                return None if tight[budget] else 0.0
            flat = np.flatnonzero(linear)
            size = len(rows) + len(flat)
            if size > LARGEST:
                return None
            where = np.searchsorted(rows, self.row[mine])
            cell, value = self.cell[mine], self.value[mine]
            inverse = np.where(curved, 1.0 / np.where(curved, self.bend, 1.0), 0.0)
            # A D Aᵀ, summed over each cell's pairs of entries (a cell meets a few rows).
            order = np.argsort(cell, kind="stable")
            cell, where, value = cell[order], where[order], value[order]
            count = np.bincount(cell, minlength=len(self.spend))[cell]
            first = np.repeat(np.arange(len(cell)), count)
            second = np.searchsorted(cell, cell[first]) + np.arange(len(first)) - np.repeat(
                np.cumsum(count) - count, count)
            system = np.zeros((size, size))
            np.add.at(system, (where[first], where[second]),
                      value[first] * value[second] * inverse[cell[first]])
            rhs = np.zeros(size)
            np.add.at(rhs, where, value * inverse[cell] * self.cost[cell])
            on_flat = np.isin(cell, flat)
            at = len(rows) + np.searchsorted(flat, cell[on_flat])
            system[where[on_flat], at] = system[at, where[on_flat]] = value[on_flat]
            rhs[len(rows):] = self.cost[flat]
            solved, _, rank, _ = np.linalg.lstsq(system, rhs, rcond=None)
            if rank < size:
                # More rows bind than free cells settle (cells held by their own floors and
                # caps): the prices are a range, and the next unit's is its least.
                return None
            y = solved[:len(rows)]
            priced = np.bincount(cell, weights=value * y[where], minlength=len(self.spend))
            with np.errstate(invalid="ignore"):   # a cell at 0 on a concave Hill: ∞ · 0
                after = self.spend + np.where(curved, (priced - self.cost) * inverse, 0.0)
            out = curved & ((after < 0.0) | (after > self.upper))
            # For a maximum, a row at its upper bound has a price ≥ 0, at its lower one ≤ 0.
            wrong = (self.at_upper[rows] & (y < -1e-9)) | (self.at_lower[rows] & (y > 1e-9))
            wrong &= rows != budget
            if not out.any() and not wrong.any():
                return max(float(y[int(np.searchsorted(rows, budget))]), 0.0)
            curved[out] = False
            tight[rows[wrong]] = False
        return None


def first_unit_value(model: ScaledProblem) -> float:
    """What the first unit earns where nothing may be spent yet (the money available is 0),
    under `max_return`, `target_roi` and `max_profit` (less 1): the unit is split among the
    channels that may take money as the groups' shares allow, its parts where they earn most.

    A channel may take money where its curve (not a deal: a unit buys none) is not capped at 0,
    its `min` does not hold only if used with a `min` above 0, its incremental cap is above 0,
    and some period's cap is not 0; it earns its best slope at zero spend over those periods
    (weight × R'(0)). The split is an LP over the channels' parts d ≥ 0, Σ d = 1, each group's
    members' Σ d within its shares; infinite (a concave Hill curve) where a channel whose slope
    is infinite may take a part, 0 where no split holds the shares. With a brand group at
    `min_share` 0.5 over a channel of slope 1 and another of 3 outside it, the unit earns
    0.5 × 1 + 0.5 × 3 = 2, where the best slope alone, 3, breaks the share."""
    problem = model.problem
    incremental = problem.incremental
    weights = [float(period.weight) for period in model.periods if period.cap != 0]
    slopes = np.zeros(len(problem.channels))
    allowed = np.zeros(len(problem.channels), dtype=bool)
    for c, channel in enumerate(problem.channels):
        response = channel.response
        if isinstance(response, Deal) or channel.max == 0 or not any(w > 0 for w in weights) \
                or (channel.min_if_used and (channel.min or 0) > 0) or \
                (incremental is not None and channel.id in incremental.previous
                 and incremental.previous[channel.id] * (1 + incremental.tolerance) <= 0):
            continue
        # The scaled curve's slope is the money's: a ratio.
        slopes[c] = max(weights) * float(model.curve_slope(response, np.zeros(1))[0])
        allowed[c] = True
    endless = allowed & np.isinf(slopes)
    if endless.any() and _best_split(model, endless.astype(float), allowed) > 0:
        return math.inf
    best = _best_split(model, np.where(endless, 0.0, slopes), allowed & ~endless)
    return max(best - (problem.objective == "max_profit"), 0.0)


def _best_split(model: ScaledProblem, slopes: Floats, allowed: Bools) -> float:
    """The most Σ slopes · d over splits d of one unit among the `allowed` channels that hold
    every group's shares; 0 where none does."""
    count = len(slopes)
    lp = highspy.HighsLp()
    lp.num_col_ = count
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = slopes
    lp.col_lower_ = np.zeros(count)
    lp.col_upper_ = allowed.astype(float)
    rows: list[Row] = [(list(range(count)), [1.0] * count, 1.0, 1.0)]
    for group in model.problem.groups:
        members = model.members(group)
        rows.append((members, [1.0] * len(members),
                     -np.inf if group.min_share is None else float(group.min_share),
                     np.inf if group.max_share is None else float(group.max_share)))
    split = solve_rows(lp, rows)
    return 0.0 if split is None else float(slopes @ split)


def _on_true_slopes(model: ScaledProblem, cells: Cells, spend: Floats,
                    form: Formulation) -> None:
    """Give each free piece of the own model `form` the true curve's slope at the plan `spend`
    in place of its chord: to the left of the plan for a piece below it, to the right for the
    piece it is on or the one above, in the objective and in target_roi's row. A piece
    at zero spend on a concave Hill curve keeps its chord: its slope there is infinite, and
    the pieces' plan left it at 0 where the curves' optimum gives it a little."""
    on_curve = np.flatnonzero((form.cell_of >= 0) & ~form.integer
                              & (form.col_upper > form.col_lower))
    cell = form.cell_of[on_curve]
    below = (form.columns_for(cells, spend)[on_curve] >= form.col_upper[on_curve] - INSIDE)
    right = model.true_slopes(cells, spend)[cell]
    left = model.true_slopes(cells, np.maximum(spend - 4 * EPS, 0.0))[cell]
    true = np.where(below, left, right)
    change = np.zeros(len(form.cost))
    change[on_curve] = np.where(np.isfinite(true), true - form.return_of[on_curve], 0.0)
    form.cost += change
    rows = np.repeat(np.arange(len(form.row_names)), np.diff(form.start))
    returns = np.isin(np.asarray(form.row_names, dtype=object)[rows], RETURN_ROWS)
    form.value[returns] += change[form.index[returns]]


def _keep_choices(form: Formulation, cells: Cells, spend: Floats, fixed: Bools) -> None:
    """Fix `form`'s integer columns at the plan `spend` and each curve's stretch below its own
    segments (spent in every plan of the own model)."""
    x = form.columns_for(cells, spend)
    lower, upper = form.col_lower, form.col_upper
    lower[form.integer] = upper[form.integer] = np.round(x[form.integer])
    on_cell = np.flatnonzero(form.cell_of >= 0)
    owner = form.cell_of[on_cell]
    first = on_cell[np.r_[True, owner[1:] != owner[:-1]]] if len(on_cell) else on_cell
    base = first[fixed[form.cell_of[first]]]
    lower[base] = upper[base]


def _own_segments(cells: Cells, spend: Floats, budget: float) -> tuple[Cells, Bools]:
    """Each curve cut to the plan's own segments: one segment to the breakpoint below them (its
    chord), then the segment the spend is on, and the one below where the spend sits on a
    breakpoint with a falling slope. Also, per cell, whether it has that chord.

    A curve that ends only because the money available does (no cap of its own) goes on past
    it, at its last slope: more budget would reach further along it. Cut there, the curve's
    end would bind with the budget, and HiGHS could price either."""
    by_curve: dict[int, list[int]] = {}
    for i, cell in enumerate(cells):
        if cell.segments is not None:
            by_curve.setdefault(id(cell.segments), []).append(i)
    cut: list[Segments | None] = [None] * len(cells)
    fixed = np.zeros(len(cells), dtype=bool)
    for mine in by_curve.values():
        seg = cells[mine[0]].segments
        assert seg is not None
        first, last = _own(seg, spend[mine])
        made: dict[tuple[int, int, bool], Segments] = {}
        for i, a, b in zip(mine, first.tolist(), last.tolist()):
            key = (a, b, b == len(seg.lengths) and cells[i].upper >= budget - EPS)
            if key not in made:
                made[key] = _cut(seg, a, b, budget if key[2] else 0.0)
            cut[i], fixed[i] = made[key], a > 0
    local = Cells(cell if segments is None else
                  Cell(cell.channel, cell.period, cell.weight, cell.upper, segments, None,
                       cell.share) for cell, segments in zip(cells, cut))
    return local, fixed


def _own(seg: Segments, spend: Floats) -> tuple[Indices, Indices]:
    """Per spend on `seg`, the segments [first, last) the plan may move on: the one it lies
    on, and the one below it too when it is on a breakpoint where the slope falls (a concave
    joint: a euro more or less there moves on different segments)."""
    knots = np.r_[0.0, np.cumsum(seg.lengths)]
    n = len(seg.lengths)
    k = np.minimum(np.searchsorted(knots, spend + EPS, side="right") - 1, n)
    on_knot = (k >= 1) & (spend <= knots[k] + EPS)
    # On breakpoint k: the segment below, and the one above if the curve is concave there (at
    # the curve's end, only the one below).
    falls = np.r_[seg.slopes[:-1] >= seg.slopes[1:], True]
    below = on_knot & ((k == n) | falls[np.maximum(k - 1, 0)])
    first = np.where(below, k - 1, np.minimum(k, n - 1))
    last = np.where(on_knot & (k == n), n, np.minimum(k, n - 1) + 1)
    return first, last


def _cut(seg: Segments, first: int, last: int, further: float) -> Segments:
    """Segments [first, last) of `seg`, after one segment from 0 to where `first` starts, and
    one `further` long at the last one's slope past them (a piece of its own, so that the
    curve's end is a breakpoint: the plan there spends all below it, `_on_true_slopes`)."""
    lengths, slopes = seg.lengths[first:last], seg.slopes[first:last]
    if further > 0:
        lengths, slopes = np.r_[lengths, further], np.r_[slopes, slopes[-1]]
    if first > 0:
        below = float(seg.lengths[:first].sum())
        earned = float(seg.lengths[:first] @ seg.slopes[:first])
        lengths, slopes = np.r_[below, lengths], np.r_[earned / below, slopes]
    return Segments(lengths=lengths, slopes=slopes, gated=0, error=0.0,
                    hull=np.arange(len(lengths) + 1))
