"""The greedy over shared curves gives the plan of the greedy that laid every cell's segments out
(`greedy_reference`, the implementation it replaced) to the cent, on many seeded problems made
to meet its hard cases: ties (linear channels, equal period weights), floors, caps, profit."""
import warnings
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
    Points,
    Problem,
    Reserve,
    greedy,
    solve,
)
from services.budget.optimizer.curves import hill, hill_priced_most, hill_segments
from services.budget.optimizer.rounding import round_allocation
from services.budget.optimizer.scaled import Cells, ScaledProblem
from services.budget.optimizer.solver import FIRST_TOLERANCE
from tests.budget import greedy_reference


def concave_channels(rng: np.random.Generator, count: int, *,
                     only_hill: bool = False) -> list[Channel]:
    """`count` concave channels: linear, Hill (alpha ≤ 1) or points curves (only Hill with
    `only_hill`), a floor on some, a cap on others."""
    made = []
    for i in range(count):
        kind = 1 if only_hill else rng.integers(0, 3)
        if kind == 0:
            # Few distinct ROIs: channels tie with each other as well as across periods.
            response: Linear | Hill | Points = Linear(D(int(rng.choice([50, 120, 200]))) / 100)
        elif kind == 1:
            response = Hill(D(int(rng.integers(10_000, 3_000_000))),
                            D(int(rng.integers(1_000, 1_000_000))),
                            D(int(rng.integers(30, 101))) / 100)
        else:
            spends = np.sort(rng.choice(np.arange(1_000, 2_000_000, 1_000), 3, replace=False))
            slopes = np.sort(rng.integers(10, 400, 3))[::-1]
            returns = np.cumsum(np.diff(np.r_[0, spends]) * slopes / 100)
            response = Points(((D(0), D(0)),) + tuple(
                (D(int(s)), D(int(r))) for s, r in zip(spends, returns)))
        low = D(int(rng.integers(0, 20_000))) if rng.random() < 0.3 else None
        high = D(int(rng.integers(20_000, 2_000_000))) if rng.random() < 0.5 else None
        made.append(Channel(f"c{i}", response, min=low, max=high))
    return made


def seeded_problem(seed: int, channels: int | None = None, periods: int | None = None) -> Problem:
    rng = np.random.default_rng(seed)
    channels = int(rng.integers(1, 40)) if channels is None else channels
    periods = int(rng.integers(0, 10)) if periods is None else periods
    total = D(int(rng.integers(10_000, 5_000_000)))
    made = concave_channels(rng, channels)
    equal = rng.random() < 0.5
    return Problem(
        total=total, decimals=2, reserve=Reserve(percent=D(int(rng.integers(0, 30)))),
        channels=tuple(made),
        periods=tuple(Period(f"p{p}", weight=D(1) if equal else D(int(rng.integers(50, 150))) / 100)
                      for p in range(periods)),
        objective="max_profit" if rng.random() < 0.2 else "max_return")


@pytest.mark.parametrize(("seed", "channels", "periods"),
                         [(seed, None, None) for seed in range(300)]
                         + [(seed, 300, 26) for seed in range(1000, 1004)])
def test_greedy_gives_the_reference_plan_to_the_cent(seed, channels, periods):
    model = ScaledProblem(seeded_problem(seed, channels, periods))
    cells = model.cells(FIRST_TOLERANCE)
    if not greedy.applies(model, cells):
        pytest.skip("floors above the money available: the MILP's case")
    new, old = greedy.solve(model, cells), greedy_reference.solve(model, cells)
    assert new.marginal_value == old.marginal_value
    assert new.model_return == pytest.approx(old.model_return, rel=1e-12, abs=1e-15)
    assert round_allocation(model, cells, new.spend).units.tolist() == \
        round_allocation(model, cells, old.spend).units.tolist()


def test_greedy_ties_share_the_level_in_cell_order():
    # Two linear channels with the same ROI over three equal periods: every segment ties, so
    # the money goes to the cells in order, each filled whole (to its channel's cap) in turn.
    problem = Problem(total=D(450), decimals=2,
                      channels=(Channel("a", Linear(D(2)), max=D(200)),
                                Channel("b", Linear(D(2)), max=D(400))),
                      periods=tuple(Period(f"p{p}") for p in range(3)))
    result = solve(problem)
    assert [[p.amount for p in a.periods] for a in result.allocations] == \
        [[D("200.00"), D("0.00"), D("0.00")], [D("250.00"), D("0.00"), D("0.00")]]
    assert result.marginal_value_of_budget == D("2.000000")


def test_greedy_takes_a_curve_whose_slopes_rise_within_the_concave_tolerance():
    # The second piece is steeper than the first by 1e-13 (relative): concave within the
    # tolerance, so the greedy solves it, reading the pieces by falling slope.
    points = ((D(0), D(0)), (D(100_000), D(200_000)),
              (D(200_000), D("400000.00000002")), (D(400_000), D(500_000)))
    problem = Problem(total=D(450_000), decimals=2,
                      channels=(Channel("a", Points(points)), Channel("b", Linear(D("1.5")))),
                      periods=(Period("p0"), Period("p1", weight=D("0.8"))))
    model = ScaledProblem(problem)
    cells = model.cells(FIRST_TOLERANCE)
    assert greedy.applies(model, cells)
    assert np.any(np.diff(cells[0].segments.slopes) > 0)
    new, old = greedy.solve(model, cells), greedy_reference.solve(model, cells)
    assert new.marginal_value == old.marginal_value
    assert round_allocation(model, cells, new.spend).units.tolist() == \
        round_allocation(model, cells, old.spend).units.tolist()


@pytest.mark.parametrize("seed", range(60))
def test_greedy_from_a_guessed_level_gives_the_same_plan(seed):
    # A guess only picks the selections' first pivots: started from the plan at other prices
    # per period (near or far, as the priced greedy's rounds are), or at the same prices, the
    # greedy gives bit for bit the plan it gives with no guess.
    model = ScaledProblem(seeded_problem(seed))
    cells = model.cells(FIRST_TOLERANCE)
    if not greedy.concave(model, cells):
        pytest.skip("floors above the money available: the MILP's case")
    rng = np.random.default_rng(seed)
    curves = greedy.Curves.of(cells)
    prices = rng.uniform(0.0, 0.5, len(model.periods))[cells.period]
    priced = replace(curves, price=prices)
    alone = greedy.fill_segments(model, priced)
    for nearby in (prices, prices * (1 + rng.uniform(-1e-4, 1e-4, len(prices))),
                   prices * rng.uniform(0.0, 2.0), np.zeros(len(prices))):
        near = greedy.fill_segments(model, replace(curves, price=nearby))
        guessed = greedy.fill_segments(model, priced, near=near)
        assert guessed.spend.tolist() == alone.spend.tolist()
        assert guessed.level.tolist() == alone.level.tolist()
        assert (guessed.marginal, guessed.model_return) == (alone.marginal, alone.model_return)


@pytest.mark.parametrize("seed", range(20))
def test_a_hill_curves_priced_most_bounds_its_top_and_meets_it(seed):
    # Against the curve on a grid of 200,001 points: never below the grid's best, and above it
    # by no more than the grid's own spacing can hide; prices from below zero (the top at the
    # end) to past the slope at zero (at 0 for alpha = 1).
    rng = np.random.default_rng(seed)
    count = 12
    beta, k = rng.uniform(0.01, 2.0, count), rng.uniform(1e-4, 1.0, count)
    alpha = np.r_[1.0, rng.uniform(0.3, 1.0, count - 1)]
    end, weight = rng.uniform(1e-3, 3.0, count), rng.uniform(0.0, 2.0, count)
    slope_at_end = weight * beta * alpha * (end / k) ** alpha / (end * (1 + (end / k) ** alpha) ** 2)
    price = slope_at_end * rng.choice([-1.0, 0.5, 2.0, 50.0, 1e4], count)
    most = hill_priced_most(beta, k, alpha, end, weight, price)
    grid = np.linspace(0.0, 1.0, 200_001)[None, :] * end[:, None]
    values = weight[:, None] * hill(grid, beta[:, None], k[:, None], alpha[:, None]) - \
        price[:, None] * grid
    best = values.max(axis=1)
    scale = np.maximum(np.abs(values).max(axis=1), 1e-12)
    assert np.all(most >= best - 1e-12 * scale)
    assert np.all(most <= best + 1e-6 * scale)


@pytest.mark.parametrize("seed", range(40))
def test_the_greedys_priced_error_bounds_the_true_optimum(seed):
    # A coarse cut's plan, its bound by the prices; the true optimum is at least a very fine
    # cut's plan on the true curves: the bound must reach that, and at the fine cut itself be
    # near 0 (the prices' bound is tight where the plan is).
    _check_priced_error(seeded_problem(seed), greedy.applies, greedy.solve)


def _check_priced_error(problem, applies, route) -> None:
    model = ScaledProblem(problem)
    coarse, fine = model.cells(2e-2), model.cells(1e-6)
    if not applies(model, coarse):
        pytest.skip("not this route")
    solution, finest = route(model, coarse), route(model, fine)
    if solution is None or finest is None:
        pytest.skip("no plan on this route: the MILP's case")
    profit = 1.0 if problem.objective == "max_profit" else 0.0

    def objective(cells, spend):
        return float(model.true_returns(cells, spend).sum()) - profit * float(spend.sum())

    error = model.priced_error(coarse, solution)
    assert error is not None and error >= 0.0
    plan, best = objective(coarse, solution.spend), objective(fine, finest.spend)
    true = float(model.true_returns(coarse, solution.spend).sum())
    assert best <= plan + error * true + 1e-9 * max(model.budget, 1.0)
    assert model.priced_error(fine, finest) <= 1e-5


def test_the_cells_fields_as_arrays_are_the_cells_own():
    """The cut gives its cells' fields as arrays made with the cells, not read back from them:
    they are what the cells hold, with a deal in every period, a curve left out where its cap
    (a channel's max of 0, a period's cap of 0) leaves no room, and shares and weights given."""
    problem = Problem(total=D(100_000), decimals=2, reserve=Reserve(percent=D(0)),
                      channels=(Channel("a", Hill(D(500_000), D(200_000), D("0.5"))),
                                Channel("b", Deal(D(20_000), D(50_000))),
                                Channel("c", Linear(D(2)), max=D(0)),
                                Channel("d", Linear(D("1.5")), max=D(30_000))),
                      periods=(Period("p0", weight=D(0), share=D(1)),
                               Period("p1", weight=D("1.3"), cap=D(0), share=D(2)),
                               Period("p2", weight=D(1), cap=D(40_000), share=D(1))))
    cells = ScaledProblem(problem).cells(FIRST_TOLERANCE)
    read = Cells(list(cells))
    assert [(cell.channel, cell.period) for cell in cells] == \
        [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2), (3, 0), (3, 2)]
    for field in ("channel", "period", "weight", "upper", "share", "is_deal"):
        made, own = getattr(cells, field), getattr(read, field)
        assert made.dtype == own.dtype and np.array_equal(made, own), field


def test_a_period_of_weight_zero_has_a_slope_of_zero():
    """A period of weight 0 returns nothing at any spend: its cell's true slope is 0, not
    0 · ∞ (a Hill curve with alpha < 1 is infinitely steep at 0), and the answer is made without
    a RuntimeWarning, nothing spent in that period."""
    problem = Problem(total=D(100_000), decimals=2, reserve=Reserve(percent=D(0)),
                      channels=(Channel("c0", Hill(D(500_000), D(200_000), D("0.5"))),),
                      periods=(Period("p0", weight=D(0)), Period("p1", weight=D(1))))
    model = ScaledProblem(problem)
    cells = model.cells(FIRST_TOLERANCE)
    slopes = model.true_slopes(cells, np.zeros(len(cells)))
    assert slopes[0] == 0.0 and slopes[1] == np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        answer = solve(problem)
    assert answer.figures.cell_amounts[0].tolist() == [0, 10_000_000]


@pytest.mark.parametrize("seed", range(2))
def test_a_steep_hill_curves_first_piece_is_halved_to_its_tolerance(seed):
    """Near 0 a Hill curve with a small alpha rises as s^alpha, its first piece's rise shrinking
    only 2^alpha a halving (alpha 0.25: 20 halvings and more, found at once): every piece is
    within the tolerance on a grid of 2,001 points, the cut's error is its worst rise, and the
    first piece is a halving of the one before, which was not within it."""
    rng = np.random.default_rng(seed)
    count = 20
    beta, k = rng.uniform(0.01, 2.0, count), 10 ** rng.uniform(-6, 0, count)
    alpha, upper = rng.uniform(0.2, 0.5, count), 10 ** rng.uniform(-2, 1, count)
    relative = 4e-4
    cuts = hill_segments(np.c_[beta, k, alpha, upper], relative)
    t = np.linspace(0.0, 1.0, 2_001)[None, :]

    def rise(a, b, i):
        """The curve's rise above the chord of each piece [a, b] of curve i, on the grid."""
        x = a[:, None] + t * (b - a)[:, None]
        ya, yb = hill(a, beta[i], k[i], alpha[i]), hill(b, beta[i], k[i], alpha[i])
        chord = ya[:, None] + t * (yb - ya)[:, None]
        return (hill(x, beta[i], k[i], alpha[i]) - chord).max(axis=1)

    for i, cut in enumerate(cuts):
        xs = np.r_[0.0, np.cumsum(cut.lengths)]
        tolerance = relative * hill(upper[i], beta[i], k[i], alpha[i])
        rises = rise(xs[:-1], xs[1:], i)
        assert np.all(rises <= tolerance * (1 + 1e-9)) and cut.error >= rises.max() * (1 - 1e-6)
        doubled = rise(np.zeros(1), 2 * xs[1:2], i)[0]
        # (the cut samples each piece at 31 points and adds 2 % for what lies between them)
        assert doubled * 1.02 > tolerance


def test_curves_cut_together_are_cut_as_each_alone():
    """The cut samples its pieces and takes its curves' densities a chunk at a time, and puts
    each round's new points into their pieces without sorting: 40 curves (S-shaped ones too)
    cut in one call, over several chunks of each, get the very breakpoints and errors that
    each gets cut alone."""
    rng = np.random.default_rng(7)
    count = 40
    rows = np.c_[rng.uniform(0.01, 2.0, count), 10 ** rng.uniform(-4, 0, count),
                 rng.uniform(0.2, 3.0, count), 10 ** rng.uniform(-1, 1, count)]
    smallest = np.full(count, 1e-7)
    together = hill_segments(rows, 1e-5, smallest)
    assert sum(len(cut.lengths) for cut in together) > 3 * 2_048
    for row, cut in zip(rows, together):
        alone = hill_segments(row[None, :], 1e-5, smallest[:1])[0]
        assert np.array_equal(cut.lengths, alone.lengths)
        assert np.array_equal(cut.slopes, alone.slopes)
        assert (cut.error, cut.gated) == (alone.error, alone.gated)


def test_a_steep_hill_curves_pieces_stop_at_the_currencys_minor_unit():
    """Trial 18e (`mini_roi_a0.1`): halving towards 0 on alpha 0.1 made first pieces 1e-37
    wide with slopes of 4e32, a matrix HiGHS refused (a 500). No piece is narrower than the
    smallest unit given, and the error counts only pieces a whole unit falls strictly inside:
    the narrow ones at 0 hold no plan."""
    beta, k, alpha, upper, unit = 0.9, 0.15, 0.1, 1.0, 1e-8   # 1,000,000 a unit: a cent
    cut = hill_segments(np.array([[beta, k, alpha, upper]]), 1e-4, np.array([unit]))[0]
    xs = np.r_[0.0, np.cumsum(cut.lengths)]
    assert cut.lengths.min() >= unit * (1 - 1e-9)
    assert cut.slopes.max() < 1e15
    t = np.linspace(0.0, 1.0, 2_001)[None, :]
    units = np.floor(xs[:-1] / unit + 1e-9) + 1 < xs[1:] / unit - 1e-9
    a, b = xs[:-1][units], xs[1:][units]
    x = a[:, None] + t * (b - a)[:, None]
    ya, yb = hill(a, beta, k, alpha), hill(b, beta, k, alpha)
    rises = (hill(x, beta, k, alpha) - (ya[:, None] + t * (yb - ya)[:, None])).max(axis=1)
    assert cut.error >= rises.max() * (1 - 1e-6)
    assert not units[0]
