"""A channel's curve is cut once, to the largest upper its cells need, and each cell with a
smaller upper (a capped period, the channel's own cap) gets the prefix of that cut
(`curves.prefixes`): the pieces before its upper, the last one cut at it. A prefix states its
own error, the largest rise of its pieces above the curve, the last piece's sampled on the
curve again. These tests read the true rise off a fine grid on every piece and hold the stated
error to it, on curves of each kind."""
from decimal import Decimal as D

import numpy as np
import pytest

from services.budget.optimizer import Channel, Hill, Linear, Period, Points, Problem, Reserve
from services.budget.optimizer import scaled as scaled_module
from services.budget.optimizer.curves import (
    Segments,
    hill,
    hill_segments,
    linear_segments,
    points_segments,
    prefixes,
    prefixes_of,
    segments_from_breakpoints,
)
from services.budget.optimizer.scaled import ScaledProblem
from services.budget.optimizer.solver import FIRST_TOLERANCE

RELATIVE = 4e-4
_T = np.linspace(0.0, 1.0, 2_001)[None, :]


def _knots(cut: Segments) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[0.0, np.cumsum(cut.lengths)], np.r_[0.0, np.cumsum(cut.lengths * cut.slopes)]


def _true_rises(cut: Segments, curve) -> np.ndarray:
    """Per piece, the most `curve` lies above it, on 2,001 points of the piece."""
    xs, ys = _knots(cut)
    a, b = xs[:-1], xs[1:]
    x = a[:, None] + _T * (b - a)[:, None]
    line = ys[:-1, None] + _T * (ys[1:] - ys[:-1])[:, None]
    return (curve(x) - line).max(axis=1)


def _hill(row):
    beta, k, alpha = row[:3]
    return lambda x: hill(x, beta, k, alpha)


def _points(points):
    xs, ys = np.array(points).T
    return lambda x: np.interp(x, xs, ys)


def _check(cut: Segments, curve, upper: float, tolerance: float | None = None) -> None:
    """`cut` (a prefix) covers [0, upper], its knots lie on the curve, and its stated error
    bounds the true rise of every piece (and is that rise, as the cut samples it)."""
    xs, ys = _knots(cut)
    assert np.all(cut.lengths > 0)
    assert xs[-1] == pytest.approx(upper, rel=1e-12)
    assert np.allclose(ys, curve(xs), rtol=1e-9, atol=1e-15)
    rises = _true_rises(cut, curve)
    noise = 1e-13 * ys[-1]
    # (the cut samples each piece at 31 points and adds 2 % for what lies between them)
    assert rises.max() <= cut.error * (1 + 1e-9) + noise
    assert cut.error <= 1.02 * max(rises.max(), 0.0) * (1 + 1e-6) + noise
    if tolerance is not None:
        assert cut.error <= 1.02 * tolerance
    # Gated and enveloped as the same breakpoints cut directly are.
    direct = segments_from_breakpoints(xs, ys)
    assert cut.gated == direct.gated
    assert np.array_equal(cut.hull, direct.hull)


@pytest.mark.parametrize(("alphas", "seed"), [((0.2, 1.0), 0), ((0.2, 1.0), 1),
                                               ((1.3, 3.5), 2), ((1.3, 3.5), 3)])
def test_a_hill_curves_prefixes_state_their_true_error(alphas, seed):
    """Concave (alpha ≤ 1) and S-shaped (alpha > 1) Hill curves, cut once with the tolerance
    taken at their least upper: each prefix, at uppers inside the first piece, on the bend
    and near the end, is within the tolerance of its own end's value, and states the true rise
    of its pieces (the last one cut at the upper too: a prefix of one piece from 0 keeps none
    whole, and with its rise left out would state 0)."""
    rng = np.random.default_rng(seed)
    count = 6
    rows = np.c_[rng.uniform(0.1, 2.0, count), 10 ** rng.uniform(-3, 0, count),
                 rng.uniform(*alphas, count), 10 ** rng.uniform(0, 1, count)]
    uppers = [np.sort(np.r_[rows[i, 3] * 10 ** rng.uniform(-4, -0.01, 5)]) for i in range(count)]
    least = np.array([u[0] for u in uppers])
    cuts = hill_segments(rows, RELATIVE, least=least)
    checked_single = 0
    for row, cut, mine, low in zip(rows, cuts, uppers, least):
        assert cut.rises is not None and cut.error == cut.rises.max()
        # and inside the first piece: a prefix of one piece, below the least upper
        mine = np.r_[mine, cut.lengths[0] * 0.5]
        for upper, prefix in zip(mine, prefixes(cut, mine, row[:3])):
            checked_single += len(prefix.lengths) == 1
            _check(prefix, _hill(row), upper,
                   RELATIVE * hill(upper, *row[:3]) if upper >= low else None)
    assert checked_single >= count


def test_a_prefix_of_one_piece_states_its_rise():
    """One Hill curve (beta 1, k 0.5, alpha 0.5) cut to 4, its prefix to a tenth of its first
    piece: nothing is kept whole, and the piece from 0 to the upper rises above its chord by
    what the fine grid finds there, not 0."""
    row = np.array([1.0, 0.5, 0.5, 4.0])
    cut = hill_segments(row[None, :], RELATIVE)[0]
    upper = cut.lengths[0] / 10
    prefix = prefixes(cut, np.array([upper]), row[:3])[0]
    assert len(prefix.lengths) == 1
    rise = _true_rises(prefix, _hill(row)).max()
    assert rise > 0 and rise <= prefix.error <= 1.02 * rise * (1 + 1e-6)


@pytest.mark.parametrize("points", [
    [(0.0, 0.0), (1.0, 3.0), (2.5, 4.0), (4.0, 4.5)],             # concave, capped at 4
    [(0.0, 0.0), (1.0, 0.5), (2.0, 3.0), (3.0, 3.5)],              # S-shaped
])
def test_a_points_curves_prefixes_are_the_curve(points):
    """Points curves (concave, S-shaped; flat past the last point, so a cut past it is capped
    there): the segments are the curve, and so is each prefix (error 0), at a point, between
    points and past the last; each is the cut to that upper."""
    curve = _points(points)
    cut = points_segments(points, 6.0)
    uppers = np.array([0.3, 1.0, 1.7, 2.5, 3.2, 4.0, 5.5])
    for upper, prefix in zip(uppers, prefixes(cut, uppers)):
        _check(prefix, curve, upper)
        assert prefix.error == 0.0
        direct = points_segments(points, float(upper))
        assert np.allclose(prefix.lengths, direct.lengths, rtol=1e-12)
        assert np.allclose(prefix.slopes, direct.slopes, rtol=1e-12)


def test_a_linear_curves_prefixes_are_the_line():
    cut = linear_segments(1.7, 5.0)
    for upper, prefix in zip([0.5, 5.0], prefixes(cut, np.array([0.5, 5.0]))):
        _check(prefix, lambda x: 1.7 * x, upper)
        assert prefix.slopes.tolist() == [1.7]


def test_a_channels_cells_are_prefixes_of_one_cut(monkeypatch):
    """Capped periods and capped channels (Hill curves of alpha 0.4-2.5, points and linear
    curves): each concave channel's curve is cut once per period share (an S-curve's to each
    upper, as before), and every cell's segments end
    at its upper, lie on its curve (scaled to its period) and state their true rise over the
    pieces a whole cent falls inside (no plan spends inside the others)."""
    rng = np.random.default_rng(11)
    channels = []
    for i in range(12):
        kind = i % 4
        if kind == 3:
            response = Points(((D(0), D(0)), (D(20_000), D(50_000)), (D(60_000), D(80_000))))
        elif kind == 2:
            response = Linear(D("1.3"))
        else:
            response = Hill(beta=D(int(rng.integers(50_000, 400_000))),
                            k=D(int(rng.integers(5_000, 80_000))),
                            alpha=D(str(round(float(rng.uniform(0.4, 2.5)), 2))))
        cap = D(int(rng.integers(20_000, 90_000))) if i % 3 == 0 else None
        channels.append(Channel(f"c{i}", response, max=cap))
    periods = tuple(Period(f"p{p}", weight=D("1.0") + D(p) / 10,
                           cap=D(int(rng.integers(8_000, 30_000))) if p % 2 else None)
                    for p in range(6))
    problem = Problem(total=D(600_000), decimals=2, reserve=Reserve(percent=D(0)),
                      channels=tuple(channels), periods=periods)
    model = ScaledProblem(problem)
    cut_rows = []
    real_cut = scaled_module.hill_segments

    def counting(curves, *args):
        cut_rows.append(len(curves))
        return real_cut(curves, *args)
    monkeypatch.setattr(scaled_module, "hill_segments", counting)
    cells = model.cells(FIRST_TOLERANCE)
    # A concave Hill curve is cut once; an S-curve once per upper its cells need.
    uppers = {c: {float(u) for u in cells.upper[cells.channel == c]} for c in range(12)}
    assert sum(cut_rows) == sum(1 if c.response.alpha <= 1 else len(uppers[i])
                                for i, c in enumerate(channels) if isinstance(c.response, Hill))
    assert sum(cut_rows) < sum(len(uppers[i]) for i, c in enumerate(channels)
                               if isinstance(c.response, Hill))
    unit = 0.01 / model.unit
    for i in range(len(cells)):
        cell = cells[i]
        response = channels[cell.channel].response
        share = cell.share
        if isinstance(response, Hill):
            row = [float(response.beta) / model.unit, float(response.k) / model.unit,
                   float(response.alpha)]

            def curve(x, row=row, share=share):
                return share * hill(x / share, *row)
        elif isinstance(response, Points):
            xs, ys = np.array([[float(s), float(r)] for s, r in response.points]).T / model.unit

            def curve(x, xs=xs, ys=ys, share=share):
                return share * np.interp(x / share, xs, ys)
        else:
            def curve(x):
                return 1.3 * x
        seg = cell.segments
        xs, ys = _knots(seg)
        assert xs[-1] == pytest.approx(cell.upper, rel=1e-12)
        assert np.allclose(ys, curve(xs), rtol=1e-9, atol=1e-15)
        rises = _true_rises(seg, curve)
        holds = np.floor(xs[:-1] / unit + 1e-9) + 1 < xs[1:] / unit - 1e-9
        assert rises[holds].max(initial=0.0) <= seg.error * (1 + 1e-9) + 1e-15
        # Within the tolerance of its own end's value, as a cut to its upper is.
        assert seg.error <= 1.02 * FIRST_TOLERANCE * float(curve(np.array(cell.upper)))


@pytest.mark.parametrize("seed", range(4))
def test_many_curves_prefixes_at_once_are_each_curves_own(seed):
    """`prefixes_of` takes every curve's prefixes at once (their pieces one after another):
    each curve's, among concave and S-shaped Hill curves, S-shaped and concave points curves
    and a line, at shares of a period, are what it gives the curve alone (whose pieces start
    at 0: an offset taken wrong, or a gate carried from one curve into the next, shows)."""
    rng = np.random.default_rng(seed)
    rows = np.c_[rng.uniform(0.1, 2.0, 4), 10 ** rng.uniform(-3, 0, 4),
                 [0.4, 0.9, 1.6, 3.0], 10 ** rng.uniform(0, 1, 4)]
    hills = hill_segments(rows, RELATIVE, np.full(4, 1e-6))
    cuts = [(cut, np.sort(row[3] * rng.uniform(0.001, 1.0, 5)), row[:3], 1e-6, share)
            for cut, row, share in zip(hills, rows, (1.0, 0.25, 0.5, 1 / 52))]
    for points in ([(0.0, 0.0), (1.0, 0.5), (2.0, 3.0), (3.0, 3.5)],
                   [(0.0, 0.0), (1.0, 3.0), (2.5, 4.0), (4.0, 4.5)]):
        cuts.append((points_segments(points, 6.0), np.array([0.3, 1.7, 2.5, 5.5]), None, 0.0,
                     0.5))
    cuts.insert(2, (linear_segments(1.7, 5.0), np.array([0.5, 5.0]), None, 0.0, 1.0))
    together = prefixes_of(cuts)
    assert any(prefix.gated for made in together for prefix in made)
    for cut, made in zip(cuts, together):
        alone = prefixes_of([cut])[0]
        assert len(made) == len(alone) == len(cut[1])
        for a, b in zip(made, alone):
            np.testing.assert_array_equal(a.lengths, b.lengths)
            np.testing.assert_array_equal(a.slopes, b.slopes)
            np.testing.assert_array_equal(a.hull, b.hull)
            assert (a.gated, a.error) == (b.gated, b.error)
            assert (a.rises is None) == (b.rises is None)
            if a.rises is not None:
                np.testing.assert_allclose(a.rises, b.rises, rtol=1e-12)
