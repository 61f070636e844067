"""Response curves and their piecewise-linear approximation for the optimizer.

Every channel's curve becomes segments (spend length, return per unit). Concave runs are plain LP
segments; where the slope rises again (an S-shaped Hill curve, non-concave points) the optimizer
either gates the leading segments with binaries, so the approximation is solved globally, or
stands in the curve's concave envelope (its upper hull), a relaxation that is exact wherever the
plan sits on a hull breakpoint or off the curve's non-concave stretches (`hull`).
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]

# A segment's sampled error is inflated by this much: between samples the error can only rise
# by a second-order amount, far below 2 % of the peak for the 33 samples taken.
_SAMPLE_SAFETY = 1.02
_SAMPLES = np.linspace(0.0, 1.0, 33)[1:-1]
# Pieces sampled at a time (`_errors`): 2,048 × 31 floats, half a megabyte a temporary.
_CHUNK = 2048
# Curves whose density is taken at a time: 16 × 4,000 grid points, as `_CHUNK`.
_ROWS = 16
_MAX_SEGMENTS = 4000
# A piece from 0 is halved up to this many times in one round (`_first_halvings`): b·2^-64.
_HALVES = 0.5 ** np.arange(1, 65)
# `hill_priced_most`'s bisection: from this share of the domain's end to the end, on a log
# scale, this many halvings (the bracket's ends then within 4e-11 of each other, relatively).
_LOWEST, _BISECTIONS = 1e-18, 40
# Where a Hill curve's density is sampled, as fractions of its domain: dense near zero (on a
# log scale, where alpha < 1 is steepest) and evenly along the rest; made once for every curve.
# The grid places the breakpoints (the split rounds hold the tolerance). 1,000 points placed
# them nearly as 4,000 do on concave curves in a quarter of the time, but the MILP's path is
# sensitive to where they fall: a weekly 200 × 52 request with S-curves and deals (the bench's
# `weekly_request(200, seed=7)`) answered a plan 97 % short after 19 s where 4,000 prove the
# optimum in 3.5 s, and four other seeds took 1.2–3.6× the CPU.
_GRID = np.unique(np.concatenate([np.geomspace(1e-9, 1.0, 3000), np.linspace(0.0, 1.0, 1000)[1:]]))


@dataclass(frozen=True)
class Segments:
    """A curve on [0, sum(lengths)] as consecutive linear pieces."""

    lengths: Floats
    slopes: Floats
    # The first `gated` segments must be filled in order (binaries); the rest are concave.
    gated: int
    # The most the true curve lies above this approximation anywhere on its domain.
    error: float
    # Indices of the breakpoints (0 … len(lengths)) on the upper concave hull: all of them for
    # a concave curve; for an S-curve 0, the tangent point of its envelope and every one after.
    hull: npt.NDArray[np.intp]
    # Per segment, the most the true curve lies above it (`error` is their largest): kept by a
    # Hill curve's cut, whose prefixes (`prefixes`) state their own error from them; None for
    # segments that are the curve (error 0) or whose pieces' rises were not kept.
    rises: Floats | None = None


def hill(spend: Floats | float, beta: Floats | float, k: Floats | float,
         alpha: Floats | float) -> Floats:
    """Return beta * s^alpha / (s^alpha + k^alpha), computed stably for large s/k."""
    ratio = np.power(np.maximum(np.asarray(spend, dtype=float), 0.0) / k, alpha)
    value: Floats = beta * ratio / (1.0 + ratio)
    return value


def hill_slope(spend: Floats | float, beta: Floats | float, k: Floats | float,
               alpha: float) -> Floats:
    """Return the derivative of the Hill curve (infinite at 0 when alpha < 1)."""
    s = np.maximum(np.asarray(spend, dtype=float), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.power(s / k, alpha)
        slope = beta * alpha * ratio / (s * (1.0 + ratio) ** 2)
    at_zero = np.inf if alpha < 1 else (beta / k if alpha == 1 else 0.0)
    return np.where(s > 0, slope, at_zero)


def hill_each(spend: Floats, beta: Floats, k: Floats, alpha: Floats) -> Floats:
    """`hill` with a curve per point (arrays as long as `spend`), each point as `hill` of its
    curve alone gives it: numpy's power takes a path of its own for some single exponents (0.5,
    2), so the points go one exponent at a time, not one call per curve (1,000 curves' calls
    were a sixth of their cut at 1,000 x 52, `bench/shapes.py`'s `near_linear`)."""
    return _per_exponent(hill, spend, beta, k, alpha)


def hill_slope_each(spend: Floats, beta: Floats, k: Floats, alpha: Floats) -> Floats:
    """`hill_slope` with a curve per point, as `hill_each`."""
    return _per_exponent(hill_slope, spend, beta, k, alpha)


def _per_exponent(function: Callable[[Floats, Floats, Floats, float], Floats], spend: Floats,
                  beta: Floats, k: Floats, alpha: Floats) -> Floats:
    """`function` of each point's curve, the points of one exponent at a time."""
    values = np.empty(len(spend))
    exponents, which = np.unique(alpha, return_inverse=True)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(exponents) + 1)).tolist()
    for exponent, a, b in zip(exponents.tolist(), bounds[:-1], bounds[1:]):
        mine = order[a:b]
        values[mine] = function(spend[mine], beta[mine], k[mine], exponent)
    return values


def _hill_density(spend: Floats, beta: Floats, k: Floats, alpha: Floats) -> Floats:
    """Return sqrt(|f''|) of the Hill curve, the density that sets where breakpoints go.

    The same arithmetic as written out in one expression, done in two buffers: on the thousands
    of curves × 4,000 grid points a problem can have, the temporaries cost as much as the maths.
    """
    r = np.divide(spend, k)
    np.power(r, alpha, out=r)
    # beta·alpha·r·((alpha − 1) − (alpha + 1)·r) / (spend² · (1 + r)³)
    top = np.multiply(beta * alpha, r)
    other = np.multiply(alpha + 1.0, r)
    np.subtract(alpha - 1.0, other, out=other)
    top *= other
    np.multiply(spend, spend, out=other)
    r += 1.0
    np.power(r, 3, out=r)
    other *= r
    top /= other
    np.abs(top, out=top)
    density: Floats = np.sqrt(top, out=top)
    return density


def hill_priced_most(beta: Floats, k: Floats, alpha: Floats, end: Floats, weight: Floats,
                     price: Floats) -> Floats:
    """Per concave Hill curve R (arrays of beta, k, alpha ≤ 1): an upper bound, exact to float
    noise, on the most weight · R(y) − price · y reaches for y in [0, end].

    h(y) = weight · R(y) − price · y is concave, so its top is where h' turns negative: found by
    bisection on a log scale, and bounded on the bracket [a, b] around it by the tangent at a,
    h(a) + h'(a) · (b − a), which lies above h everywhere. A top below `_LOWEST` of the end is
    bounded by weight · R there (R rises, price · y ≥ 0).
    """
    def h(y: Floats) -> Floats:
        value: Floats = weight * hill(y, beta, k, alpha) - price * y
        return value

    def rise(y: Floats) -> Floats:
        r = np.power(y / k, alpha)
        slope: Floats = weight * beta * alpha * r / (y * (1.0 + r) ** 2) - price
        return slope

    low, high = end * _LOWEST, end.copy()
    for _ in range(_BISECTIONS):
        middle = np.sqrt(low * high)
        up = rise(middle) > 0
        low, high = np.where(up, middle, low), np.where(up, high, middle)
    inside = rise(low) > 0
    most: Floats = np.where(rise(end) >= 0, h(end),
                            np.where(inside, h(low) + np.maximum(rise(low), 0.0) * (high - low),
                                     weight * hill(end * _LOWEST, beta, k, alpha)))
    return most


def segments_from_breakpoints(xs: Floats, ys: Floats, error: float = 0.0) -> Segments:
    """Make segments through (xs, ys), xs strictly increasing from 0."""
    return _segments_through(xs, ys, np.array([0, len(xs)]), [error])[0]


def _segments_through(xs: Floats, ys: Floats, starts: Indices, errors: list[float],
                      rises: Floats | None = None) -> list[Segments]:
    """Per curve, its segments through its breakpoints: curve i's are xs[starts[i]:starts[i + 1]]
    (strictly increasing from 0), and ys the same, and `rises` (if given) the pieces' rises
    above the curve by the point each starts at; all curves at once (one at a time, 2,000
    curves' few array steps each took a tenth of their cut)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # Across two curves' boundary the entries mean nothing: no curve reads them.
        lengths = np.diff(xs)
        slopes = np.diff(ys) / lengths
    rising = np.flatnonzero(slopes[1:] > slopes[:-1] * (1 + 1e-12) + 1e-15)
    # A rise between a curve's segments i and i + 1 gates its first i + 1.
    curve = np.searchsorted(starts, rising, side="right") - 1
    inside = rising + 2 < starts[curve + 1]
    gated = np.zeros(len(errors), dtype=np.intp)
    np.maximum.at(gated, curve[inside], rising[inside] - starts[curve[inside]] + 1)
    made = []
    for i, (a, b) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist())):
        gates = int(gated[i])
        hull = upper_hull(xs[a:b], ys[a:b]) if gates else np.arange(b - a)
        made.append(Segments(lengths=lengths[a:b - 1], slopes=slopes[a:b - 1], gated=gates,
                             error=errors[i], hull=hull,
                             rises=None if rises is None else rises[a:b - 1]))
    return made


def prefixes(segments: Segments, uppers: Floats, curve: Floats | None = None,
             smallest: float = 0.0, share: float = 1.0) -> list[Segments]:
    """`segments` on [0, upper] for each of `uppers` (within their domain): the pieces that end
    before it, and the last one cut at it, as a cut to that upper would be, without cutting
    the curve again; each as the segments of a period of `share` (lengths, rises and error
    times it) (a channel's cells differ by their caps: cut to each, the Hill curves of a
    1,000 x 52 request with a quarter of its weeks capped were 7,427 cuts, 2.4 s of CPU).

    `curve`: the Hill curve (beta, k, alpha) the segments were cut from, with their pieces'
    rises (`Segments.rises`); None where the segments are the curve (linear, points), each
    piece its own line. A prefix's error is the largest rise of its pieces: those it keeps
    whole keep theirs; the last, from its start to the upper, is a piece of its own, whose
    rise is sampled on the curve as the cut samples its pieces (for a concave curve no more
    than the piece it is part of, whose chord lies below its own there). Cut within a
    tolerance of the curve's value at the least of `uppers` (`hill_segments`' `least`), each
    prefix is within it too. On the curve a point
    within `smallest` (the currency's minor unit on its scale, as `hill_segments` takes it)
    of the upper is left out, as the cut leaves out its points that near its end; on segments
    that are the curve the last piece keeps its slope.
    """
    return prefixes_of([(segments, uppers, curve, smallest, share)])[0]


# Per curve, what `prefixes` takes: its segments, the uppers, the Hill curve (or None), the
# smallest and the share.
Prefixing = tuple[Segments, Floats, Floats | None, float, float]


def prefixes_of(cuts: list[Prefixing]) -> list[list[Segments]]:
    """`prefixes` of each of `cuts`, all at once: the few array steps of each of 1,000 curves'
    prefixes, one curve at a time, were a sixth of a 1,000 x 52 solve with a quarter of its
    weeks capped (`bench/shapes.py`'s `near_linear`: 0.27 s of CPU). A Hill curve's values are
    read as the cut reads them (`hill_each`)."""
    # Every curve's pieces one after another (`offset`: where each curve's begin), and per
    # upper its curve, the piece it ends in (`whole`, counted within its curve), that piece's
    # start and the last piece's slope and rise.
    sizes = np.array([len(segments.lengths) for segments, *_ in cuts], dtype=np.intp)
    offset = np.cumsum(sizes) - sizes
    counts = np.array([len(uppers) for _, uppers, *_ in cuts], dtype=np.intp)
    item = np.repeat(np.arange(len(cuts)), counts)
    whole_parts, start_parts, slope_parts = [], [], []
    for segments, uppers, curve, smallest, _ in cuts:
        knots = np.concatenate(([0.0], np.cumsum(segments.lengths)))
        if curve is None:
            # The piece the upper falls in (the last where it lies at the end).
            whole = np.maximum(np.minimum(np.searchsorted(knots, uppers, side="left") - 1,
                                          len(segments.lengths) - 1), 0)
            slope = segments.slopes[whole]
        else:
            # Near the upper the piece would be too short for its slope to be read off the
            # curve (read below, every curve's at once).
            room = np.maximum(smallest, 1e-9 * uppers)
            whole = np.maximum(np.searchsorted(knots, uppers - room, side="right") - 1, 0)
            slope = np.full(len(uppers), np.nan)
        whole_parts.append(whole)
        start_parts.append(knots[whole])
        slope_parts.append(slope)
    flat = np.zeros(0)
    uppers = np.concatenate([u for _, u, *_ in cuts]) if cuts else flat
    whole = np.concatenate(whole_parts) if cuts else np.zeros(0, dtype=np.intp)
    start = np.concatenate(start_parts) if cuts else flat
    slope = np.concatenate(slope_parts) if cuts else flat
    hilly = np.array([cut[2] is not None for cut in cuts], dtype=bool)
    on_curve = np.flatnonzero(hilly[item])
    rows = np.array([cut[2] if cut[2] is not None else np.full(3, np.nan) for cut in cuts])
    if len(on_curve):
        assert all(segments.rises is not None for segments, _, curve, _, _ in cuts
                   if curve is not None), "a Hill curve's cut keeps its pieces' rises"
        parameters = rows[item[on_curve]].T
        slope[on_curve] = (hill_each(uppers[on_curve], *parameters)
                           - hill_each(start[on_curve], *parameters)) / \
            (uppers[on_curve] - start[on_curve])
    share = np.array([cut[4] for cut in cuts])[item]
    lengths_all = np.concatenate([segments.lengths for segments, *_ in cuts]) if cuts else flat
    slopes_all = np.concatenate([segments.slopes for segments, *_ in cuts]) if cuts else flat
    kept = np.array([segments.rises is not None for segments, *_ in cuts], dtype=bool)
    rises_all = np.concatenate([np.zeros(len(segments.lengths)) if segments.rises is None
                                else segments.rises for segments, *_ in cuts]) if cuts else flat
    # The last piece's rise, sampled on the curve as the cut samples its pieces.
    rise = np.zeros(len(uppers))
    if len(on_curve):
        units = np.array([cut[3] for cut in cuts])[item[on_curve]]
        above, _ = _errors(start[on_curve], uppers[on_curve], rows[item[on_curve]])
        rise[on_curve] = np.where(_holds_a_unit(start[on_curve], uppers[on_curve], units),
                                  above, 0.0)
    # Every prefix's pieces at once, one after another.
    pieces = whole + 1
    ends = np.cumsum(pieces)
    begins = ends - pieces
    owner = np.repeat(np.arange(len(uppers)), pieces)
    position = np.arange(int(ends[-1])) - begins[owner] if len(uppers) else \
        np.zeros(0, np.intp)
    at_end = position == whole[owner]
    base = offset[item]
    inner = base[owner] + np.minimum(position, (sizes - 1)[item][owner])
    lengths = np.where(at_end, (uppers - start)[owner], lengths_all[inner]) * share[owner]
    slopes = np.where(at_end, slope[owner], slopes_all[inner])
    rises = np.where(at_end, rise[owner], rises_all[inner]) * share[owner]
    errors = np.maximum.reduceat(rises, begins) if len(uppers) else flat
    # The prefix's gating: its whole pieces' rises in slope as the cut's, then the last's.
    # Per piece, the pieces gated up to it, as indices into all curves' pieces (each curve's
    # first piece holds its own start, so that the running maximum stays within the curve).
    same = np.diff(np.repeat(np.arange(len(cuts)), sizes)) == 0
    steps = np.flatnonzero(same & (slopes_all[1:] > slopes_all[:-1] * (1 + 1e-12) + 1e-15))
    gates_before = np.zeros(len(slopes_all), dtype=np.intp)
    gates_before[offset[sizes > 0]] = offset[sizes > 0]
    gates_before[steps + 1] = steps + 1
    np.maximum.accumulate(gates_before, out=gates_before)
    previous = base + np.maximum(whole - 1, 0)
    before = slopes_all[previous] if len(slopes_all) else flat
    gates = np.where(whole == 0, 0, np.where(slope > before * (1 + 1e-12) + 1e-15, whole,
                                             (gates_before[previous] - base)
                                             if len(slopes_all) else 0))
    counting = np.arange(int(pieces.max(initial=0)) + 1)
    made: list[Segments] = []
    for i, (a, b, gated) in enumerate(zip(begins.tolist(), ends.tolist(), gates.tolist())):
        hull = counting[:b - a + 1]
        if gated:
            xs = np.concatenate(([0.0], np.cumsum(lengths[a:b])))
            hull = upper_hull(xs, np.concatenate(([0.0], np.cumsum(lengths[a:b] * slopes[a:b]))))
        made.append(Segments(lengths=lengths[a:b], slopes=slopes[a:b], gated=gated,
                             error=float(errors[i]) if kept[item[i]] else 0.0, hull=hull,
                             rises=rises[a:b] if kept[item[i]] else None))
    bounds = np.r_[0, np.cumsum(counts)].tolist()
    return [made[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def upper_hull(xs: Floats, ys: Floats) -> npt.NDArray[np.intp]:
    """Indices of the points on the upper concave hull of (xs, ys), xs increasing (monotone
    chain): the concave envelope of the piecewise-linear curve through them.

    >>> upper_hull(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 0.1, 2.0, 2.5])).tolist()
    [0, 2, 3]
    """
    kept: list[int] = []
    for i in range(len(xs)):
        while len(kept) >= 2:
            a, b = kept[-2], kept[-1]
            # b lies on or below the chord a → i: it is not a corner of the envelope.
            if (ys[b] - ys[a]) * (xs[i] - xs[a]) <= (ys[i] - ys[a]) * (xs[b] - xs[a]):
                kept.pop()
            else:
                break
        kept.append(i)
    return np.asarray(kept, dtype=np.intp)


def envelope(segments: Segments) -> Segments:
    """The concave envelope of `segments` as segments of its own (no gating)."""
    xs = np.concatenate([[0.0], np.cumsum(segments.lengths)])
    ys = np.concatenate([[0.0], np.cumsum(segments.lengths * segments.slopes)])
    lengths = np.diff(xs[segments.hull])
    return Segments(lengths=lengths, slopes=np.diff(ys[segments.hull]) / lengths, gated=0,
                    error=segments.error, hull=np.arange(len(lengths) + 1))


def linear_segments(roi: float, upper: float) -> Segments:
    return Segments(lengths=np.array([upper]), slopes=np.array([roi]), gated=0, error=0.0,
                    hull=np.arange(2))


def points_segments(points: list[tuple[float, float]], upper: float) -> Segments:
    """Linear between the points, flat beyond the last, cut at `upper`."""
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    if xs[-1] < upper:
        xs, ys = np.append(xs, upper), np.append(ys, ys[-1])
    elif xs[-1] > upper:
        keep = xs < upper
        xs = np.append(xs[keep], upper)
        ys = np.append(ys[keep], np.interp(upper, [p[0] for p in points], [p[1] for p in points]))
    return segments_from_breakpoints(xs, ys)


def hill_segments(curves: Floats, relative: Floats | float, smallest: Floats | None = None,
                  least: Floats | None = None) -> list[Segments]:
    """Per Hill curve (rows of beta, k, alpha, upper): breakpoints on [0, upper] such that the
    curve is within `relative` (per row, where an array) × its value at upper of the pieces
    (at `least`, per row, where given: the smallest upper a prefix of the cut is taken to,
    `prefixes`, so that each is
    within `relative` of its own end's value, as a cut to it is); all curves cut at once.
    No piece is split into halves narrower than the curve's `smallest` (per row, the currency's
    minor unit on the curve's scale; 0 if not given): money moves in whole units, and halving
    towards 0 on alpha 0.1 made pieces of 1e-37 with slopes of 4e32, a matrix HiGHS refuses.
    The error counts the rise of the pieces a whole number of units falls strictly inside:
    where none does (the narrow pieces at 0), no plan spends inside the piece.

    Breakpoints are spread so that each piece carries an equal share of the integral of
    sqrt(|f''|), the density that minimises the interpolation error for a given count: dense near
    zero (alpha < 1) and around the bend, sparse on the saturated tail. Any piece whose sampled
    error still exceeds the tolerance is split until it does not.
    """
    beta, k, alpha, upper = (curves[:, i:i + 1] for i in range(4))
    tolerance = relative * hill(upper if least is None else least[:, None], beta, k, alpha)[:, 0]
    narrowest = 2.0 * (np.zeros(len(curves)) if smallest is None else smallest)
    # The grid from 0, the density at 0 taken as at the first point, the trapezoid sums of the
    # density along it and the points placed on them, a few rows at a time, so that the rows'
    # arrays stay in cache (as `_errors`): made for every curve at once, each step wrote out
    # and read back curves × 4,000 floats (2,000 curves: 0.25 → 0.1 s of CPU beside the
    # density).
    grid = np.zeros((_ROWS, len(_GRID) + 1))
    density = np.empty_like(grid)
    mass = np.zeros_like(grid)
    placed = []
    for begin in range(0, len(curves), _ROWS):
        part = slice(begin, begin + _ROWS)
        rows = len(upper[part])
        points, weights, sums = grid[:rows], density[:rows], mass[:rows]
        np.multiply(_GRID, upper[part], out=points[:, 1:])
        weights[:, 1:] = _hill_density(points[:, 1:], beta[part], k[part], alpha[part])
        weights[:, 0] = weights[:, 1]
        step = np.add(weights[:, 1:], weights[:, :-1])
        step *= np.subtract(points[:, 1:], points[:, :-1])
        step /= 2
        np.cumsum(step, axis=1, out=sums[:, 1:])
        counts = np.clip(np.ceil(sums[:, -1] / np.sqrt(8.0 * tolerance[part])), 1,
                         _MAX_SEGMENTS)
        for row, count in enumerate(counts.astype(int).tolist()):
            end = sums[row, -1]
            top = upper[begin + row, 0]
            xs = np.interp(np.linspace(0.0, end, count + 1), sums[row], points[row]) if end > 0 \
                else np.array([0.0, top])
            xs[0], xs[-1] = 0.0, top
            placed.append(xs)
    # Then every curve's points at once: where the grid is denser than a unit (near 0), on
    # whole units, where plans sit; the points stay sorted (rounding keeps the order), so only
    # equal neighbours are dropped.
    xs = np.concatenate(placed)
    owner = np.repeat(np.arange(len(placed)), [len(x) for x in placed])
    first = np.r_[True, owner[1:] != owner[:-1]]
    last = np.r_[owner[1:] != owner[:-1], True]
    unit = narrowest[owner] / 2
    gaps = np.diff(xs)
    inner = np.flatnonzero(~first & ~last & (unit > 0))
    dense = np.minimum(gaps[inner - 1], gaps[inner]) < unit[inner]
    xs[inner] = np.where(dense, np.round(xs[inner] / unit[inner]) * unit[inner], xs[inner])
    ends = xs[last][owner]
    keep = first | last | (unit <= 0) | ((xs > 0) & (xs <= ends - unit))
    xs, owner, first = xs[keep], owner[keep], first[keep]
    keep = first | np.r_[True, xs[1:] != xs[:-1]]
    xs, owner = xs[keep], owner[keep]
    # Split the pieces that are still too far from the curve, every curve at once; a curve
    # none of whose pieces split is done (its worst rise above its pieces is known). Only the
    # halves of split pieces are checked again: a piece a round kept was within the tolerance
    # (its curve, under the segment limit, split all those that were not), and its rise above
    # the curve, kept by the point it starts at, is the same when read again.
    rises = np.zeros(len(xs))
    fresh = np.ones(len(xs), dtype=bool)
    worst = np.zeros(len(curves))
    active = np.ones(len(curves), dtype=bool)
    while active.any():
        pieces = (owner[1:] == owner[:-1]) & active[owner[:-1]]
        piece = np.flatnonzero(pieces & fresh[:-1])
        curve = owner[piece]
        above, below = _errors(xs[piece], xs[piece + 1], curves[curve])
        rises[piece] = np.where(_holds_a_unit(xs[piece], xs[piece + 1], narrowest[curve] / 2),
                                above, 0.0)
        rise = np.zeros(len(curves))
        np.maximum.at(rise, owner[:-1][pieces], rises[:-1][pieces])
        worst = np.where(active, rise, worst)
        sizes = np.bincount(owner, minlength=len(curves))
        split = (np.maximum(above, below) > tolerance[curve]) & (sizes[curve] <= _MAX_SEGMENTS) \
            & (xs[piece + 1] - xs[piece] >= narrowest[curve])
        active = np.bincount(curve[split], minlength=len(curves)) > 0
        halved = piece[split]
        middle = (xs[halved] + xs[halved + 1]) / 2
        chain, chained = _first_halvings(xs, owner, halved, curves, tolerance, narrowest / 2)
        fresh = np.zeros(len(xs), dtype=bool)
        fresh[halved] = True
        # Each new point goes into its piece (a piece from 0 takes its halvings, rising, before
        # its middle), so the points stay in order curve by curve without sorting them again.
        at = np.concatenate((chained, halved)) + 1
        xs = np.insert(xs, at, np.concatenate((chain, middle)))
        owner = np.insert(owner, at, owner[at - 1])
        rises = np.insert(rises, at, 0.0)
        fresh = np.insert(fresh, at, True)
    starts = np.searchsorted(owner, np.arange(len(curves) + 1))
    ys = hill_each(xs, *curves[owner, :3].T)
    return _segments_through(xs, ys, starts, worst.tolist(), rises)


def _first_halvings(xs: Floats, owner: Indices, split: Indices, curves: Floats,
                    tolerance: Floats, smallest: Floats) -> tuple[Floats, Indices]:
    """The breakpoints that halving the split pieces starting at 0 adds in the rounds after
    this one, found now (beyond each piece's middle, which the round adds): b/4, b/8, … down
    to the first b/2^j whose piece [0, b/2^j] is within the tolerance, none below the curve's
    `smallest` (per curve), rising piece by piece, with the piece each lies in.

    A piece [0, b] of a curve with alpha < 1 is within the tolerance only near 0, its rise
    shrinking by 2^alpha a halving: alpha 0.3 took some 20 rounds of halving, each a pass over
    every piece of its batch (1,000 × 52 curves with alphas of 0.3-1: 0.9 s of a 1.3 s cut).
    The pieces are the ones halving makes (b·2^-j is exact in floats), so the curve is cut
    exactly as before.
    """
    start = split[xs[split] == 0.0]
    curve = owner[start]
    ends = xs[start + 1][:, None] * _HALVES
    above, below = _errors(np.zeros(ends.size), ends.ravel(),
                           curves[np.repeat(curve, len(_HALVES))])
    within = (np.maximum(above, below).reshape(ends.shape) <= tolerance[curve][:, None])
    # Halvings past the first within the tolerance, or all of them.
    halvings = np.where(within.any(axis=1), within.argmax(axis=1), len(_HALVES))
    keep = np.arange(len(_HALVES))[None, :] <= halvings[:, None]
    keep[:, 0] = False
    keep &= ends >= smallest[curve][:, None]
    rising = np.s_[:, ::-1]
    return ends[rising][keep[rising]], np.repeat(start, keep.sum(axis=1))


def _holds_a_unit(a: Floats, b: Floats, smallest: Floats) -> npt.NDArray[np.bool_]:
    """Per piece [a, b]: whether a whole multiple of its `smallest` lies strictly inside it
    (any point does where `smallest` is 0); a and b within 1e-9 of a multiple are on it."""
    unit = np.where(smallest > 0, smallest, 1.0)
    after_a = np.floor(a / unit + 1e-9) + 1
    inside: npt.NDArray[np.bool_] = (smallest <= 0) | (after_a < b / unit - 1e-9)
    return inside


def _errors(a: Floats, b: Floats, curves: Floats) -> tuple[Floats, Floats]:
    """Per piece [a, b] of its curve (rows of beta, k, alpha): how far the curve rises above
    and dips below its chord (sampled).

    The pieces go _CHUNK at a time: all at once, each temporary of pieces × samples floats was
    about 10 MB on a batch of 200 curves, written out to memory and read back; a chunk's stay
    in cache. (With the densities taken by chunks and the new points put into their pieces,
    the cut of 1,000 × 52 near-linear curves at its second tolerance: 1.10 → 0.84 s of CPU.)
    """
    above, below = np.empty(len(a)), np.empty(len(a))
    rows = np.ascontiguousarray(curves[:, :3].T)
    samples = _SAMPLES[:, None]
    for first in range(0, len(a), _CHUNK):
        part = slice(first, first + _CHUNK)
        beta, k, alpha = rows[:, part]
        start, end = a[part], b[part]
        fa, fb = hill(start, beta, k, alpha), hill(end, beta, k, alpha)
        # Samples × pieces: the extremes are then taken sample row by sample row, where one
        # piece's 31 samples at a time took a quarter of this function.
        x = start + samples * (end - start)
        gap = hill(x, beta, k, alpha) - (fa + samples * (fb - fa))
        above[part], below[part] = gap.max(axis=0), -gap.min(axis=0)
    return np.maximum(above, 0.0) * _SAMPLE_SAFETY, np.maximum(below, 0.0) * _SAMPLE_SAFETY
