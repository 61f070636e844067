"""Narrow each curve's segments to where a plan good enough to matter can spend.

Prices y on the rows (an LP's duals) give the Lagrangian bound L(y) = Σ_r y_r·b_r +
Σ_j max over its bounds of (c_j − (Aᵀy)_j)·x_j, which no plan of the envelope model beats, nor
of any model whose curves lie at or below their envelopes (the gated ones). A plan falls short
of L(y) by at least the sum of its columns' losses, and a cell's least loss at spend s is the
convex gap between its best price-adjusted return and its return at s (segments filled in
order). So a plan worth at least `floor` spends, in each cell, inside the interval where that
loss stays within L(y) − floor. The segments wholly below it are merged into one (full in every
such plan) and those wholly above into one (empty): merged, the model's return is at or below
the curve's everywhere and the same inside the intervals, so it keeps every such plan and its
optimum with a fraction of the columns — what HiGHS's presolve and branching pay for.

Only concave runs are merged (a chord lies below a concave curve only), so a gated curve keeps
its gated segments.
"""
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from services.budget.optimizer.curves import Floats, Indices, Segments, upper_hull
from services.budget.optimizer.formulation import Formulation
from services.budget.optimizer.scaled import EPS, Cells

# L(y) − floor is widened by this share (and EPS) against float noise in the prices.
_SAFETY = 1e-6
# `narrowed` asks `stop` once per this many cells: its loop takes 0.1-0.4 s of CPU at 200 x 26
# and grows with the cells, and a cell takes tens of microseconds.
_CHUNK = 500


def prices(form: Formulation, duals: Floats) -> Floats:
    """HiGHS's row duals as Lagrangian prices: for a maximisation a price is ≥ 0 on a row
    bounded above and ≤ 0 on one bounded below; a sign the row's bounds cannot take is 0."""
    y = np.asarray(duals, dtype=float).copy()
    sign = 1.0 if form.maximise else -1.0
    y[(sign * y > 0) & ~np.isfinite(form.row_upper)] = 0.0
    y[(sign * y < 0) & ~np.isfinite(form.row_lower)] = 0.0
    return y


def reduced_costs(form: Formulation, y: Floats) -> Floats:
    """c − Aᵀy per column."""
    row = np.repeat(np.arange(len(form.row_names)), np.diff(form.start))
    return form.cost - np.bincount(form.index, weights=form.value * y[row],
                                   minlength=len(form.cost))


def lagrangian(form: Formulation, y: Floats) -> float:
    """L(y), a bound on every plan of `form` (a maximisation) and of every model whose curves
    lie at or below `form`'s."""
    rhs = np.where(y > 0, form.row_upper, np.where(y < 0, form.row_lower, 0.0))
    d = reduced_costs(form, y)
    return float(y @ rhs + np.maximum(d * form.col_lower, d * form.col_upper).sum())


def intervals(form: Formulation, y: Floats, cells: int, slack: float,
              stop: Callable[[], bool] | None = None) -> tuple[Floats, Floats]:
    """Per cell of the envelope model `form`, the spend interval [low, high] outside which its
    least loss at prices `y` exceeds `slack` (a deal's cell: [0, its upper]); once `stop()`
    turns true the cells left keep [0, inf) (no narrowing, which every plan keeps).

    All cells at once, on the columns in cell order (`formulate` lays each cell's out
    together): a loop over the cells took 0.07-0.16 s of CPU a call on the 137,000 columns of
    100 x 26 other shapes, this 0.01 s; `stop` is asked once, before."""
    slack = slack * (1 + _SAFETY) + EPS
    low, high = np.zeros(cells), np.full(cells, np.inf)
    d = reduced_costs(form, y)
    columns = np.flatnonzero((form.cell_of >= 0) & ~form.integer)
    if not len(columns) or (stop is not None and stop()):
        return low, high
    owner = form.cell_of[columns]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(columns)]))
    widths = form.col_upper[columns]
    # Each cell's breakpoints after its first (at 0, where its value is 0): where its
    # segments, filled in order, end, and the price-adjusted return there.
    knots = _running(widths, starts, run)
    value = _running(d[columns] * widths, starts, run)
    # The best breakpoint (the first of equal ones, 0 where none is above it) and each one's
    # loss from it.
    most = np.maximum(np.maximum.reduceat(value, starts), 0.0)
    position = np.arange(len(columns)) - starts[run] + 1     # breakpoint 1 … of its cell
    none = len(columns) + 1
    top = np.minimum.reduceat(np.where(value == most[run], position, none), starts)
    peak = np.where(most <= 0.0, 0, top)
    inside = most[run] - value <= slack
    first = np.minimum.reduceat(np.where(inside, position, none), starts)
    last = np.maximum.reduceat(np.where(inside, position, -1), starts)
    first = np.where(most <= slack, 0, first)                 # breakpoint 0's loss is `most`
    # Nothing inside (a negative slack): the peak alone.
    first, last = np.minimum(first, peak), np.maximum(last, peak)
    # Each cell's breakpoints, 0 included, laid out one cell after another.
    at = starts + np.arange(len(starts))
    points = np.zeros(len(columns) + len(starts))
    points[np.arange(len(columns)) + run + 1] = knots
    count = np.diff(np.r_[starts, len(columns)])
    cell = owner[starts]
    # The interval reaches into the segments beside the breakpoints within the slack.
    low[cell] = points[at + np.maximum(first - 1, 0)]
    high[cell] = points[at + np.minimum(last + 1, count)]
    return low, high


def _running(values: Floats, starts: Indices, run: Indices) -> Floats:
    """Per run of `values` (runs starting at `starts`; `run` each value's), its running sum."""
    total = np.cumsum(values)
    running: Floats = total - np.r_[0.0, total][starts][run]
    return running


def narrowed(cells: Cells, low: Floats, high: Floats,
             stop: Callable[[], bool] | None = None) -> Cells:
    """`cells` with each curve's concave segments wholly below `low` merged into one and those
    wholly above `high` into one; once `stop()` turns true the cells left are kept whole (a
    model of them keeps every plan the narrowed one would)."""
    made: dict[tuple[int, float, float], Segments] = {}
    out = Cells()
    stopped = False
    for i, cell in enumerate(cells):
        seg = cell.segments
        if stop is not None and not stopped and i % _CHUNK == 0:
            stopped = stop()
        if seg is not None and not stopped:
            key = (id(seg), float(low[i]), float(high[i]))
            if key not in made:
                made[key] = _merged(seg, float(low[i]), float(high[i]))
            cell = replace(cell, segments=made[key])
        out.append(cell)
    return out


def _merged(seg: Segments, low: float, high: float) -> Segments:
    knots = np.r_[0.0, np.cumsum(seg.lengths)]
    n, first = len(seg.lengths), seg.gated
    # Segment k spans [knots[k], knots[k + 1]]: those before `below` end by `low`, those from
    # `above` on start at `high` or later; a run of one is left as it is.
    below = max(int(np.searchsorted(knots[1:], low, side="right")), first)
    if below - first < 2:
        below = first
    above = max(int(np.searchsorted(knots[:-1], high, side="left")), below)
    if n - above < 2:
        above = n
    if below == first and above == n:
        return seg
    keep = np.unique(np.r_[np.arange(first + 1), np.arange(below, above + 1), [n]])
    xs = knots[keep]
    ys = np.r_[0.0, np.cumsum(seg.lengths * seg.slopes)][keep]
    lengths = np.diff(xs)
    hull = upper_hull(xs, ys) if seg.gated else np.arange(len(xs))
    return Segments(lengths=lengths, slopes=np.diff(ys) / lengths, gated=seg.gated,
                    error=seg.error, hull=hull)
