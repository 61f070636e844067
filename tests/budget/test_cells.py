"""The cells `ScaledProblem.cells` gives: their arrays and curves are those of the `Cell`
objects, which are made only when a cell is read, and the concave route reads none."""
import copy
from dataclasses import replace
from decimal import Decimal as D

import numpy as np
import pytest

from services.budget.optimizer import (
    Channel,
    Deal,
    Hill,
    Linear,
    Period,
    Problem,
    Reserve,
    scaled,
    solve,
)
from services.budget.optimizer.assembly import PRICE_FIXED, PRICE_MOST, PRICE_PER_CELL
from services.budget.optimizer.scaled import Cells, ScaledProblem
from services.budget.optimizer.solver import FIRST_TOLERANCE
from tests.budget.test_greedy import concave_channels


def _problem(seed: int, deals: bool) -> Problem:
    rng = np.random.default_rng(seed)
    channels = concave_channels(rng, 12)
    # Two channels on one curve object: their cells share its segments.
    shared = Hill(D(400_000), D(50_000), D("0.7"))
    channels += [Channel("s1", shared), Channel("s2", shared, max=D(3_000))]
    if deals:
        channels.append(Channel("d", Deal(D(20_000), D(50_000))))
    periods = tuple(Period(f"p{p}", weight=D(str(round(rng.uniform(0.5, 1.5), 2))),
                           cap=D(int(rng.integers(0, 400_000))) if p % 3 == 1 else None)
                    for p in range(7))
    return Problem(total=D(2_000_000), decimals=2, reserve=Reserve(percent=D(5)),
                   channels=tuple(channels), periods=periods)


@pytest.mark.parametrize("seed", range(6))
def test_cells_arrays_and_curves_match_the_cells_read(seed: int) -> None:
    made = ScaledProblem(_problem(seed, deals=seed % 2 == 0)).cells(FIRST_TOLERANCE)
    # The same cells read one by one, then asked for their arrays and curves afresh.
    read = Cells(list(made))
    assert len(read) == len(made)
    for field in ("channel", "period", "weight", "upper", "share", "is_deal"):
        assert np.array_equal(getattr(made, field), getattr(read, field)), field
    distinct, curve = made.curve_of
    assert [id(s) for s in distinct] == [id(s) for s in read.curve_of[0]]
    assert np.array_equal(curve, read.curve_of[1])
    assert [cell.segments for cell in read] == [distinct[i] for i in curve.tolist()]
    assert [(id(s), m.tolist()) for s, m in made.curves] == \
        [(id(s), m.tolist()) for s, m in read.curves]
    # A channel's uncapped periods share one curve; the deal's cells hold None.
    uncapped = np.flatnonzero((made.channel == 12) & (made.period % 3 != 1))
    assert len(set(curve[uncapped].tolist())) == 1
    assert [distinct[i] is None for i in curve.tolist()] == made.is_deal.tolist()


def _refuse_cells(monkeypatch) -> None:
    """Any `Cell` made fails the test."""
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Cell was made")

    monkeypatch.setattr(scaled.Cell, "__init__", refused)


def test_concave_route_reads_no_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Concave curves under period caps, solved within the first cut, on more cells than the
    budget's pricing on the true curves takes (`assembly.PRICE_PER_CELL`): the cut, the priced
    greedy, its LP, the error bound, the rounding and the answer work on the cells' arrays
    alone (making 52,000 `Cell` objects took a quarter of each cut at 1,000 × 52)."""
    rng = np.random.default_rng(5)
    channels = tuple(Channel(f"c{i}", Hill(D(int(rng.integers(200_000, 900_000))),
                                           D(int(rng.integers(50_000, 200_000))),
                                           D(str(round(rng.uniform(0.7, 1.0), 2)))))
                     for i in range(160))
    problem = Problem(total=D(16_000_000), decimals=2, reserve=Reserve(percent=D(5)),
                      channels=channels,
                      periods=tuple(Period(f"w{w}", cap=D(200_000) if w % 4 == 1 else None)
                                    for w in range(52)))
    assert PRICE_FIXED + PRICE_PER_CELL * 160 * 52 > PRICE_MOST

    _refuse_cells(monkeypatch)
    answer = solve(problem)
    assert answer.status == "optimal" and answer.solver == "greedy+highs"
    assert answer.approximation_error <= 0.001
    assert answer.figures.cell_amounts[:, 1::4].sum(axis=0).max() <= 20_000_000


def test_cells_are_made_as_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that stops at the first cell cut with an error (the solver's check before a
    finer cut) makes that cell alone; the cells then read in full are the same ones."""
    made = ScaledProblem(_problem(0, deals=False)).cells(FIRST_TOLERANCE)
    count = 0
    make = scaled.Cell.__init__

    def counted(*args: object, **kwargs: object) -> None:
        nonlocal count
        count += 1
        make(*args, **kwargs)   # type: ignore[arg-type]

    monkeypatch.setattr(scaled.Cell, "__init__", counted)
    distinct, curve = made.curve_of
    cut = np.array([s is not None and s.error > 0 for s in distinct])[curve]
    assert cut.any() and not cut[0]
    first = next(cell for cell in made if cell.segments is not None and cell.segments.error)
    assert count == int(np.argmax(cut)) + 1
    read = list(made)
    assert read[int(np.argmax(cut))] is first
    assert count == len(made) == len(read)
    assert [cell.segments for cell in read] == [distinct[i] for i in curve.tolist()]


def test_true_returns_kept_for_the_same_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error bound, the priced bound and the rounding's loss each ask for the solver's
    plan's true returns: the curves are read once for it, and again for a plan changed in
    place."""
    model = ScaledProblem(_problem(1, deals=True))
    cells = model.cells(FIRST_TOLERANCE)
    spend = np.minimum(cells.upper, 0.01)
    reads = 0
    curve = scaled.hill_each

    def counted(*args: object) -> object:
        nonlocal reads
        reads += 1
        return curve(*args)   # type: ignore[arg-type]

    monkeypatch.setattr(scaled, "hill_each", counted)
    first = model.true_returns(cells, spend)
    once = reads
    assert once > 0
    again = model.true_returns(cells, spend)
    assert reads == once and np.array_equal(first, again) and again is not first
    again[:] = 0.0
    assert np.array_equal(model.true_returns(cells, spend), first)
    spend[0] = 0.0
    changed = model.true_returns(cells, spend)
    assert reads == 2 * once and changed[0] == 0.0
    assert np.array_equal(changed[1:], first[1:])


def test_true_returns_of_a_copy_with_other_curves_are_its_own() -> None:
    """A copy of the model given other curves (as `first_plan` gives the deals' channels) reads
    them, not the returns kept for the same cells and spend on the original's."""
    model = ScaledProblem(_problem(2, deals=False))
    cells = model.cells(FIRST_TOLERANCE)
    spend = np.minimum(cells.upper, 0.01)
    first = model.true_returns(cells, spend)
    other = copy.copy(model)
    other.problem = replace(model.problem, channels=tuple(
        replace(c, response=Linear(D(2))) for c in model.problem.channels))
    doubled = other.true_returns(cells, spend)
    assert np.allclose(doubled, 2 * spend * cells.weight)
    assert not np.allclose(doubled, first)
    assert np.array_equal(model.true_returns(cells, spend), first)


def test_s_curve_route_reads_no_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """S-curves under the budget alone, whose envelopes' greedy plan is within its gap: the
    envelopes, the greedy, the plan moved off the curves' convex starts, its gap and the answer
    work on the cells' arrays alone (made one by one, 110,000 envelopes' cells took 0.9 s of
    CPU at 2,000 × 55, and the answer came past its 2 s limit)."""
    rng = np.random.default_rng(5)
    channels = tuple(Channel(f"s{i}", Hill(D(int(rng.integers(200_000, 900_000))),
                                           D(int(rng.integers(30_000, 200_000))),
                                           D(str(round(rng.uniform(1.5, 3.5), 2)))))
                     for i in range(160))
    problem = Problem(total=D(24_000_000), decimals=2, reserve=Reserve(percent=D(10)),
                      channels=channels,
                      periods=tuple(Period(f"w{w}", weight=D(str(round(1 + 0.3 * np.cos(w), 3))))
                                    for w in range(52)))
    assert PRICE_FIXED + PRICE_PER_CELL * 160 * 52 > PRICE_MOST

    _refuse_cells(monkeypatch)
    answer = solve(problem)
    assert answer.status == "optimal" and answer.approximation_error <= 0.001
    assert answer.spend == D(21_600_000)


@pytest.mark.parametrize("seed", range(2))
def test_cells_selected_hold_the_arrays_and_curves_they_are_read_with(seed: int) -> None:
    """`Cells.select`: the cells an index names (repeated, out of order), with their curves
    replaced where asked (as the envelopes are), read one by one are the arrays it gave."""
    made = ScaledProblem(_problem(seed, deals=True)).cells(FIRST_TOLERANCE)
    index = np.r_[np.arange(len(made))[::-3], 0, 0]
    distinct, curve = made.curve_of
    # Each curve replaced by a copy of itself: its own object, the same segments.
    copies = [None if seg is None else copy.copy(seg) for seg in distinct]
    for curves in (None, copies):
        selected = made.select(index, curves)
        read = Cells(list(selected))
        assert len(read) == len(index)
        for field in ("channel", "period", "weight", "upper", "share", "is_deal"):
            assert np.array_equal(getattr(selected, field), getattr(read, field)), field
            assert np.array_equal(getattr(selected, field), getattr(made, field)[index]), field
        shown = distinct if curves is None else curves
        assert [cell.segments for cell in read] == [shown[i] for i in curve[index].tolist()]
        assert all(read[j].deal == made[i].deal for j, i in enumerate(index.tolist()))
        if curves is not None:
            assert all(read[j].segments is copies[curve[i]] for j, i in enumerate(index.tolist()))
