"""The exact greedy for concave curves under one budget and per-channel bounds.

With concave curves, a budget and per-channel floors and caps, the optimum fills segments in
order of falling slope: each channel at least to its floor with its best segments, then every
segment steeper than a threshold λ while its channel is under its cap, λ being the lowest
slope at which the money runs out (the budget's shadow price). So no sort is needed: λ is found
by selection, and then each capped or floored channel's own level the same way, all channels
at once. This is what the LP would find; tests hold the two to the same answer.

The segments are never laid out cell by cell. A channel's periods share one curve (the curve
cache) and differ only by their weight, so each distinct curve's segments are kept once, by
falling slope, with running sums of their lengths; a cell is its curve and its weight. What a
cell takes above a level is then a prefix of its curve, found by binary search on the weighted
slopes (computed as the cells' own slopes would be: curve slope × weight), so each round of the
selection costs a few passes over the cells, not over the millions of segments they stand for.
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.budget.optimizer.curves import Floats, Segments
from services.budget.optimizer.scaled import EPS, Cells, Priced, ScaledProblem, Solution

Indices = npt.NDArray[np.intp]
Flags = npt.NDArray[np.bool_]
# Per group, whether it holds with the amounts the cells take above its pivot.
Settles = Callable[[Floats], Flags]
# A guessed level is tried this far (relatively) above and below it.
NEAR = 1e-4


def applies(model: ScaledProblem, cells: Cells) -> bool:
    """Whether the greedy is exact for this problem (else the MILP solves it)."""
    return concave(model, cells) and not model.problem.groups and \
        all(period.cap is None for period in model.problem.periods)


def concave(model: ScaledProblem, cells: Cells) -> bool:
    """Whether the problem is concave curves under the budget, per-channel bounds, period caps
    and groups' shares only: the greedy's problem, or (with period caps or groups) the LP that
    `period_prices` solves from the greedy's plan."""
    return model.problem.objective in ("max_return", "max_profit") and \
        concave_curves(model, cells)


def concave_curves(model: ScaledProblem, cells: Cells) -> bool:
    """Whether every cell's curve is concave (no deal, no conditional floor) and the channels'
    floors fit their caps and the money: `concave` whatever the objective."""
    problem = model.problem
    return (not any(c.min_if_used and c.min is not None for c in problem.channels)
            and all(seg is not None and seg.gated == 0 for seg in cells.curve_of[0])
            and all(low <= high + EPS for low, high in zip(model.lower, model.upper))
            and sum(model.lower) <= model.budget + EPS)


def solve(model: ScaledProblem, cells: Cells) -> Solution:
    """Fill segments by falling slope: floors first, then caps and the budget (see `applies`)."""
    curves = Curves.of(cells)
    fill = fill_segments(model, curves)
    return Solution(spend=fill.spend, status="optimal", gap=0.0, solver="greedy",
                    marginal_value=fill.marginal, model_return=fill.model_return,
                    priced=_priced(model, curves, fill))


def _priced(model: ScaledProblem, curves: "Curves", fill: "Fill") -> Priced:
    """The plan's prices as a Lagrangian bound's: the budget's price, and each channel's level
    less the budget's level as its own price (positive at a cap, negative at a floor; a level
    of ±∞, a channel taking all of its segments or none, priced as the budget)."""
    threshold = 1.0 if model.problem.objective == "max_profit" else 0.0
    common = fill.marginal + threshold
    levels = np.where(np.isfinite(fill.level), fill.level, common)
    own = levels - common
    ends = np.where(own > 0, np.asarray(model.upper), np.asarray(model.lower))
    tau = levels[curves.channel]
    return Priced(threshold=tau, constant=fill.marginal * model.budget + float(own @ ends),
                  segments=lambda: curves.priced(tau))


@dataclass(frozen=True)
class Fill:
    """The greedy's plan: spend per cell, its return on the segments, the budget's price, and
    per channel the level its cells are cut at (in the curves' priced slopes)."""

    spend: Floats
    model_return: float
    marginal: float
    level: Floats


def fill_segments(model: ScaledProblem, curves: "Curves", near: Fill | None = None) -> Fill:
    """The greedy on `curves`, whose slopes may carry a price per cell (`Curves.price`): the
    optimum of the segments' return less the prices times what each cell spends.

    `near`: the greedy's plan on the same curves at nearby prices, whose levels the selections
    try first (`Curves.select`)."""
    everyone = curves.cells
    cells = len(everyone)
    channels = len(model.lower)
    lower = np.asarray(model.lower, dtype=float)
    # A cap equal to the whole budget is the budget itself: leave it to the budget, so that
    # the marginal value reports what one more unit of budget would earn.
    caps = np.asarray(model.upper, dtype=float)
    upper = np.where(caps < model.budget - EPS, caps, np.inf)
    threshold = 1.0 if model.problem.objective == "max_profit" else 0.0

    steep = curves.count(everyone, np.full(cells, threshold), strict=True)
    taken = curves.by_channel(curves.taken(everyone, steep), channels)
    if np.clip(taken, lower, upper).sum() <= model.budget:
        # Money is left when every segment worth more than it costs is bought.
        level, above, ties, marginal = threshold, taken, np.zeros(channels), 0.0
        target = np.clip(taken, lower, upper)
        counted = None
    else:
        def fits(amounts: Floats) -> Flags:
            spent = np.clip(curves.by_channel(amounts, channels), lower, upper).sum()
            return np.array([spent <= model.budget])

        levels, over, at = curves.select(
            np.zeros(cells, dtype=np.intp), steep, np.zeros(cells, dtype=np.intp),
            np.full(1, np.nan), fits,
            near=None if near is None else np.full(1, near.marginal + threshold))
        level = float(levels[0])
        above = curves.by_channel(curves.taken(everyone, over), channels)
        ties = curves.by_channel(curves.taken(everyone, at) - curves.taken(everyone, over),
                                 channels)
        least = np.clip(above, lower, upper)
        room = np.clip(above + ties, lower, upper) - least
        # Money left at the level goes to its ties in channel order, as a stable sort would.
        left = model.budget - least.sum()
        target = least + np.clip(left - (np.cumsum(room) - room), 0.0, room)
        marginal = level - threshold
        counted = over, at
    # A channel whose target lies between what it has above the level and that plus its ties
    # fills to the level too; only the others (at a floor or a cap) need a level of their own.
    slack = EPS * np.maximum(target, 1.0)
    known = (above - slack <= target) & (target <= above + ties + slack)
    spend, model_return, levels = _fill_to(curves, target, np.where(known, level, np.nan),
                                           None if near is None else near.level, counted)
    return Fill(spend=spend, model_return=model_return, marginal=marginal, level=levels)


@dataclass(frozen=True)
class Curves:
    """The cells' distinct curves, each once with its segments by falling slope, and per cell
    its curve (where its segments start and how many there are), weight, channel and price:
    what a unit spent in the cell costs beyond the budget (a period cap's price; 0 unless
    given), taken off each of its weighted slopes."""

    slopes: Floats         # every distinct curve's segment slopes, one curve after another
    running: Floats        # per curve, 0 then the running sums of its lengths
    returns: Floats        # per curve, 0 then the running sums of length × slope
    start: Indices         # per cell: where its curve's segments start in `slopes`
    first: Indices         # per cell: where its curve's running sums start
    size: Indices          # per cell: how many segments its curve has
    weight: Floats
    channel: Indices
    price: Floats | None = None

    @classmethod
    def of(cls, cells: Cells) -> "Curves":
        distinct, curve_of = cells.curve_of
        curves = [_by_falling_slope(_segments(segments)) for segments in distinct]
        sizes = np.array([len(lengths) for lengths, _ in curves], dtype=np.intp)
        starts = np.cumsum(sizes) - sizes
        lengths = [lengths for lengths, _ in curves]
        slopes = [slopes for _, slopes in curves]

        def running(parts: list[Floats]) -> Floats:
            zero = np.zeros(1)
            return np.concatenate([x for part in parts for x in (zero, np.cumsum(part))]) \
                if parts else np.zeros(0)

        return cls(slopes=np.concatenate(slopes) if curves else np.zeros(0),
                   running=running(lengths),
                   returns=running([a * b for a, b in zip(lengths, slopes)]),
                   start=starts[curve_of], first=(starts + np.arange(len(sizes)))[curve_of],
                   size=sizes[curve_of], weight=cells.weight, channel=cells.channel)

    @property
    def cells(self) -> Indices:
        return np.arange(len(self.channel), dtype=np.intp)

    def value(self, cell: Indices, position: Indices) -> Floats:
        """The weighted slope of each cell's segment at `position` (in falling order), less
        the cell's price."""
        values: Floats = self.slopes[self.start[cell] + position] * self.weight[cell]
        if self.price is not None:
            values -= self.price[cell]
        return values

    def count(self, cell: Indices, level: Floats, *, strict: Flags | bool,
              low: Indices | None = None, high: Indices | None = None) -> Indices:
        """Per `cell`, how many of its segments are steeper than its `level` (or as steep,
        where not `strict`), knowing the answer lies within [low, high] (default: anywhere)."""
        low = np.zeros(len(cell), dtype=np.intp) if low is None else low.copy()
        high = self.size[cell] if high is None else high.copy()
        # The searches still open, their fields gathered once and kept compact as they close
        # (the price rounds' searches were a third of a 1,000 × 52 solve, each step gathering
        # every field again through the open cells' indices).
        todo = np.flatnonzero(low < high)
        mine = cell[todo]
        lo, hi, level = low[todo], high[todo], level[todo]
        start, weight = self.start[mine], self.weight[mine]
        price = None if self.price is None else self.price[mine]
        exact = strict if isinstance(strict, bool) else strict[todo]
        # Closed searches are kept (and left as they are) until half have closed: compacting at
        # every step cost more than it saved (tiny_caps's 314 counts: 0.29 → 0.24 s of CPU).
        going: Flags | None = None
        while len(todo):
            middle = (lo + hi) >> 1
            # As `value` computes it, to the bit (a closed search may point past its curve's
            # last segment, so past the last curve's: clipped, and not read).
            value = np.take(self.slopes, start + middle, mode="clip")
            value *= weight
            if price is not None:
                value -= price
            steeper = (value > level if exact else value >= level) if isinstance(exact, bool) \
                else np.where(exact, value > level, value >= level)
            if going is None:
                np.copyto(hi, middle, where=~steeper)
            else:
                steeper &= going
                np.copyto(hi, middle, where=~steeper & going)
            np.copyto(lo, middle + 1, where=steeper)
            going = lo < hi
            if 2 * np.count_nonzero(going) > len(going):
                continue
            low[todo] = lo
            keep = np.flatnonzero(going)
            going = None
            todo, lo, hi, level = todo[keep], lo[keep], hi[keep], level[keep]
            start, weight = start[keep], weight[keep]
            price = None if price is None else price[keep]
            exact = exact if isinstance(exact, bool) else exact[keep]
        return low

    def priced(self, price: Floats) -> Floats:
        """Per cell, the most its segments return less `price` (per cell) a unit spent: its
        term of a Lagrangian bound."""
        everyone = self.cells
        steeper = self.count(everyone, price, strict=True)
        most: Floats = self.returns[self.first + steeper] * self.weight - \
            price * self.taken(everyone, steeper)
        return most

    def taken(self, cell: Indices, count: Indices) -> Floats:
        """Per `cell`, the length of its first `count` segments."""
        lengths: Floats = self.running[self.first[cell] + count]
        return lengths

    def by_channel(self, amounts: Floats, channels: int) -> Floats:
        return _sum_by(self.channel, amounts, channels)

    def select(self, over: Indices, under: Indices, group: Indices, level: Floats,
               settles: Settles, near: Floats | None = None) -> tuple[Floats, Indices, Indices]:
        """Per group whose `level` is NaN, the lowest weighted slope v among its cells' segments
        at positions [over, under) such that `settles` holds with what the cells take above v;
        with, per cell, how many of its segments are steeper than its group's level and as
        steep (for the groups selected here; `over` and `under` as given for the others).

        Quickselect over all groups at once: each round draws a pivot among each group's
        candidates, which either settles every candidate above it (the level is at or below it)
        or drops every one at or below it. Cells are ordered by group.

        `near`: per group, a guess at its level (where finite): the first pivots are just
        below and above it, then, on the side the level lies, 10× further each round until the
        level lies between two of them, so a guess leaves only the candidates near the level
        after a few rounds, where random pivots take some 30 rounds over a million segments (a
        pivot need not be a candidate: it only splits them).
        """
        rng = np.random.default_rng(0)
        level = level.copy()
        over, under = over.copy(), under.copy()
        groups = len(level)
        # Per group: whether its pivots still follow the guess, and the next one's offset from
        # it (relative to it, signed): first NEAR below it.
        guessing = np.zeros(groups, dtype=bool) if near is None else np.isfinite(near)
        offset = np.full(groups, -NEAR)
        # What each cell takes above its candidates (its first `over` segments), kept up to date;
        # and the same but for the live cells' takes at the round's pivot, put back after it
        # (copying every cell's each round was a twentieth of a selection at 52,000 cells).
        held = self.taken(self.cells, over)
        amounts = held.copy()
        # A group's level once found, or a cell's candidates once none, stay so: each round's
        # live cells are among the last round's (finding them among all 52,000 each round was
        # a twelfth of the selections of `points_all_capped`).
        live = self.cells
        while True:
            live = live[np.isnan(level)[group[live]] & (under[live] > over[live])]
            if not len(live):
                return level, over, under
            mine = group[live]
            top = np.full(groups, -np.inf)
            bottom = np.full(groups, np.inf)
            # Each group's live cells are one run (cells come by group): reduced run by run.
            runs = np.flatnonzero(np.r_[True, mine[1:] != mine[:-1]])
            top[mine[runs]] = np.maximum.reduceat(self.value(live, over[live]), runs)
            bottom[mine[runs]] = np.minimum.reduceat(self.value(live, under[live] - 1), runs)
            done = np.isnan(level) & (top == bottom)
            level[done] = top[done]
            # A pivot: each open group's candidate at a uniformly drawn rank among its own.
            candidates = under[live] - over[live]
            counts = np.bincount(mine, weights=candidates, minlength=groups).astype(np.intp)
            ends = np.cumsum(candidates)
            rank = np.cumsum(counts) - counts + (rng.random(groups) * counts).astype(np.intp)
            searching = np.flatnonzero(np.isnan(level) & (counts > 0))
            at = np.searchsorted(ends, rank[searching], side="right")
            pivot = np.full(groups, np.nan)
            pivot[searching] = self.value(live[at], over[live[at]] + rank[searching]
                                          - (ends[at] - candidates[at]))
            if near is not None:
                # A level of ±∞ (a channel shut, or at its floor) is no guess: it would be NaN.
                finite = np.where(guessing, near, 0.0)
                guess = finite + offset * np.abs(finite)
                # Each group's guess while it lies among its candidates (else it splits none,
                # nor would one further out).
                guessed = guessing & (guess > bottom) & (guess < top) & ~np.isnan(pivot)
                guessing &= guessed
                pivot = np.where(guessed, guess, pivot)
            # A pivot at its group's top would settle nothing: ask instead whether the level
            # lies below the top (whether what the cells take at or above it settles); if
            # not, the top is the level.
            at_top = pivot == top
            live = live[~np.isnan(pivot[mine])]
            mine = group[live]
            steeper = self.count(live, pivot[mine], strict=~at_top[mine], low=over[live],
                                 high=under[live])
            amounts[live] = self.taken(live, steeper)
            lower = np.zeros(groups, dtype=bool)
            lower[searching] = settles(amounts)[searching]
            level[searching] = np.where(at_top[searching] & ~lower[searching], top[searching],
                                        np.nan)
            if near is not None:
                guessing, offset = _follow(guessing, offset, lower)
            over[live] = np.where(lower[mine], steeper, over[live])
            under[live] = np.where(lower[mine], under[live], steeper)
            held[live] = np.where(lower[mine], amounts[live], held[live])
            amounts[live] = held[live]


def _follow(guessing: Flags, offset: Floats, lower: Flags) -> tuple[Flags, Floats]:
    """The next guesses of `Curves.select` after its groups' guesses at `offset` were tried
    (`lower`: the level lies at or below the guess): the first, NEAR below, turns to NEAR above
    when the level lies above it; a guess on the side the level lies moves 10× further out
    (the level moved more than NEAR: the prices moved it); a guess past the level on the
    other side, or 10× past the guess itself, ends the guessing."""
    down = offset < 0
    further = np.where(down, lower, ~lower)
    turn = guessing & down & ~lower & (offset == -NEAR)
    offset = np.where(turn, NEAR, np.where(further, offset * 10, offset))
    return guessing & (further | turn) & (np.abs(offset) <= 1.0), offset


def _by_falling_slope(segments: Segments) -> tuple[Floats, Floats]:
    """A concave curve's lengths and slopes in falling slope order: as they are, unless its
    slopes rise within the tolerance that still counts as concave (a stable sort then keeps
    equal slopes in their order)."""
    lengths, slopes = segments.lengths, segments.slopes
    if np.all(slopes[1:] <= slopes[:-1]):
        return lengths, slopes
    order = np.argsort(-slopes, kind="stable")
    return lengths[order], slopes[order]


def _segments(segments: Segments | None) -> Segments:
    assert segments is not None   # `applies` admits no deal
    return segments


def _fill_to(curves: Curves, target: Floats, level: Floats, near: Floats | None = None,
             counted: tuple[Indices, Indices] | None = None) -> tuple[Floats, float, Floats]:
    """Per cell, what it spends for each channel to spend `target`, steepest segments first;
    the plan's return on the segments (without the cells' prices); and each channel's level.

    Each channel's level μ (the lowest slope whose steeper segments stay within its target;
    given in `level` where known, NaN where not) is selected for all those channels at once;
    the segments at μ share what is left of the target in cell order; `near`: guesses at the
    levels (`Curves.select`); `counted`: per cell, how many of its segments are steeper than
    the level given its channel, and as steep, where one is given (the budget's selection
    found them: counting them again was a tenth of each price round at 1,000 × 52).
    """
    channels, everyone = len(target), curves.cells
    given = ~np.isnan(level)
    known = np.zeros(channels, dtype=bool) if counted is None else given
    total = curves.by_channel(curves.taken(everyone, curves.size), channels)
    # A channel that takes all of its segments, or none, has no level to find.
    whole = ~given & (target >= total - EPS * np.maximum(total, 1.0))
    level = np.where(whole, -np.inf, np.where(~given & (target <= 0), np.inf, level))
    given = ~np.isnan(level)

    def within(amounts: Floats) -> Flags:
        return curves.by_channel(amounts, channels) <= target

    level, over, at = curves.select(np.zeros(len(everyone), dtype=np.intp), curves.size,
                                    curves.channel, level, within, near)
    cell = np.flatnonzero((given & ~known)[curves.channel])
    if len(cell):
        mine = level[curves.channel[cell]]
        over[cell] = curves.count(cell, mine, strict=True)
        at[cell] = curves.count(cell, mine, strict=False, low=over[cell], high=at[cell])
    if counted is not None:
        cell = np.flatnonzero(known[curves.channel])
        over[cell], at[cell] = counted[0][cell], counted[1][cell]
    full = curves.taken(everyone, over)
    ties = curves.taken(everyone, at) - full
    # Ties at a channel's level share what is left of its target, in cell order.
    left = target - curves.by_channel(full, channels)
    before = np.cumsum(ties) - ties
    starts = np.r_[True, curves.channel[1:] != curves.channel[:-1]] if len(everyone) else \
        np.zeros(0, dtype=bool)
    group_base = before[np.maximum.accumulate(np.where(starts, everyone, 0))]
    shared = np.clip(left[curves.channel] - (before - group_base), 0.0, ties)
    # A level of ±∞ has no ties (nothing is as steep): its cells share nothing.
    at_level = np.where(np.isfinite(level), level, 0.0)[curves.channel]
    if curves.price is not None:
        at_level = at_level + curves.price
    earned = curves.returns[curves.first + over] * curves.weight + shared * at_level
    return full + shared, float(earned.sum()), level


def _sum_by(index: Indices, values: Floats, size: int) -> Floats:
    """Sums of `values` by `index` (0 … size − 1)."""
    return np.asarray(np.bincount(index, weights=values, minlength=size), dtype=np.float64)
