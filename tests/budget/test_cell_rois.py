"""The most each cell's whole minor units return per unit spent on its true curve, and where
(`infeasibility._cell_rois`, which target_roi's best cell's plan and its bound read): made on
the cells' arrays, it is to the bit what reading the cells one by one made (`_reference`, the
loop it replaced: 2-2.5 s of CPU at 1,000 × 52, past the time limit)."""
import math
from decimal import Decimal as D

import numpy as np
import pytest

from services.budget.optimizer import (
    Channel,
    Deal,
    Hill,
    Linear,
    Period,
    Points,
    Problem,
    Reserve,
)
from services.budget.optimizer.infeasibility import _cell_rois
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem
from services.budget.optimizer.solver import FIRST_TOLERANCE
from shared.money import quantum


def _reference(model: ScaledProblem, cells: Cells) -> tuple[np.ndarray, np.ndarray]:
    """`_cell_rois` cell by cell."""
    unit = float(quantum(model.problem.decimals)) / model.unit
    candidates = []
    for cell in cells:
        reach = min(cell.upper, model.budget, model.upper[cell.channel])
        response = model.problem.channels[cell.channel].response
        if isinstance(response, Deal) or reach < unit * (1 - 1e-9):
            candidates.append(np.zeros(0))
            continue
        if isinstance(response, Hill) and response.alpha > 1:
            inner = np.array([float(response.k) / model.unit * (float(response.alpha) - 1) ** (
                1 / float(response.alpha)) * cell.share])
        elif isinstance(response, Points):
            inner = np.array([float(x) for x, _ in response.points[1:]]) / model.unit * cell.share
        else:
            inner = np.zeros(0)
        units = np.floor(np.r_[inner, inner + unit, unit, reach] / unit + 1e-9)
        candidates.append(np.unique(np.clip(units, 1, math.floor(reach / unit + 1e-9))) * unit)
    owner = np.repeat(np.arange(len(cells)), [len(c) for c in candidates])
    spend = np.concatenate(candidates)
    ratio = model.true_returns(Cells(cells[i] for i in owner.tolist()), spend) / spend
    rois = np.full(len(cells), -math.inf)
    np.maximum.at(rois, owner, ratio)
    at = np.zeros(len(cells))
    top = ratio >= rois[owner]
    at[owner[top]] = spend[top]
    for i, cell in enumerate(cells):
        if cell.deal is not None and cell.deal[0] <= min(cell.upper, model.budget) + EPS:
            rois[i], at[i] = cell.deal[1] / cell.deal[0], cell.deal[0]
    return rois, at


def _problem(seed: int) -> Problem:
    """Every kind of curve (S-shaped and concave Hill curves, points, linear, deals, one dearer
    than any period holds), channels capped (one below a cent), periods of unequal shares and
    weights, one capped below a cent and one below the dear deal."""
    rng = np.random.default_rng(seed)
    channels = []
    for i in range(12):
        kind = i % 6
        if kind in (0, 1):
            response = Hill(D(int(rng.integers(2_000, 9_000))), D(int(rng.integers(300, 2_000))),
                            D(str(round(rng.uniform(1.2, 3.0) if kind else rng.uniform(0.4, 1.0),
                                        2))))
        elif kind == 2:
            xs = np.sort(rng.choice(np.arange(1, 5_000), 4, replace=False))
            ys = np.cumsum(rng.uniform(0.2, 3.0, 4) * np.diff(np.r_[0, xs]))
            response = Points(((D(0), D(0)),) + tuple(
                (D(int(x)), D(str(round(y, 2)))) for x, y in zip(xs, ys)))
        elif kind == 3:
            response = Linear(D(str(round(rng.uniform(0.5, 2.5), 2))))
        else:
            response = Deal(D(int(rng.integers(200, 900)) * (10 if i == 10 else 1)),
                            D(int(rng.integers(500, 3_000))))
        cap = None if kind > 3 or rng.random() < 0.5 else D(int(rng.integers(100, 3_000)))
        channels.append(Channel(f"c{i}", response, max=D("0.004") if i == 3 else cap))
    periods = (Period("p0", share=D(3), weight=D("1.2")),
               Period("p1", share=D(1), weight=D("0.7"), cap=D("0.005")),
               Period("p2", share=D(2), weight=D("1.1"), cap=D(1_500)),
               Period("p3", share=D(1), weight=D("0.9")))
    return Problem(total=D(20_000), decimals=2, reserve=Reserve(percent=D(0)),
                   channels=tuple(channels), periods=periods, objective="target_roi",
                   target_roi=D(2))


@pytest.mark.parametrize("seed", range(5))
def test_cell_rois_are_the_cell_by_cell_ones(seed: int) -> None:
    model = ScaledProblem(_problem(seed))
    cells = model.cells(FIRST_TOLERANCE)
    rois, at = _cell_rois(model, cells)
    expected_rois, expected_at = _reference(model, cells)
    # Every kind of cell is there: one spending none, a deal dearer than its period holds.
    assert np.isinf(expected_rois).any() and np.isfinite(expected_rois[cells.is_deal]).any()
    assert np.array_equal(rois, expected_rois)
    assert np.array_equal(at, expected_at)
