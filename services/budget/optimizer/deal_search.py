"""Choose the deals' periods by local search on the envelope LP.

Where a MILP's first plan is not proven, its gap has been the plan's (other shapes at 50 x 13:
HiGHS's first better plan came after 9-10 s of CPU, the bound it had by 2.6 s was 0.08 % above
the best plan known). Each deal's period decides much of the plan, and with the deals fixed the
envelope LP prices a choice exactly enough to rank it: moving one deal to another period (or
dropping it), or swapping two deals' periods, from the plan's own choice until no move improves
it. The LP's reduced costs bound what each move can add, so moves are tried most promising
first and the search ends without solving those that cannot improve (51 LPs at 50 x 13 where
solving every move took 280). That bound prices the periods' caps, so it lets a deal into a
capped period at the cap's price; the deals' own bound at the LP's prices (`deal_bound.Priced`,
the caps kept: a deal whole displaces its period's best curve units) rules out most of the moves
left, and only the others are solved (4-5 LPs at 50 x 13 other shapes where 48-86, the same
plans). The LP is the caller's narrowed envelope model, so a choice is judged by what the
curves can earn near a plan as good as the best known.

With the deals chosen, the rest of the plan is found on the same LP (`settle`): each cell it
leaves inside a non-concave stretch (where the envelope overstates its curve) is decided out of
the stretch, below it or past it, by where the LP put it, and the LP solved again, until no
cell is left inside one; then each decision is flipped while that raises the plan's value. At
50 x 13 other shapes: 3 LPs to 14,343,746 (the best plan known, where two MILPs with the
deals fixed took 5-8 s of CPU), 40 more to 14,343,973.
"""
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from services.budget.optimizer.backends import Bounded, Run
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.deal_bound import Deals, Priced
from services.budget.optimizer.formulation import Formulation
from services.budget.optimizer.scaled import EPS, Cells
from services.budget.optimizer.windows import lagrangian, prices

# A move is taken when it raises the LP's objective by more than this share of it (the LPs'
# own noise must not make a search that walks in circles).
RISE = 1e-7
# Each deal's choice: the column it is bought through (None: not bought).
Choice = dict[int, int | None]
# A plan's spend per cell and the request's objective for it.
Plan = tuple[Floats, float]


@dataclass(frozen=True)
class Found:
    """The search's best choice: the LP's column bounds with the deals fixed there, and its
    spend per cell."""

    lower: Floats
    upper: Floats
    spend: Floats


class _Over(Exception):
    """The search's time is up or it was stopped: the best choice so far stands."""


def search(form: Formulation, cells: Cells, spend: Floats, solve: Bounded,
           until: float) -> Found | None:
    """Improve the deals' periods of the plan `spend` on `form`'s LP (a maximisation; its other
    integer columns held where `spend` has them), by `solve`, until the `time.perf_counter()`
    instant `until`: the best choice found, or None when no move improved the plan's."""
    integer = np.flatnonzero(form.integer)
    is_deal = np.zeros(len(integer), dtype=bool)
    owners: dict[int, list[int]] = {}
    for k, column in enumerate(integer):
        cell = int(form.cell_of[column])
        if cell >= 0 and cells[cell].deal is not None:
            is_deal[k] = True
            owners.setdefault(cells[cell].channel, []).append(int(column))
    if not owners or not form.maximise:
        return None
    start = form.columns_for(cells, spend)
    held = np.round(start[integer])
    position = {int(column): k for k, column in enumerate(integer)}

    def bounds(choice: Choice) -> tuple[Floats, Floats]:
        fixed = np.where(is_deal, 0.0, held)
        for column in choice.values():
            if column is not None:
                fixed[position[column]] = 1.0
        lower, upper = form.col_lower.copy(), form.col_upper.copy()
        lower[integer], upper[integer] = fixed, fixed
        return lower, upper

    def value(choice: Choice) -> Run | None:
        """The LP with the deals bought as `choice` says (None when that breaks a row)."""
        run = solve(*bounds(choice), until)
        if run.status == "infeasible":
            return None
        if run.status != "optimal" or run.objective is None or run.col_dual is None or \
                run.row_dual is None:
            raise _Over
        return run

    deals = sorted(owners)
    best: Choice = {d: next((c for c in owners[d] if start[c] > 0.5), None) for d in deals}
    by_period = {d: {cells[int(form.cell_of[c])].period: c for c in owners[d]} for d in deals}
    try:
        now = value(best)
    except _Over:
        return None
    if now is None:
        return None
    improved = False
    layout = Deals(form, cells)
    try:
        while True:
            assert now.objective is not None and now.col_dual is not None and \
                now.row_dual is not None
            top, taken = now.objective, False
            step = RISE * max(abs(top), EPS)
            # Any prices of the right signs bound the LP of every choice (`deal_bound`); the
            # non-deal binaries held here are taken at either end there, which only loosens it.
            priced = Priced(form, layout, prices(form, now.row_dual))
            for rise, move in _moves(best, deals, owners, by_period, now.col_dual):
                if rise <= step:
                    break   # no move from here on can improve enough
                if priced.bound(*bounds(move)) <= top + step:
                    continue
                judged = value(move)
                if judged is not None and judged.objective is not None and \
                        judged.objective > top + step:
                    best, now, improved, taken = move, judged, True, True
                    break
            if not taken:
                break
    except _Over:
        pass
    assert now.x is not None
    if not improved:
        return None
    lower, upper = bounds(best)
    return Found(lower, upper, form.cell_spend(now.x, len(cells)))


def settle(form: Formulation, found: Found, solve: Bounded,
           loose: Callable[[Floats], list[int]],
           score: Callable[[Floats], float]) -> Plan | None:
    """A plan with the deals as `found` has them and no cell `loose` (inside a non-concave
    stretch of its curve): each loose cell's column that holds its spend (the stretch's chord,
    or a run merged around it) is decided, emptied or filled (and every column before it), by
    how far the LP filled it, and the LP solved again until no cell is left loose; then each
    decision flipped while that raises `score`. The best plan and its score, or None when no
    LP could be solved (stopped, out of time, or every decision breaking a row)."""
    owner = form.cell_of
    curve = (owner >= 0) & ~form.integer
    # Each cell's curve columns, in order of spend (`formulate` lays them out so).
    first = np.full(int(owner.max(initial=-1)) + 1, -1)
    last = np.full_like(first, -1)
    columns = np.flatnonzero(curve)
    first[owner[columns[::-1]]] = columns[::-1]
    last[owner[columns]] = columns

    def bounds(decided: dict[int, bool]) -> tuple[Floats, Floats]:
        lower, upper = found.lower.copy(), found.upper.copy()
        for column, filled in decided.items():
            cell = int(owner[column])
            if filled:
                lower[first[cell]:column + 1] = upper[first[cell]:column + 1]
            else:
                lower[column:last[cell] + 1] = 0.0
                upper[column:last[cell] + 1] = 0.0
        return lower, upper

    def settled(decided: dict[int, bool], spend: Floats, above: float = -math.inf,
                run: Run | None = None) -> tuple[Plan, dict[int, bool], Run | None] | None:
        """The plan settled from `spend` (the LP `run`'s with `decided`), its decisions and
        the last LP, None where an LP is not solved or its value is not `above` (each LP adds
        bounds to the last, so the plan settled would be worth no more)."""
        decided = dict(decided)
        while True:
            new = [cell for cell in loose(spend)
                   if 0 <= cell < len(first) and first[cell] >= 0]
            holding = {cell: _holding(form, first[cell], last[cell], spend[cell])
                       for cell in new}
            holding = {cell: column for cell, column in holding.items()
                       if column not in decided}
            if not holding:
                return (spend, score(spend)), decided, run
            for cell, column in holding.items():
                filled = spend[cell] - float(form.col_upper[first[cell]:column].sum())
                decided[column] = filled >= 0.5 * float(found.upper[column])
            run = solve(*bounds(decided))
            if run.status != "optimal" or run.x is None or run.objective is None or \
                    run.objective <= above:
                return None
            spend = form.cell_spend(run.x, len(spend))

    got = settled({}, found.spend)
    if got is None:
        return None
    best, decided, latest = got
    improved = True
    while improved:
        improved = False
        # A flip's LP bounds what any plan settled from it is worth: settling only adds
        # bounds, and a settled plan (no cell inside a stretch) is worth its LP value, where
        # it is worth more than the plan the model was narrowed for (`windows`). Settling a
        # flip whose LP does not beat the best plan took 4-5 LPs for nothing (50 x 13 other
        # shapes, seed 3: 20 LPs in all, now 10); and the flip's LP is not solved where the
        # best plan's LP prices bound it no higher (L(y), `windows`: 1-3 of 8 at seeds 3-9).
        enough = best[1] + RISE * max(abs(best[1]), EPS)
        y = None if latest is None or latest.row_dual is None else \
            prices(form, latest.row_dual)
        for column in list(decided):
            lower, upper = bounds({**decided, column: not decided[column]})
            if y is not None and \
                    lagrangian(replace(form, col_lower=lower, col_upper=upper), y) <= enough:
                continue
            run = solve(lower, upper)
            if run.status == "none":
                return best
            if run.x is None or run.objective is None or run.objective <= enough:
                continue
            tried = settled({**decided, column: not decided[column]},
                            form.cell_spend(run.x, len(found.spend)), enough, run)
            if tried is not None and tried[0][1] > enough:
                (best, decided, latest), improved = tried, True
                break
    return best


def _holding(form: Formulation, first: int, last: int, spend: float) -> int:
    """The column of a cell (its curve's columns `first` … `last`, in order) whose stretch of
    spend holds `spend`."""
    ends = np.cumsum(form.col_upper[first:last + 1])
    return first + min(int(np.searchsorted(ends, spend, side="right")), last - first)


def _moves(current: Choice, deals: list[int], owners: dict[int, list[int]],
           by_period: dict[int, dict[int, int]], reduced: Floats) -> Iterator[tuple[float, Choice]]:
    """The moves from `current` (one deal to another period or dropped, two deals' periods
    swapped), each with the most it can raise the LP's objective, most first. The LP's value
    is concave in the fixed columns' values, so its reduced costs at `current` bound every
    move's rise: the columns bought minus those no longer bought. Each move's choice is made
    only when the caller reaches it: at 300 deals over 52 periods there are 60,000 moves, and
    a copy of the choice each took seconds, between two of the search's stop checks."""
    def rate(column: int | None) -> float:
        return 0.0 if column is None else float(reduced[column])

    changes: list[tuple[float, tuple[tuple[int, int | None], ...]]] = [
        (rate(column) - rate(current[d]), ((d, column),)) for d in deals
        for column in [None, *owners[d]] if column != current[d]]
    period = {d: next((p for p, c in by_period[d].items() if c == current[d]), None)
              for d in deals}
    for i, d in enumerate(deals):
        for e in deals[i + 1:]:
            here, there = period[d], period[e]
            if here == there:
                continue
            # A deal not bought swaps to not bought; one bought only where it can be.
            mine = None if there is None else by_period[d].get(there)
            theirs = None if here is None else by_period[e].get(here)
            if (there is None or mine is not None) and (here is None or theirs is not None):
                rise = rate(mine) + rate(theirs) - rate(current[d]) - rate(current[e])
                changes.append((rise, ((d, mine), (e, theirs))))
    changes.sort(key=lambda change: -change[0])
    for rise, change in changes:
        yield rise, {**current, **dict(change)}
