"""Many Hill curves' points are read in a few calls (`curves.hill_each`, `hill_slope_each`),
and each point must come out as reading its curve alone gives it: the cut's breakpoints, its
prefixes' last pieces and the plan's true returns are compared with values read so, and numpy's
power rounds some single exponents (0.5, 2) on a path of its own."""
import numpy as np

from services.budget.optimizer.curves import hill, hill_each, hill_slope, hill_slope_each


def _curves() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points of 60 curves, shuffled together: alphas of 0.5, 1 and 2 among 0.3-1.9, a few
    spends of 0."""
    rng = np.random.default_rng(5)
    curves = np.column_stack([rng.uniform(1, 50, 60), rng.uniform(0.1, 5, 60),
                              np.r_[[0.5, 1.0, 2.0] * 4, np.round(rng.uniform(0.3, 1.9, 48), 2)]])
    owner = rng.integers(0, 60, 5_000)
    spend = rng.uniform(0.0, 20.0, 5_000)
    spend[::97] = 0.0
    return spend, owner, *curves[owner].T


def test_hill_each_reads_every_point_as_its_curve_alone() -> None:
    spend, owner, beta, k, alpha = _curves()
    each = hill_each(spend, beta, k, alpha)
    slopes = hill_slope_each(spend, beta, k, alpha)
    for curve in np.unique(owner).tolist():
        mine = owner == curve
        b, kk, a = float(beta[mine][0]), float(k[mine][0]), float(alpha[mine][0])
        assert np.array_equal(each[mine], hill(spend[mine], b, kk, a))
        assert np.array_equal(slopes[mine], hill_slope(spend[mine], b, kk, a))
