"""The problem in floats, as the solvers see it: money divided by the money that can matter (the
money available, or less when the channels cannot use it all), and each channel in each period
a `Cell` with its curve as segments."""
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property
from typing import SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from services.budget.optimizer.answer import SolveTimeout
from services.budget.optimizer.curves import (
    Floats,
    Prefixing,
    Segments,
    hill,
    hill_each,
    hill_priced_most,
    hill_segments,
    hill_slope,
    hill_slope_each,
    linear_segments,
    points_segments,
    prefixes_of,
)
from services.budget.optimizer.problem import Deal, Group, Hill, Linear, Period, Points, Problem
from shared.money import quantum

Indices = npt.NDArray[np.intp]

# Scaled money is 1 for the whole budget; a cent on a billion is 1e-11, so 1e-9 is "equal".
EPS = 1e-9
# A Hill curve's useful spend, for the unit: where what it has left to give, beta · (k / s)^alpha
# roughly, is this share of beta.
HILL_LEFT = 1e-4
# Hill curves are cut this many at a time: the deadline is checked between batches (cutting
# 2,000 curves takes seconds).
HILL_BATCH = 200


@dataclass(frozen=True, init=False)
class Cell:
    """One channel in one period: its curve as segments, or its deal.

    Its curve is the channel's curve R scaled to the period: weight · share · R(x / share)."""

    channel: int
    period: int
    weight: float
    upper: float
    segments: Segments | None          # None for a deal
    deal: tuple[float, float] | None   # (cost, value), scaled
    share: float = 1.0                 # the period's share of the horizon

    def __init__(self, channel: int, period: int, weight: float, upper: float,
                 segments: Segments | None, deal: tuple[float, float] | None,
                 share: float = 1.0):
        # The generated frozen __init__ sets each field through object.__setattr__: 0.1 s of
        # CPU for 52,000 cells, a tenth of the concave path. The fields are written into the
        # instance's dict once here instead (3× faster); it stays frozen to any assignment.
        fields = self.__dict__
        fields["channel"], fields["period"], fields["weight"] = channel, period, weight
        fields["upper"], fields["segments"], fields["deal"] = upper, segments, deal
        fields["share"] = share


class Cells(list[Cell]):
    """The cells of a problem, built once and never changed, with their fields as arrays (read
    once, when first asked for), so that the steps after the solve work on arrays.

    `ScaledProblem.cells` gives the arrays, and each cell's curve as an index into its distinct
    curves (`curve_of`), at once, and makes the `Cell` objects only when a cell is first read
    (`lazy`): the concave route works on the arrays alone, and making 52,000 cells at
    1,000 × 52 took a quarter of each cut."""

    _count: int | None = None
    # The cells not made yet, in order (None once all are).
    _rest: Iterator[Cell] | None = None

    @classmethod
    def lazy(cls, count: int, make: Iterable[Cell]) -> "Cells":
        """`count` cells that `make` gives, each made when first read."""
        cells = cls()
        cells._count, cells._rest = count, iter(make)
        return cells

    def _made(self) -> None:
        if self._rest is not None:
            rest, self._rest = self._rest, None
            self.extend(rest)

    def __len__(self) -> int:
        return super().__len__() if self._count is None else self._count

    def __iter__(self) -> Iterator[Cell]:
        if self._rest is None:
            return super().__iter__()
        return self._making()

    def _making(self) -> Iterator[Cell]:
        """The cells in order, made as the reader reaches them: one that stops early (whether
        any cell's curve is cut with an error) makes only those it read."""
        read = 0
        while True:
            if read < super().__len__():
                yield super().__getitem__(read)
            elif self._rest is None:
                return
            else:
                cell = next(self._rest, None)
                if cell is None:
                    self._rest = None
                    return
                self.append(cell)
                yield cell
            read += 1

    def __reversed__(self) -> Iterator[Cell]:
        self._made()
        return super().__reversed__()

    @overload
    def __getitem__(self, index: SupportsIndex) -> Cell: ...

    @overload
    def __getitem__(self, index: slice) -> list[Cell]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Cell | list[Cell]:
        self._made()
        return super().__getitem__(index)

    def __contains__(self, cell: object) -> bool:
        self._made()
        return super().__contains__(cell)

    def select(self, index: Indices, curves: list[Segments | None] | None = None) -> "Cells":
        """The cells `index` names, in its order (one may be named twice), each distinct curve
        (`curve_of`) replaced by `curves`' one at its place where given: their arrays at once,
        each `Cell` made only when read. 110,000 envelopes' cells made one by one took 0.9 s
        of CPU at 2,000 × 55 (past its 2 s limit with the cut), where the greedy's route reads
        none of them."""
        distinct, curve = self.curve_of
        shown, held = distinct if curves is None else curves, curve[index]

        def make() -> Iterator[Cell]:
            # These cells made at once, then read past `__getitem__` (through it, a third of
            # the making); a cell whose curve stays is itself.
            self._made()
            for i, k in zip(index.tolist(), held.tolist()):
                cell = list.__getitem__(self, i)
                yield cell if shown[k] is distinct[k] else Cell(
                    cell.channel, cell.period, cell.weight, cell.upper, shown[k], cell.deal,
                    cell.share)

        cells = Cells.lazy(len(index), make())
        vars(cells).update(channel=self.channel[index], period=self.period[index],
                           weight=self.weight[index], upper=self.upper[index],
                           share=self.share[index], is_deal=self.is_deal[index],
                           curve_of=(shown, held))
        return cells

    @cached_property
    def curve_of(self) -> tuple[list[Segments | None], Indices]:
        """The cells' distinct curves (None for a deal), and per cell the index of its own."""
        ids = np.fromiter((id(cell.segments) for cell in self), dtype=np.int64, count=len(self))
        _, first, index = np.unique(ids, return_index=True, return_inverse=True)
        # In the order the cells first hold them, as `ScaledProblem.cells` gives them.
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return [self[i].segments for i in first[order].tolist()], \
            rank[index.ravel()].astype(np.intp)

    @cached_property
    def channel(self) -> Indices:
        return np.fromiter((cell.channel for cell in self), dtype=np.intp, count=len(self))

    @cached_property
    def period(self) -> Indices:
        return np.fromiter((cell.period for cell in self), dtype=np.intp, count=len(self))

    @cached_property
    def weight(self) -> Floats:
        return np.fromiter((cell.weight for cell in self), dtype=float, count=len(self))

    @cached_property
    def upper(self) -> Floats:
        return np.fromiter((cell.upper for cell in self), dtype=float, count=len(self))

    @cached_property
    def share(self) -> Floats:
        return np.fromiter((cell.share for cell in self), dtype=float, count=len(self))

    @cached_property
    def is_deal(self) -> npt.NDArray[np.bool_]:
        return np.fromiter((cell.deal is not None for cell in self), dtype=bool, count=len(self))

    @cached_property
    def curves(self) -> list[tuple[Segments, Indices]]:
        """The cells with a curve, grouped by the segments they share. Made once: the plan's
        value on the segments is asked for 5-18 times a solve, and grouping 10,400 cells
        each time took 0.05 s of CPU (the department's 200 x 52)."""
        distinct, index = self.curve_of
        order = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[order], np.arange(len(distinct) + 1))
        return [(seg, order[a:b]) for seg, a, b in zip(distinct, bounds[:-1].tolist(),
                                                       bounds[1:].tolist()) if seg is not None]

    @cached_property
    def stretches(self) -> tuple[Indices, Floats, Floats]:
        """Every stretch where a gated curve lies below its envelope (strictly between two
        hull breakpoints that are not neighbours): its cell, and where it starts and ends.
        Made once, per curve (cells share their channel's): the deals' settling asks which
        cells a plan leaves inside one after each LP (26 times at 50 x 13 other shapes, 0.29 s
        of CPU when each made them again), and made per cell they took 3 s of a 2 s limit at
        2,000 S-curves × 55 periods."""
        owners, lows, highs = [], [], []
        for seg, mine in self.curves:
            if not seg.gated:
                continue
            knots = np.concatenate([[0.0], np.cumsum(seg.lengths)])
            edges = np.flatnonzero(np.diff(seg.hull) > 1)
            owners.append(np.repeat(mine, len(edges)))
            lows.append(np.tile(knots[seg.hull[edges]], len(mine)))
            highs.append(np.tile(knots[seg.hull[edges + 1]], len(mine)))
        if not owners:
            return np.zeros(0, dtype=np.intp), np.zeros(0), np.zeros(0)
        return np.concatenate(owners), np.concatenate(lows), np.concatenate(highs)


@dataclass(frozen=True)
class Priced:
    """Prices that bound the optimum of the true curves (a Lagrangian bound, valid for any
    prices of the right signs): per cell τ_c, what a unit spent there costs (the budget's, its
    period's, its channel's and its groups' prices, +1 for max_profit); the bound is `constant`
    (each price times its row's bound) plus, per cell, the most its curve returns less τ_c per
    unit spent. `segments` gives that most on each cell's segments when asked (a binary search
    over every cell, not paid by the plans the curves' rises already prove): exact for a curve
    its segments are (error 0); a Hill curve's is computed on the curve (`priced_error`)."""

    threshold: Floats
    constant: float
    segments: Callable[[], Floats]


@dataclass
class Solution:
    """A solver's plan before rounding: spend per cell, scaled."""

    spend: Floats
    status: str
    gap: float | None
    solver: str
    marginal_value: float | None
    model_return: float        # objective-side return of the piecewise-linear model, scaled
    priced: Priced | None = None   # the concave route's prices, for `priced_error`


class ScaledProblem:
    """`problem` with money divided by the money that can matter: the money available (total −
    reserve), or what the channels can usefully spend when that is less. A total of 1e15 over
    channels worth a million would otherwise put every curve at 1e-9 of the budget, where the
    solvers' tolerances are: they then call a plan optimal that is a third short."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.reserve = problem.reserve.of(problem.total, problem.decimals)
        self.available = problem.total - self.reserve
        useful = min(float(self.available), _useful(problem))
        self.unit = useful if useful > 0 else 1.0
        self.budget = float(self.available) / self.unit
        self.periods = problem.periods or (Period(id=""),)
        self.shares = _shares(self.periods)
        self.index = {c.id: i for i, c in enumerate(problem.channels)}
        self.lower, self.upper = self._bounds()
        self._cache: dict[tuple[int, float, float, float], Segments] = {}
        # The last `true_returns`: its cells, problem and unit, spend and returns.
        self._returned: tuple[tuple[Cells, Problem, float], Floats, Floats] | None = None

    def members(self, group: Group) -> list[int]:
        """The indices of `group`'s channels, each once: a channel listed twice (only a
        problem `check_problem` did not see) counts once."""
        return sorted({self.index[c] for c in group.channels})

    def money(self, amount: Decimal) -> float:
        """`amount` scaled."""
        return float(amount) / self.unit

    def _bounds(self) -> tuple[list[float], list[float]]:
        """Per channel: hard floor and cap, scaled; incremental bounds folded in."""
        lower, upper = [], []
        incremental = self.problem.incremental
        for channel in self.problem.channels:
            low = 0.0 if channel.min_if_used or channel.min is None else self.money(channel.min)
            high = self.budget if channel.max is None else min(self.money(channel.max), self.budget)
            if incremental and channel.id in incremental.previous:
                previous = self.money(incremental.previous[channel.id])
                share = float(incremental.tolerance)
                low, high = max(low, previous * (1 - share)), min(high, previous * (1 + share))
            lower.append(low)
            upper.append(high)
        return lower, upper

    def cells(self, tolerance: float, deadline: float = math.inf,
              stop: Callable[[], bool] | None = None, finer: Floats | None = None) -> Cells:
        """Every (channel, period) where money may go, channel by channel, its curve within
        `tolerance` (of the curve's value at its cap; times `finer`, per channel, where given)
        of its segments; `SolveTimeout` past `deadline` (a `time.perf_counter()` instant) or
        once `stop()` turns true (cutting 200 x 26 curves takes 0.4 s of CPU, seconds on a
        loaded machine)."""
        tolerances = [tolerance] * len(self.problem.channels) if finer is None else \
            (tolerance * np.asarray(finer, dtype=float)).tolist()
        caps = [math.inf if period.cap is None else self.money(period.cap)
                for period in self.periods]
        weights = [float(period.weight) for period in self.periods]
        # A channel's cells differ only by their period's cap, share and weight: its segments
        # are looked up once per distinct (cap, share), not once per cell (52,000 lookups took
        # a fifth of the cut at 1,000 × 52).
        pairs = list(dict.fromkeys(zip(caps, self.shares)))
        self._cut(pairs, tolerances, deadline, stop)
        # Per channel and distinct (cap, share), its segments as an index into the distinct
        # curves (each once, in the order the cells first hold them; None for a deal, in every
        # period), -1 where its cap leaves no room.
        distinct: list[Segments | None] = []
        known: dict[int, int] = {}
        held = np.full((len(self.problem.channels), len(pairs)), -1, dtype=np.intp)
        for c, channel in enumerate(self.problem.channels):
            self._over(deadline, stop)
            response, high = channel.response, self.upper[c]
            for j, (cap, share) in enumerate(pairs):
                if isinstance(response, Deal) or min(high, cap) > EPS:
                    made = None if isinstance(response, Deal) else \
                        self._cache[(id(response), min(high, cap), share, tolerances[c])]
                    held[c, j] = known.setdefault(id(made), len(distinct))
                    if held[c, j] == len(distinct):
                        distinct.append(made)
        # The cells as the channels' curves leave room: a deal in every period, a curve where
        # its cap leaves room; channel by channel, each in period order.
        pair = np.array([pairs.index(key) for key in zip(caps, self.shares)], dtype=np.intp)
        rows, columns = np.nonzero(held[:, pair] >= 0)
        deal = np.array([isinstance(c.response, Deal) for c in self.problem.channels], dtype=bool)
        room = np.minimum(np.asarray(self.upper, dtype=float)[:, None], np.asarray(caps)[None, :])
        curve = held[rows, pair[columns]]
        deals = [(self.money(c.response.cost), self.money(c.response.value))
                 if isinstance(c.response, Deal) else None for c in self.problem.channels]

        def make() -> Iterator[Cell]:
            for c, p, index in zip(rows.tolist(), columns.tolist(), curve.tolist()):
                offer, weight = deals[c], weights[p]
                yield Cell(c, p, weight, min(self.upper[c], caps[p]), distinct[index],
                           None if offer is None else (offer[0], offer[1] * weight),
                           self.shares[p])

        cells = Cells.lazy(len(rows), make())
        vars(cells).update(channel=rows, period=columns, weight=np.asarray(weights)[columns],
                           upper=room[rows, columns], share=np.asarray(self.shares)[columns],
                           is_deal=deal[rows], curve_of=(distinct, curve))
        return cells

    def _cut(self, pairs: list[tuple[float, float]], tolerances: list[float], deadline: float,
             stop: Callable[[], bool] | None) -> None:
        """Cut every curve the cells need (per channel, one per distinct period cap and share in
        `pairs`, within its channel's tolerance in `tolerances`) and the cache lacks: per curve,
        share and tolerance once, to the largest upper its cells
        need, each smaller upper being a prefix of that cut (`prefixes`; an S-curve is cut to
        each); the Hill curves
        HILL_BATCH at a time (all in one pass each). `SolveTimeout` past `deadline` or once
        stopped.

        A curve R in a period of `share` is share · R(x / share): R's segments on
        [0, upper / share], with lengths and error times `share` and the same slopes."""
        # Per curve, share and tolerance, the uppers its cells need.
        wanted: dict[tuple[int, float, float], tuple[Linear | Points | Hill, set[float]]] = {}
        for channel, high, tolerance in zip(self.problem.channels, self.upper, tolerances):
            response = channel.response
            if isinstance(response, Deal):
                continue
            for cap, share in pairs:
                upper = min(high, cap)
                if upper > EPS and (id(response), upper, share, tolerance) not in self._cache:
                    wanted.setdefault((id(response), share, tolerance),
                                      (response, set()))[1].add(upper)
        hills: list[tuple[Hill, float, float, set[float], float]] = []
        pending: list[tuple[list[tuple[int, float, float, float]], Prefixing]] = []
        for (_, share, tolerance), (response, uppers) in wanted.items():
            top = max(uppers)
            if isinstance(response, Hill):
                # An S-curve's cut sets where the MILP's binaries may sit, and its path is
                # sensitive to where they fall (`curves._GRID`): each upper is cut on its own,
                # as before prefixes were taken, only concave curves' prefixes.
                hills.extend([(response, share, top, uppers, tolerance)] if response.alpha <= 1
                             else [(response, share, upper, {upper}, tolerance)
                                   for upper in uppers])
                continue
            domain = top / share
            if isinstance(response, Linear):
                base = linear_segments(float(response.roi), domain)
            else:
                points = [(float(s) / self.unit, float(r) / self.unit) for s, r in response.points]
                base = points_segments(points, domain)
            self._keep(response, share, tolerance, top, uppers, base, pending)
        self._keep_prefixes(pending)
        for first in range(0, len(hills), HILL_BATCH):
            self._over(deadline, stop)
            batch = hills[first:first + HILL_BATCH]
            curves = np.concatenate([self._hill_row(response, top / share)
                                     for response, share, top, _, _ in batch])
            smallest = np.array([self._minor_unit(share) for _, share, _, _, _ in batch])
            least = np.array([min(uppers) / share for _, share, _, uppers, _ in batch])
            relative = np.array([tolerance for *_, tolerance in batch])
            for (response, share, top, uppers, tolerance), row, unit, base in zip(
                    batch, curves, smallest.tolist(),
                    hill_segments(curves, relative, smallest, least)):
                self._keep(response, share, tolerance, top, uppers, base, pending, row[:3],
                           unit)
            # Batch by batch, so that a cut stopped between batches leaves no curve in the
            # cache without its prefixes.
            self._keep_prefixes(pending)

    def _keep(self, response: Linear | Points | Hill, share: float, tolerance: float,
              top: float, uppers: set[float], base: Segments,
              pending: list[tuple[list[tuple[int, float, float, float]], Prefixing]],
              curve: Floats | None = None, smallest: float = 0.0) -> None:
        """Cache `base`, R's segments to `top` / `share`; its prefixes to the other `uppers`,
        each as the segments of a period of `share`, go to `pending` with their cache keys,
        for every curve's to be taken at once (`prefixes_of`)."""
        self._cache[(id(response), top, share, tolerance)] = _per_share(base, share)
        rest = sorted(uppers - {top})
        if rest:
            pending.append(([(id(response), upper, share, tolerance) for upper in rest],
                            (base, np.array(rest) / share, curve, smallest, share)))

    def _keep_prefixes(self, pending: list[tuple[list[tuple[int, float, float, float]],
                                                  Prefixing]]) -> None:
        """Cache the prefixes `pending` asks for (`_keep`), every curve's at once, and empty it."""
        made = prefixes_of([cut for _, cut in pending])
        self._cache.update((key, cut) for (keys, _), cuts in zip(pending, made)
                           for key, cut in zip(keys, cuts))
        pending.clear()

    def _over(self, deadline: float, stop: Callable[[], bool] | None) -> None:
        """`SolveTimeout` past `deadline` or once `stop()` turns true: the curves are cut before
        any plan is found."""
        if stop is not None and stop():
            raise SolveTimeout("stopped before any plan was found")
        if time.perf_counter() > deadline:
            raise SolveTimeout(f"no plan found within {self.problem.time_limit:g} s")

    def _minor_unit(self, share: float) -> float:
        """The currency's minor unit on the scale of a curve R cut for a period of `share`
        (whose cells spend share · x)."""
        return float(quantum(self.problem.decimals)) / self.unit / share

    def _hill_row(self, response: Hill, domain: float) -> Floats:
        """The curve as hill_segments reads it: one row of beta, k, alpha (scaled) and the
        domain's end."""
        return np.array([[float(response.beta) / self.unit, float(response.k) / self.unit,
                          float(response.alpha), domain]])

    def true_returns(self, cells: Cells, spend: Floats) -> Floats:
        """Per cell, the return of `spend` on the channel's true curve for its period, scaled.
        The last answer is kept: the error bound, the priced bound and the rounding's loss each
        ask for the solver's plan's (a channel at a time: 0.03 s each at 1,000 × 52)."""
        # Kept with the problem and unit it was read on: a copy of the model given other
        # curves (`first_plan`'s deals bought in parts) reads its own.
        key = (cells, self.problem, self.unit)
        last = self._returned
        if last is not None and all(a is b for a, b in zip(last[0], key)) and \
                np.array_equal(last[1], spend):
            return last[2].copy()
        values = self._true_returns(cells, spend)
        self._returned = key, np.array(spend, dtype=float), values.copy()
        return values

    def _true_returns(self, cells: Cells, spend: Floats) -> Floats:
        values = np.zeros(len(cells))
        weights, shares = cells.weight, cells.share
        # The Hill channels' cells at once (`hill_each`): a channel at a time was 4,000 calls
        # and 0.06 s of CPU a solve at 1,000 x 52.
        hills, rows = self._hill_rows()
        on_hill = np.flatnonzero(hills[cells.channel])
        if len(on_hill):
            share = shares[on_hill]
            values[on_hill] = weights[on_hill] * share * hill_each(
                spend[on_hill] / share, *rows[cells.channel[on_hill]].T)
        for c, mine in _by_channel(cells, np.flatnonzero(~hills[cells.channel])):
            response = self.problem.channels[c].response
            x = spend[mine]
            if isinstance(response, Deal):
                values[mine] = np.array([cells[i].deal[1] if cells[i].deal else 0.0
                                         for i in mine]) * (x > EPS)
                continue
            weight, share = weights[mine], shares[mine]
            values[mine] = weight * share * self._curve(response, x / share)
        return values

    def _hill_rows(self) -> tuple[npt.NDArray[np.bool_], Floats]:
        """Per channel: whether its curve is a Hill curve, and its beta, k (scaled) and alpha
        (NaN for another curve)."""
        responses = [channel.response for channel in self.problem.channels]
        hills = np.array([isinstance(r, Hill) for r in responses], dtype=bool)
        rows = np.array([[float(r.beta) / self.unit, float(r.k) / self.unit, float(r.alpha)]
                         if isinstance(r, Hill) else [np.nan] * 3 for r in responses])
        return hills, rows.reshape(len(responses), 3)

    def priced_error(self, cells: Cells, solution: Solution) -> float | None:
        """Bound how far the true optimum can lie above the plan, relative to the plan's
        return, by the Lagrangian bound at the solution's prices (`Priced`), each Hill curve's
        term taken on the curve itself; None without prices, or with a Hill curve that is not
        concave (alpha > 1), whose term the bisection does not bound.

        Unlike `assembly.approximation_error`, no curve's rise above its segments counts: a
        curve enters only through the most it returns at its price, which the segments
        approach near where the plan spends, however coarse they are elsewhere.
        """
        bound = self.priced_bound(cells, solution)
        return None if bound is None else bound[0]

    def priced_bound(self, cells: Cells, solution: Solution) -> tuple[float, Floats] | None:
        """`priced_error`, and per cell its share of the bound (not relative): how much more its
        term is than what the plan's spend in it earns less its price (beside them the bound
        holds only the prices' complementary slackness); None where `priced_error` is."""
        terms = self._priced_terms(cells, solution)
        priced = solution.priced
        if terms is None or priced is None:
            return None
        returns = self.true_returns(cells, solution.spend)
        true = float(returns.sum())
        threshold = 1.0 if self.problem.objective == "max_profit" else 0.0
        objective = true - threshold * float(solution.spend.sum())
        bound = max(priced.constant + float(terms.sum()) - objective, 0.0)
        losses: Floats = terms - (returns - priced.threshold * solution.spend)
        return bound / true if true > EPS else (0.0 if bound <= EPS else math.inf), losses

    def _priced_terms(self, cells: Cells, solution: Solution) -> Floats | None:
        """Per cell, its term of the Lagrangian bound at the solution's prices, a Hill curve's
        on the curve itself (`priced_error`)."""
        priced = solution.priced
        if priced is None:
            return None
        terms: Floats = priced.segments().copy()
        hills, rows = self._hill_rows()
        mine = np.flatnonzero(hills[cells.channel])
        if len(mine):
            beta, k, alpha = rows[cells.channel[mine]].T
            if np.any(alpha > 1.0):
                return None
            share = cells.share[mine]
            # share · max over y ≤ upper / share of weight · R(y) − τ · y, y = x / share.
            terms[mine] = share * hill_priced_most(beta, k, alpha, cells.upper[mine] / share,
                                                   cells.weight[mine], priced.threshold[mine])
        return terms

    def true_slopes(self, cells: Cells, spend: Floats) -> Floats:
        """Per cell, the return of the next unit spent on the true curve (NaN for a deal)."""
        slopes = np.full(len(cells), np.nan)
        weights, shares = cells.weight, cells.share
        hills, rows = self._hill_rows()
        on_hill = np.flatnonzero(hills[cells.channel])
        if len(on_hill):
            # The Hill channels' cells at once (`_true_returns`). A period of weight 0 returns
            # nothing at any spend: its slope is 0, where the product would be 0 · ∞ (NaN) at a
            # spend of 0 on a Hill curve with alpha < 1.
            weight = weights[on_hill]
            slopes[on_hill] = np.multiply(weight, hill_slope_each(
                spend[on_hill] / shares[on_hill], *rows[cells.channel[on_hill]].T),
                out=np.zeros(len(on_hill)), where=weight > 0)
        for c, mine in _by_channel(cells, np.flatnonzero(~hills[cells.channel])):
            response = self.problem.channels[c].response
            if isinstance(response, Deal):
                continue
            slopes[mine] = np.multiply(weights[mine], self.curve_slope(
                response, spend[mine] / shares[mine]), out=np.zeros(len(mine)),
                where=weights[mine] > 0)
        return slopes

    def _curve(self, response: Linear | Points | Hill, x: Floats) -> Floats:
        """R(x) of the channel's horizon curve, scaled."""
        if isinstance(response, Linear):
            value: Floats = float(response.roi) * x
            return value
        if isinstance(response, Points):
            xs, ys = self._points(response)
            return np.interp(x, xs, ys)
        return hill(x, float(response.beta) / self.unit, float(response.k) / self.unit,
                    float(response.alpha))

    def curve_slope(self, response: Linear | Points | Hill, x: Floats) -> Floats:
        """R'(x) to the right of x (flat beyond the last point)."""
        if isinstance(response, Linear):
            return np.full(len(x), float(response.roi))
        if isinstance(response, Points):
            xs, ys = self._points(response)
            right = np.searchsorted(xs, x + EPS, side="right")
            inside = right < len(xs)
            right = np.minimum(right, len(xs) - 1)
            slope: Floats = np.where(inside, (ys[right] - ys[right - 1]) /
                                     (xs[right] - xs[right - 1]), 0.0)
            return slope
        return hill_slope(x, float(response.beta) / self.unit, float(response.k) / self.unit,
                          float(response.alpha))

    def _points(self, response: Points) -> tuple[Floats, Floats]:
        xs = np.array([float(s) for s, _ in response.points]) / self.unit
        ys = np.array([float(r) for _, r in response.points]) / self.unit
        return xs, ys


def _useful(problem: Problem) -> float:
    """The most money the channels can put to use (infinite when one has no end): each
    channel's cap, else where its curve ends (a deal's cost, the last point, a Hill curve's
    HILL_LEFT), and no less than its floor; at most the periods' caps when all have one."""
    reach = 0.0
    for channel in problem.channels:
        response = channel.response
        if channel.max is not None:
            end = float(channel.max)
        elif isinstance(response, Deal):
            end = float(response.cost)
        elif isinstance(response, Points):
            end = float(response.points[-1][0])
        elif isinstance(response, Hill):
            end = float(response.k) * HILL_LEFT ** (-1 / float(response.alpha))
        else:
            return math.inf
        reach += max(end, float(channel.min or 0))
    caps = [period.cap for period in problem.periods]
    if caps and all(cap is not None for cap in caps):
        reach = min(reach, sum(float(cap) for cap in caps if cap is not None))
    return reach


def _per_share(base: Segments, share: float) -> Segments:
    """R's segments on [0, upper / share] as share · R(x / share)'s: lengths and error times
    `share`, the same slopes."""
    return base if share == 1.0 else replace(
        base, lengths=base.lengths * share, error=base.error * share,
        rises=None if base.rises is None else base.rises * share)


def _shares(periods: tuple[Period, ...]) -> list[float]:
    """Each period's share of the horizon: the given shares normalised, else equal."""
    given = [float(p.share) for p in periods if p.share is not None]
    if len(given) != len(periods):
        return [1.0 / len(periods)] * len(periods)
    return [share / sum(given) for share in given]


def _by_channel(cells: Cells, among: Indices) -> list[tuple[int, Indices]]:
    """The indices `among` (increasing) of the cells grouped by channel (cells come channel by
    channel)."""
    channel = cells.channel[among]
    starts = np.flatnonzero(np.r_[True, channel[1:] != channel[:-1]]) if len(among) else \
        np.zeros(0, dtype=np.intp)
    ends = np.r_[starts[1:], len(among)]
    return [(int(channel[a]), among[a:b]) for a, b in zip(starts.tolist(), ends.tolist())]
