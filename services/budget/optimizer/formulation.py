"""The MILP over a scaled problem's cells as arrays: columns, rows and their bounds, built with
numpy in one pass per constraint family (no per-variable objects), for HiGHS's matrix interface
or, through `to_pulp`, for CBC and LP files.

Each cell's curve is modelled exactly (its segments, the leading ones gated in order by
binaries where the curve is not concave) or by its concave envelope (the hull's segments, no
binaries): a relaxation that is exact wherever the plan is on a hull breakpoint or on a concave
stretch. Deals are binaries (continuous in the LP relaxation). Request constraints are named
after what they protect (`min:video`, `group_min:brand`), so an answer or an infeasibility can
say which rule binds; in elastic mode each gets a penalised slack, so minimising the slacks finds
the smallest change that makes an infeasible request feasible (`infeasibility.py`).
"""
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pulp

from services.budget.optimizer.curves import Floats, envelope
from services.budget.optimizer.problem import Deal
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem
from shared.money import quantum

Indices = npt.NDArray[np.intp]

# Among plans with the same return, spend less: money on a flat curve earns nothing.
SPEND_TIE_BREAK = 1e-7
# The budget's slack costs a little more than the others: relax the request's own rules first.
BUDGET_PENALTY = 1.001
# The least a target_roi's elastic plan spends, of the scaled money (`formulate`).
SPENDS = 1e-6


def constraint_name(name: str) -> str:
    """A solver-safe name for constraint `name`, the same in every process.

    Non-alphanumerics become `_`, and a digest of the original keeps names that differ only
    there apart (`min:a-b`, `min:a_b`); `hash()` would change per process (PYTHONHASHSEED) and
    so would every LP file written.
    """
    digest = hashlib.blake2s(name.encode(), digest_size=4).hexdigest()
    return "c_" + "".join(ch if ch.isalnum() else "_" for ch in name) + f"_{digest}"


@dataclass
class Formulation:
    """max (or min) cost·x subject to row_lower ≤ A x ≤ row_upper, col bounds, integrality."""

    maximise: bool
    cost: Floats
    col_lower: Floats
    col_upper: Floats
    integer: npt.NDArray[np.bool_]
    # The columns' names in runs: a name, or a name each column of the run ends with its index
    # in (made only for PuLP's model: 33,000 names took 40 % of the model's build at 50 x 13).
    name_runs: list[tuple[str, int | None]]
    row_lower: Floats
    row_upper: Floats
    row_names: list[str]              # request constraints by their rule, others internal
    start: Indices                    # CSR: row r's entries are [start[r], start[r + 1])
    index: Indices
    value: Floats
    cell_of: Indices                  # per column: its cell, −1 for gates, `used`, slacks
    spend_of: Floats                  # per column: what one unit adds to its cell's spend
    return_of: Floats                 # per column: what one unit adds to its cell's return
    exact: frozenset[int]             # cells modelled exactly
    gates: Indices                    # gate columns …
    gated_segments: Indices           # … and the segment column each one says is full
    used: dict[int, int]              # "min if used" channel → its binary column
    slacks: dict[str, tuple[int, float]]   # elastic: rule → (column, penalty)

    def cell_spend(self, x: Floats, cells: int) -> Floats:
        """Per cell, the spend of the column values `x`."""
        mine = self.cell_of >= 0
        return np.bincount(self.cell_of[mine], weights=x[mine] * self.spend_of[mine],
                           minlength=cells).astype(np.float64)

    @property
    def col_names(self) -> list[str]:
        return [name if count is None else f"{name}{j}" for name, count in self.name_runs
                for j in range(1 if count is None else count)]

    def row_index(self, name: str) -> int:
        return self.row_names.index(name)

    def columns_for(self, cells: Cells, spend: Floats) -> Floats:
        """Column values that spend `spend` per cell: each curve's segments filled in order,
        gates open up to the last full segment, a deal bought when fully paid, `used` where its
        channel spends. The plan a warm start repairs a relaxation's answer to."""
        x = np.zeros(len(self.cost))
        on_cell = np.flatnonzero(self.cell_of >= 0)
        cell = self.cell_of[on_cell]
        per_unit = self.spend_of[on_cell]
        is_deal = cells.is_deal[cell]
        deals = on_cell[is_deal]
        x[deals] = np.floor(spend[cell[is_deal]] / per_unit[is_deal] + 1e-9).clip(0.0, 1.0)
        curve = on_cell[~is_deal]
        owner = self.cell_of[curve]
        width = self.col_upper[curve]
        before = np.cumsum(width) - width
        first = np.r_[True, owner[1:] != owner[:-1]] if len(curve) else np.zeros(0, dtype=bool)
        before -= before[np.maximum.accumulate(np.where(first, np.arange(len(curve)), 0))]
        x[curve] = np.clip(spend[owner] - before, 0.0, width)
        x[self.gates] = (x[self.gated_segments] >= self.col_upper[self.gated_segments]
                         * (1 - 1e-9)).astype(float)
        channel_spend = np.bincount(cells.channel, weights=spend,
                                    minlength=max(self.used, default=-1) + 1)
        for c, column in self.used.items():
            x[column] = float(channel_spend[c] > 1e-9)
        return x

    def feasible(self, x: Floats, tolerance: float = 1e-7) -> bool:
        """Whether column values `x` meet every row, bound and integrality."""
        row = np.repeat(np.arange(len(self.row_names)), np.diff(self.start))
        activity = np.bincount(row, weights=self.value * x[self.index],
                               minlength=len(self.row_names))
        integral = np.abs(x[self.integer] - np.round(x[self.integer])) <= tolerance
        return bool(np.all(activity >= self.row_lower - tolerance)
                    and np.all(activity <= self.row_upper + tolerance)
                    and np.all(x >= self.col_lower - tolerance)
                    and np.all(x <= self.col_upper + tolerance) and integral.all())


class _Rows:
    """Rows gathered family by family as (row, column, value) triples."""

    def __init__(self) -> None:
        self.rows: list[Indices] = []
        self.cols: list[Indices] = []
        self.vals: list[Floats] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.names: list[str] = []
        self.request: list[tuple[int, Literal["<=", ">="], float]] = []   # (row, sense, penalty)

    def add(self, name: str, cols: Indices, vals: Floats, sense: Literal["<=", ">="],
            rhs: float, *, request: bool = True, penalty: float = 1.0) -> None:
        row = len(self.names)
        self.rows.append(np.full(len(cols), row, dtype=np.intp))
        self.cols.append(np.asarray(cols, dtype=np.intp))
        self.vals.append(np.asarray(vals, dtype=float))
        self.lower.append(-np.inf if sense == "<=" else rhs)
        self.upper.append(rhs if sense == "<=" else np.inf)
        self.names.append(name)
        if request:
            self.request.append((row, sense, penalty))


    def add_pairs(self, names: list[str], first: Indices, second: Indices, coef: Floats,
                  lower: Floats, upper: Floats) -> None:
        """Internal rows lower ≤ x[first] + coef · x[second] ≤ upper, one per entry, at once."""
        made = np.arange(len(self.names), len(self.names) + len(names), dtype=np.intp)
        self.rows.append(np.repeat(made, 2))
        self.cols.append(np.column_stack([first, second]).ravel())
        self.vals.append(np.column_stack([np.ones(len(names)), coef]).ravel())
        self.lower += lower.tolist()
        self.upper += upper.tolist()
        self.names += names


class _Columns:
    """Columns appended block by block, each of its values one number for the block or one
    per column (a block a cell: numpy's small arrays made per block took half the model's
    build at 50 x 13)."""

    KEYS = ("lower", "upper", "integer", "cell", "spend", "earned")

    def __init__(self) -> None:
        self.values: dict[str, list[float | Floats]] = {key: [] for key in self.KEYS}
        self.counts: list[int] = []
        self.names: list[tuple[str, int | None]] = []
        self.count = 0

    def add(self, name: str, count: int | None = None, *, upper: float | Floats,
            integer: bool, cell: int = -1, spend: float | Floats = 0.0,
            earned: float | Floats = 0.0) -> Indices:
        """`count` columns named `name` followed by their index in the block (None: one column
        named `name`), from 0 up to `upper`."""
        made = self.count
        n = 1 if count is None else count
        for key, value in (("lower", 0.0), ("upper", upper), ("integer", float(integer)),
                           ("cell", float(cell)), ("spend", spend), ("earned", earned)):
            self.values[key].append(value)
        self.counts.append(n)
        self.names.append((name, count))
        self.count += n
        return np.arange(made, made + n, dtype=np.intp)

    def stacked(self, key: str) -> Floats:
        values = self.values[key]
        is_array = [isinstance(value, np.ndarray) for value in values]
        stacked = np.repeat([0.0 if array else float(value)
                             for value, array in zip(values, is_array)], self.counts)
        if any(is_array):
            stacked[np.repeat(is_array, self.counts)] = np.concatenate(
                [value for value, array in zip(values, is_array) if array])
        return stacked


def formulate(model: ScaledProblem, cells: Cells, *, exact: Collection[int] | None = None,
              elastic: bool = False, spends: bool = False) -> Formulation:
    """The whole model. `exact`: the cells modelled exactly (None: every cell); the others by
    their concave envelope. `spends`: under target_roi, plans spend at least a minor unit (as
    the elastic model's do), for the most return per unit a plan reaches
    (`infeasibility.most_per_unit_roi`)."""
    exact_cells = frozenset(range(len(cells)) if exact is None else exact)
    columns, rows = _Columns(), _Rows()
    gates: list[tuple[Indices, Indices, Floats, int]] = []   # (segments, gates, lengths, count)
    for i, cell in enumerate(cells):
        if cell.deal is not None:
            columns.add(f"deal_{i}", upper=1.0, integer=True, cell=i, spend=cell.deal[0],
                        earned=cell.deal[1])
            continue
        seg = cell.segments
        assert seg is not None
        if i not in exact_cells and seg.gated:
            seg = envelope(seg)
        lengths, slopes, gated = seg.lengths, seg.slopes, seg.gated
        amounts = columns.add(f"s_{i}_", len(lengths), upper=lengths, integer=False, cell=i,
                              spend=1.0, earned=cell.weight * slopes)
        if gated:
            made = columns.add(f"z_{i}_", gated, upper=1.0, integer=True)
            gates.append((amounts, made, lengths, gated))
    used: dict[int, int] = {}
    for c, channel in enumerate(model.problem.channels):
        # An incremental floor above 0 makes the channel used: its floor is then a hard one.
        if channel.min_if_used and channel.min is not None and model.lower[c] <= 0:
            used[c] = int(columns.add(f"used_{c}", upper=1.0, integer=True)[0])

    cell_of = columns.stacked("cell").astype(np.intp)
    spend_of = columns.stacked("spend").astype(float)
    return_of = columns.stacked("earned").astype(float)
    on_cell = np.flatnonzero(cell_of >= 0)
    channel_of_cell = np.array([cell.channel for cell in cells], dtype=np.intp)
    period_of_cell = np.array([cell.period for cell in cells], dtype=np.intp)

    def over_cells(coef: Floats) -> tuple[Indices, Floats]:
        """Columns and coefficients of Σ coef[cell] · spend(cell)."""
        vals = coef[cell_of[on_cell]] * spend_of[on_cell]
        keep = vals != 0
        return on_cell[keep], vals[keep]

    every = np.ones(len(cells))
    all_cols, all_vals = over_cells(every)
    rows.add("budget", all_cols, all_vals, "<=", model.budget, penalty=BUDGET_PENALTY)
    _channel_rows(rows, model, cell_of, spend_of, on_cell, channel_of_cell, used,
                  columns.stacked("upper").astype(float) if elastic else None)
    for group in model.problem.groups:
        members = np.isin(channel_of_cell, model.members(group))
        for share, sense, label in ((group.min_share, ">=", "group_min"),
                                    (group.max_share, "<=", "group_max")):
            if share is not None:
                cols, vals = over_cells(members.astype(float) - float(share) * every)
                rows.add(f"{label}:{group.id}", cols, vals, sense, 0.0)   # type: ignore[arg-type]
    for p, period in enumerate(model.problem.periods):
        if period.cap is not None:
            cols, vals = over_cells((period_of_cell == p).astype(float))
            rows.add(f"period_cap:{period.id}", cols, vals, "<=", model.money(period.cap))
    problem = model.problem
    if problem.objective == "min_spend":
        assert problem.target_return is not None
        rows.add("target_return", on_cell, return_of[on_cell], ">=",
                 model.money(problem.target_return))
    if problem.objective == "target_roi":
        assert problem.target_roi is not None
        rows.add("target_roi", on_cell,
                 return_of[on_cell] - float(problem.target_roi) * spend_of[on_cell], ">=", 0.0)
        if (elastic or spends) and model.budget > EPS:
            # Spending nothing meets any target and is never target_roi's answer (`solver`), so
            # no change that leaves only that plan is one: the elastic plan spends a minor unit,
            # or SPENDS of the scaled money where that is more. The row is over that least
            # spend, so that HiGHS's tolerance (1e-6) is of it: over the money, a plan spending
            # nothing met it, and lowering a min to 0 was named enough (trial 18f, t3).
            least = min(model.budget, max(float(quantum(problem.decimals)) / model.unit, SPENDS))
            rows.add("spends", all_cols, all_vals / least, ">=", 1.0, request=False)
    for amounts, made, lengths, gated in gates:
        _gate_rows(rows, amounts, made, lengths, gated)

    cost = {"min_spend": spend_of, "max_profit": return_of - spend_of}.get(
        problem.objective, return_of - SPEND_TIE_BREAK * spend_of)
    slacks: dict[str, tuple[int, float]] = {}
    if elastic:
        for row, sense, penalty in rows.request:
            name = rows.names[row]
            column = int(columns.add(f"slack_{len(slacks)}", upper=np.inf, integer=False)[0])
            slacks[name] = (column, penalty)
            rows.rows.append(np.array([row], dtype=np.intp))
            rows.cols.append(np.array([column], dtype=np.intp))
            rows.vals.append(np.array([-1.0 if sense == "<=" else 1.0]))
        cost = np.zeros(columns.count)
        for column, penalty in slacks.values():
            cost[column] = penalty
        cell_of = np.concatenate([cell_of, np.full(len(slacks), -1, dtype=np.intp)])
        spend_of = np.concatenate([spend_of, np.zeros(len(slacks))])
        return_of = np.concatenate([return_of, np.zeros(len(slacks))])
    start, index, value = _csr(rows, len(rows.names))
    return Formulation(
        maximise=problem.objective != "min_spend" and not elastic, cost=cost,
        col_lower=columns.stacked("lower").astype(float),
        col_upper=columns.stacked("upper").astype(float),
        integer=columns.stacked("integer").astype(bool), name_runs=columns.names,
        row_lower=np.array(rows.lower), row_upper=np.array(rows.upper), row_names=rows.names,
        start=start, index=index, value=value, cell_of=cell_of, spend_of=spend_of,
        return_of=return_of, exact=exact_cells,
        gates=np.concatenate([g[1] for g in gates]) if gates else np.zeros(0, dtype=np.intp),
        gated_segments=np.concatenate([g[0][:g[3]] for g in gates]) if gates else
        np.zeros(0, dtype=np.intp), used=used, slacks=slacks)


def _channel_rows(rows: _Rows, model: ScaledProblem, cell_of: Indices,
                  spend_of: Floats, on_cell: Indices, channel_of_cell: Indices,
                  used: dict[int, int], reach: Floats | None) -> None:
    """Hard floors and caps; "min if used" through the channel's `used` binary; deals once.

    A "min if used" channel is used or not only where the incremental rule allows it 0 (a
    previous amount of 0, or a tolerance of 100 % or more); used, its floor is the larger of its
    min and the incremental floor (previous × (1 − tolerance)), so with an incremental floor
    above 0 it is a hard floor of that larger amount. `reach` (elastic): the columns' upper
    bounds, the cells reaching past the channels' caps."""
    # Cells come channel by channel, so each channel's columns are one run of `on_cell`.
    channel_of_col = channel_of_cell[cell_of[on_cell]]
    bounds = np.searchsorted(channel_of_col, np.arange(len(model.problem.channels) + 1))
    for c, channel in enumerate(model.problem.channels):
        cols = on_cell[bounds[c]:bounds[c + 1]]
        vals = spend_of[cols]
        if isinstance(channel.response, Deal) and len(cols) > 1:
            rows.add(f"once_{c}", cols, np.ones(len(cols)), "<=", 1.0, request=False)
        low, high = model.lower[c], model.upper[c]
        if channel.min_if_used and channel.min is not None and low > 0:
            low = max(low, model.money(channel.min))
        if c in used:
            assert channel.min is not None
            u = np.array([used[c]], dtype=np.intp)
            # Elastic, the channel's cells reach past its cap (its slack raises the cap), so
            # `used` must let it spend all they hold.
            most = min(high, model.budget) if reach is None else float(vals @ reach[cols])
            rows.add(f"used_{c}", np.r_[cols, u], np.r_[vals, -most], "<=",
                     0.0, request=False)
            rows.add(f"min:{channel.id}", np.r_[cols, u],
                     np.r_[vals, -model.money(channel.min)], ">=", 0.0)
        elif low > 0:
            rows.add(f"min:{channel.id}", cols, vals, ">=", low)
        if high < model.budget:
            rows.add(f"max:{channel.id}", cols, vals, "<=", high)


def _gate_rows(rows: _Rows, amounts: Indices, gates: Indices, lengths: Floats,
               gated: int) -> None:
    """z_j = 1: segment j is full and j + 1 may be used (the last gate opens all the rest).

    Rows in the order fill_0, open_1_0, fill_1, open_2_1, …, fill_{g−1}, then the last gate's
    opens, made as arrays (a row at a time took 1.6 s of CPU for 52,000 gates at 150 × 52)."""
    last = gated - 1
    j = np.arange(last)
    # Segment, gate, which of the pair (0: fill, 1: open), interleaved, then the last gate's.
    segment = np.r_[np.column_stack([j, j + 1]).ravel(), last, np.arange(gated, len(amounts))]
    gate = np.r_[np.repeat(j, 2), last, np.full(len(amounts) - gated, last)]
    opens = np.r_[np.tile([False, True], last), False,
                  np.ones(len(amounts) - gated, dtype=bool)]
    names = [f"open_{amounts[k]}_{g}" if o else f"fill_{amounts[k]}"
             for k, g, o in zip(segment.tolist(), gate.tolist(), opens.tolist())]
    rows.add_pairs(names, amounts[segment], gates[gate], -lengths[segment],
                   np.where(opens, -np.inf, 0.0), np.where(opens, 0.0, np.inf))


def _csr(rows: _Rows, count: int) -> tuple[Indices, Indices, Floats]:
    """Row-wise compressed entries (rows were added in order; slacks come after)."""
    row = np.concatenate(rows.rows) if rows.rows else np.zeros(0, dtype=np.intp)
    col = np.concatenate(rows.cols) if rows.cols else np.zeros(0, dtype=np.intp)
    val = np.concatenate(rows.vals) if rows.vals else np.zeros(0)
    order = np.argsort(row, kind="stable")
    start = np.r_[0, np.cumsum(np.bincount(row, minlength=count))].astype(np.intp)
    return start, col[order], val[order]


def to_pulp(form: Formulation) -> tuple[pulp.LpProblem, list[pulp.LpVariable]]:
    """The same model as a PuLP problem (for CBC and LP files), its variables in column order."""
    prob = pulp.LpProblem("allocation", pulp.LpMaximize if form.maximise else pulp.LpMinimize)
    variables = [prob.add_variable(name, lowBound=float(low),
                                   upBound=None if np.isinf(high) else float(high),
                                   cat=pulp.LpBinary if integer and low == 0 and high == 1 else
                                   (pulp.LpInteger if integer else pulp.LpContinuous))
                 for name, low, high, integer in zip(form.col_names, form.col_lower,
                                                     form.col_upper, form.integer)]
    prob += pulp.LpAffineExpression([(variables[j], float(c)) for j, c in enumerate(form.cost)
                                     if c != 0])
    for r, name in enumerate(form.row_names):
        a, b = form.start[r], form.start[r + 1]
        expression = pulp.LpAffineExpression(
            [(variables[int(j)], float(v)) for j, v in zip(form.index[a:b], form.value[a:b])])
        low, high = form.row_lower[r], form.row_upper[r]
        prob += (expression >= float(low) if np.isinf(high) else expression <= float(high)), \
            constraint_name(name)
    return prob, variables
