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

    >>> from decimal import Decimal
    >>> from services.budget.optimizer.problem import Channel, Linear, Problem
    >>> from services.budget.optimizer.scaled import ScaledProblem
    >>> model = ScaledProblem(Problem(total=Decimal(100), decimals=2,
    ...                               channels=(Channel("a", Linear(Decimal(2))),)))
    >>> cells = model.cells(1e-3)
    >>> round(budget_price(model, cells, np.array([1.0]), seconds=5.0), 6)
    2.0
"""
import time

import numpy as np
import numpy.typing as npt

from services.budget.optimizer.backends import run_highs
from services.budget.optimizer.curves import Floats, Segments
from services.budget.optimizer.formulation import formulate
from services.budget.optimizer.scaled import EPS, Cell, Cells, Indices, ScaledProblem

Bools = npt.NDArray[np.bool_]


def budget_price(model: ScaledProblem, cells: Cells, spend: Floats, *,
                 seconds: float) -> float | None:
    """The budget's shadow price with the choices of the plan `spend` (scaled, per cell) kept,
    or None when it is not priced within `seconds` (HiGHS gets what making its LP left)."""
    end = time.perf_counter() + seconds
    local, fixed = _own_segments(cells, spend, model.budget)
    form = formulate(model, local)
    x = form.columns_for(local, spend)
    lower, upper = form.col_lower, form.col_upper
    lower[form.integer] = upper[form.integer] = np.round(x[form.integer])
    # The stretch below each cell's own segment is spent in every plan of this model.
    on_cell = np.flatnonzero(form.cell_of >= 0)
    owner = form.cell_of[on_cell]
    first = on_cell[np.r_[True, owner[1:] != owner[:-1]]] if len(on_cell) else on_cell
    base = first[fixed[form.cell_of[first]]]
    lower[base] = upper[base]
    # Interior point without presolve, as the polish's LP: on these thin columns it takes a
    # third of the simplex's time (0.1 s against 0.25-0.33 s at 200 x 26 with 5,460 cells).
    run = run_highs(form, end - time.perf_counter(), relax=True, interior=True)
    if run.status != "optimal" or run.row_dual is None:
        return None
    return abs(float(run.row_dual[form.row_index("budget")]))


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
    """Segments [first, last) of `seg`, after one segment from 0 to where `first` starts, the
    last one `further` longer."""
    lengths, slopes = seg.lengths[first:last].copy(), seg.slopes[first:last]
    lengths[-1] += further
    if first > 0:
        below = float(seg.lengths[:first].sum())
        earned = float(seg.lengths[:first] @ seg.slopes[:first])
        lengths, slopes = np.r_[below, lengths], np.r_[earned / below, slopes]
    return Segments(lengths=lengths, slopes=slopes, gated=0, error=0.0,
                    hull=np.arange(len(lengths) + 1))
