"""Benchmark the budget optimizer against the allocators of the best open MMM tools.

On the same seeded instances, in one run:
- Marketplan (`services.budget.optimizer.solve`);
- Robyn-style: nlopt AUGLAG with SLSQP as local solver, from the lower bounds, xtol_rel 1e-10,
  maxeval 1e5, total spend = budget (Robyn's allocator settings);
- PyMC-Marketing-style: scipy SLSQP from an even split, ftol 1e-9, maxiter 1000, total = budget;
- Meridian-style: hill climbing on a spend grid (step 10^floor(log10(budget × 1e-4)), its default
  gtol), taking the best incremental ROI until the next step would pass the budget.
Every plan is scored on the true curves; "best known" is the best of all four. Then, in the same
run, before and after as ratios: PuLP's build against the matrix build of the same model; full
gating from a cold start against tangent gating from the concave-envelope LP (and each change
alone); then the issue's targets with their time limits (including the other workload shapes:
steeper S-curves, caps on 30 % of the channels, period caps, a brand group over S-curves and
deals, seasonal weights, flatter concave curves; and `bench/shapes.py`'s six 1,000 × 52 concave
requests under period caps), and 1,000 concave channels × 52 periods through the API
(`marketplan up`, via the gateway); `--only-targets` runs the targets alone. With
`--milp-before <commit>`, the MILP workloads (the mix, the other shapes, S-curves, and a
department's weekly 150 and 200 × 52 requests with S-curves, deals and a brand group) on that
commit's optimizer and on this one, each solve in a fresh process: time to the first plan, to
the answer, its status and gap.
With `--before <commit>`, the exact greedy path (1,000 concave channels × 52 periods, both
curve shapes) timed on that commit's optimizer and on this one, in the same run, alternating,
as a ratio; and the API figure for both trees (that commit's whole tree runs its own
`marketplan up` beside this one's, taking turns). With `--caps-before <commit>`, the same for
concave curves under period caps (1,000 × 52, 100 × 52, 50 × 13, `bench/shapes.py`'s six; and
1,000 × 52 through the API);
with `--groups-before <commit>`, for concave curves under groups' shares (200 × 4 with 20 and
200 groups, 400 × 8 with 200). `--only-roi`: the best ROI named for an unreachable target_roi
on three 50 × 13 requests with groups' shares, deals and `min_if_used` floors, its CPU seconds
and whether the target named answers a plan.

    python bench/optimizer.py [--instances 60] [--skip-api] [--only-targets] [--before COMMIT] [--only-greedy]
                              [--milp-before COMMIT [--milp-cases LABEL ...]] [--only-milp]
                              [--caps-before COMMIT] [--only-caps] [--groups-before COMMIT]
                              [--only-roi]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import highspy
import httpx
import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.shapes import SHAPES, department_l8
from services.budget.optimizer import (
    Channel,
    Deal,
    Group,
    Hill,
    Infeasible,
    Linear,
    Period,
    Points,
    Problem,
    Reserve,
    SolveTimeout,
    solve,
)
from services.budget.optimizer.backends import highs_model
from services.budget.optimizer.formulation import formulate, to_pulp
from services.budget.optimizer.scaled import ScaledProblem
from services.budget.optimizer.solver import FIRST_TOLERANCE
from services.budget.whatif import OptimizationRequest, to_problem

# --- instances ---------------------------------------------------------------------------------

def comparison_instance(rng: np.random.Generator) -> dict:
    """5–20 Hill channels, a third of them S-shaped, some capped, each with a floor of 2 % of an
    even share; 10 % reserve."""
    n = int(rng.integers(5, 21))
    total = float(rng.integers(200, 5000)) * 1000
    beta = rng.uniform(0.2, 3.0, n) * total / n * 2
    k = rng.uniform(0.2, 2.0, n) * total / n
    alpha = np.where(rng.random(n) < 0.35, rng.uniform(1.5, 3.5, n), rng.uniform(0.4, 1.0, n))
    cap = np.where(rng.random(n) < 0.3, rng.uniform(0.3, 1.5, n) * total / n, np.inf)
    # Every channel keeps a small floor (Robyn starts from its lower bounds, which are positive).
    lower = np.full(n, np.floor(total * 0.9 / n * 0.02))
    return {"total": total, "budget": total * 0.9, "beta": beta, "k": k, "alpha": alpha,
            "lower": lower, "upper": np.maximum(np.minimum(cap, total * 0.9), lower)}


def curve(inst, x):
    r = np.power(np.maximum(x, 0) / inst["k"], inst["alpha"])
    return inst["beta"] * r / (1 + r)


def curve_grad(inst, x):
    x = np.maximum(x, 1e-12)
    r = np.power(x / inst["k"], inst["alpha"])
    return inst["beta"] * inst["alpha"] * r / (x * (1 + r) ** 2)


def score(inst, x) -> tuple[float, float]:
    """(true return, unspent share) of a plan, after holding it to its bounds and budget."""
    x = np.clip(np.nan_to_num(x), inst["lower"], inst["upper"])
    if x.sum() > inst["budget"]:
        x *= inst["budget"] / x.sum()
    return float(curve(inst, x).sum()), float((inst["budget"] - x.sum()) / inst["budget"])


# --- the four allocators -----------------------------------------------------------------------

def marketplan(inst):
    channels = tuple(Channel(f"c{i}", Hill(*(Decimal(str(float(v))) for v in (b, k, a))),
                             min=Decimal(int(low)),
                             max=None if not np.isfinite(u) or u >= inst["budget"] else Decimal(int(u)))
                     for i, (b, k, a, low, u) in enumerate(zip(inst["beta"], inst["k"], inst["alpha"],
                                                               inst["lower"], inst["upper"])))
    result = solve(Problem(total=Decimal(int(inst["total"])), decimals=2,
                           reserve=Reserve(percent=Decimal(10)), channels=channels))
    return np.array([float(a.amount) for a in result.allocations])


def robyn(inst):
    # Here, not at the top: tests/budget/test_deal_bound.py takes its problems from this module,
    # and nlopt is a benchmark dependency only (`.[bench]`).
    import nlopt
    n, budget = len(inst["k"]), inst["budget"]

    def objective(x, grad):
        if grad.size:
            grad[:] = -curve_grad(inst, x)
        return -float(curve(inst, x).sum())

    def total(x, grad):
        if grad.size:
            grad[:] = 1.0
        return float(x.sum() - budget)

    local = nlopt.opt(nlopt.LD_SLSQP, n)
    local.set_xtol_rel(1e-10)
    opt = nlopt.opt(nlopt.LD_AUGLAG, n)
    opt.set_local_optimizer(local)
    opt.set_lower_bounds(inst["lower"])
    opt.set_upper_bounds(inst["upper"])
    opt.set_min_objective(objective)
    opt.add_equality_constraint(total, 1e-10)
    opt.set_xtol_rel(1e-10)
    opt.set_maxeval(100_000)
    try:
        return opt.optimize(inst["lower"].copy())
    except Exception:   # nlopt gives up (roundoff, failure): Robyn then reports its start
        return inst["lower"].copy()


def pymc_marketing(inst):
    n, budget = len(inst["k"]), inst["budget"]
    x0 = np.clip(np.full(n, budget / n), inst["lower"], inst["upper"])
    run = minimize(lambda x: -curve(inst, x).sum(), x0, jac=lambda x: -curve_grad(inst, x),
                   method="SLSQP", bounds=list(zip(inst["lower"], inst["upper"])),
                   constraints=[{"type": "eq", "fun": lambda x: x.sum() - budget,
                                 "jac": lambda x: np.ones_like(x)}],
                   options={"ftol": 1e-9, "maxiter": 1000})
    return run.x


def meridian(inst, gtol=1e-4):
    budget = inst["budget"]
    step = 10.0 ** np.floor(np.log10(budget * gtol))
    n = len(inst["k"])
    grids = [np.arange(inst["lower"][i], min(inst["upper"][i], budget) + step / 2, step) for i in range(n)]
    outcomes = [curve({key: (v[i] if isinstance(v, np.ndarray) else v) for key, v in inst.items()}, g)
                for i, g in enumerate(grids)]
    position = np.zeros(n, dtype=int)

    def best_jump(i):
        g, o, p = grids[i], outcomes[i], position[i]
        if p + 1 >= len(g):
            return -np.inf, p
        roi = (o[p + 1:] - o[p]) / (g[p + 1:] - g[p])
        j = int(np.argmax(roi))
        return roi[j], p + 1 + j

    jumps = [best_jump(i) for i in range(n)]
    while True:
        i = int(np.argmax([j[0] for j in jumps]))
        if not np.isfinite(jumps[i][0]):
            break
        trial = position.copy()
        trial[i] = jumps[i][1]
        if sum(grids[c][trial[c]] for c in range(n)) > budget:
            break   # Meridian stops at the first step that would pass the budget
        position = trial
        jumps[i] = best_jump(i)
    return np.array([grids[c][position[c]] for c in range(n)])


def compare(instances: int) -> list[str]:
    rng = np.random.default_rng(20261122)
    methods = {"Marketplan": marketplan, "Robyn-style (AUGLAG+SLSQP)": robyn,
               "PyMC-Marketing-style (SLSQP)": pymc_marketing, "Meridian-style (grid)": meridian}
    results = {name: {"value": [], "unspent": [], "seconds": []} for name in methods}
    for _ in range(instances):
        inst = comparison_instance(rng)
        for name, method in methods.items():
            started = time.perf_counter()
            plan = method(inst)
            results[name]["seconds"].append(time.perf_counter() - started)
            value, unspent = score(inst, plan)
            results[name]["value"].append(value)
            results[name]["unspent"].append(unspent)
    best = np.max([results[name]["value"] for name in methods], axis=0)
    lines = [f"{instances} instances, 5–20 Hill channels (35 % S-shaped), 10 % reserve, seed 20261122",
             "", "| allocator | > 0.1 % below best known | worst miss | mean / max unspent | "
                 "median time | p95 time |", "|---|---|---|---|---|---|"]
    for name in methods:
        miss = 1 - np.array(results[name]["value"]) / best
        unspent = np.array(results[name]["unspent"])
        seconds = sorted(results[name]["seconds"])
        lines.append(f"| {name} | {np.mean(miss > 1e-3):.0%} | {miss.max():.2%} | "
                     f"{unspent.mean():.2%} / {unspent.max():.2%} | "
                     f"{statistics.median(seconds) * 1e3:.0f} ms | "
                     f"{seconds[int(0.95 * (len(seconds) - 1))] * 1e3:.0f} ms |")
    return lines


# --- timings -----------------------------------------------------------------------------------

def mixed_problem(channels: int, periods: int, deals: int, seed: int = 7, caps: bool = True,
                  time_limit: float = 30.0) -> Problem:
    """Hill (some S-shaped), linear and points channels, `deals` deals, weighted periods with
    caps, a brand group and a 10 % reserve."""
    rng = np.random.default_rng(seed)
    total = Decimal(channels * 200_000)
    made = []
    for i in range(channels - deals):
        kind = i % 4
        if kind == 0:
            response = Linear(Decimal(str(round(rng.uniform(0.5, 2.5), 2))))
        elif kind == 1:
            response = Points(((Decimal(0), Decimal(0)),
                               (Decimal(50_000), Decimal(int(rng.integers(80_000, 150_000)))),
                               (Decimal(200_000), Decimal(int(rng.integers(160_000, 300_000))))))
        else:
            alpha = rng.uniform(1.5, 2.5) if kind == 3 and i % 8 == 3 else rng.uniform(0.5, 1.0)
            response = Hill(Decimal(int(rng.integers(100_000, 600_000))),
                            Decimal(int(rng.integers(20_000, 150_000))),
                            Decimal(str(round(alpha, 2))))
        made.append(Channel(f"c{i}", response, max=Decimal(int(rng.integers(100_000, 600_000)))))
    for d in range(deals):
        cost = int(rng.integers(50_000, 300_000))
        made.append(Channel(f"deal{d}", Deal(Decimal(cost), Decimal(int(cost * rng.uniform(1.2, 3.0))))))
    per_period = total / periods
    period_list = tuple(Period(f"p{p}", weight=Decimal(str(round(0.7 + 0.6 * np.sin(p / 3) ** 2, 3))),
                               cap=(per_period * Decimal("1.3")).quantize(Decimal(1)) if caps else None)
                        for p in range(periods))
    brand = (Group("brand", tuple(c.id for c in made[2::4]) + tuple(f"deal{d}" for d in range(deals)),
                   min_share=Decimal("0.2")),) if caps else ()
    return Problem(total=total, decimals=2, reserve=Reserve(percent=Decimal(10)), channels=tuple(made),
                   periods=period_list, groups=brand, time_limit=time_limit)


def hard_problem(channels: int, periods: int, deals: int, seed: int = 3,
                 time_limit: float = 30.0) -> Problem:
    """The issue's other shapes: steeper S-curves (alpha 2.5–4) on a quarter of the channels,
    flatter concave curves (alpha 0.8–1, k near the spend), caps on 30 % of the channels,
    period caps, a brand group over the S-curves and the deals, seasonal weights."""
    rng = np.random.default_rng(seed)
    total = Decimal(channels * 150_000)
    made = []
    for i in range(channels - deals):
        s_shaped = i % 4 == 1
        alpha = rng.uniform(2.5, 4.0) if s_shaped else rng.uniform(0.8, 1.0)
        k = rng.uniform(60_000, 250_000) if s_shaped else rng.uniform(100_000, 400_000)
        beta = k * rng.uniform(1.5, 4.0)
        cap = Decimal(int(rng.uniform(0.5, 2.0) * 150_000)) if rng.random() < 0.3 else None
        curve = Hill(Decimal(int(beta)), Decimal(int(k)), Decimal(str(round(alpha, 2))))
        made.append(Channel(f"c{i}", curve, max=cap))
    for d in range(deals):
        cost = int(rng.integers(80_000, 400_000))
        made.append(Channel(f"deal{d}", Deal(Decimal(cost), Decimal(int(cost * rng.uniform(1.1, 2.5))))))
    per_period = total / periods
    season = [round(1 + 0.4 * np.sin(2 * np.pi * p / periods), 3) for p in range(periods)]
    period_list = tuple(Period(f"p{p}", weight=Decimal(str(season[p])),
                               cap=(per_period * Decimal("1.2")).quantize(Decimal(1)))
                        for p in range(periods))
    brand = Group("brand", tuple(c.id for c in made[1::4]) + tuple(f"deal{d}" for d in range(deals)),
                  min_share=Decimal("0.25"))
    return Problem(total=total, decimals=2, reserve=Reserve(percent=Decimal(10)), channels=tuple(made),
                   periods=period_list, groups=(brand,), time_limit=time_limit)


def roi_shares_problem(target: Decimal, seed: int = 1, time_limit: float = 30.0) -> Problem:
    """A `target_roi` request of 50 channels × 13 periods: linear, S-shaped Hill, points and
    Hill (alpha 1) curves, every ninth a `min_if_used` floor, four deals returning 4.5-6 a
    unit outside a brand group at `min_share` 0.4 (linear and S-curves) and a perf group at
    `max_share` 0.3, seasonal weights, a 10 % reserve."""
    rng = np.random.default_rng(seed)
    made = []
    for i in range(46):
        kind = i % 5
        if kind == 0:
            response = Linear(Decimal(str(round(rng.uniform(0.8, 2.0), 2))))
        elif kind == 1:
            k = int(rng.integers(50_000, 200_000))
            response = Hill(Decimal(int(k * rng.uniform(2, 4))), Decimal(k),
                            Decimal(str(round(rng.uniform(2, 3), 2))))
        elif kind == 2:
            response = Points(((Decimal(0), Decimal(0)),
                               (Decimal(40_000), Decimal(int(rng.integers(80_000, 140_000)))),
                               (Decimal(150_000), Decimal(int(rng.integers(160_000, 260_000))))))
        else:
            k = int(rng.integers(50_000, 300_000))
            response = Hill(Decimal(int(k * rng.uniform(1.5, 3.5))), Decimal(k), Decimal(1))
        floor = i % 9 == 4
        made.append(Channel(f"c{i}", response, max=Decimal(int(rng.integers(100_000, 500_000))),
                            min=Decimal(int(rng.integers(20_000, 60_000))) if floor else None,
                            min_if_used=floor))
    for d in range(4):
        cost = int(rng.integers(60_000, 200_000))
        made.append(Channel(f"deal{d}", Deal(Decimal(cost),
                                             Decimal(int(cost * rng.uniform(4.5, 6.0))))))
    periods = tuple(Period(f"p{p}", weight=Decimal(str(round(0.8 + 0.4 * np.sin(p / 2) ** 2, 3))))
                    for p in range(13))
    brand = Group("brand", tuple(c.id for c in made[0:46:5]) + tuple(c.id for c in made[1:46:5]),
                  min_share=Decimal("0.4"))
    perf = Group("perf", tuple(c.id for c in made[3:46:5]), max_share=Decimal("0.3"))
    return Problem(total=Decimal(5_000_000), decimals=2, reserve=Reserve(percent=Decimal(10)),
                   channels=tuple(made), periods=periods, groups=(brand, perf),
                   objective="target_roi", target_roi=target, time_limit=time_limit)


def unreachable_roi_named() -> list[str]:
    """The best ROI named for `roi_shares_problem`'s target of 8 (above every cell, refused
    before any solve) at limits of 30 and 5 s, the CPU seconds of the 422, and whether the
    request with that target answers a plan."""
    lines = ["", "| 50 × 13 target_roi under shares | limit | named | CPU of the 422 | "
                 "named target applied |", "|---|---|---|---|---|"]
    for seed in (1, 2, 3):
        for limit in (30.0, 5.0):
            started = time.process_time()
            try:
                solve(roi_shares_problem(Decimal(8), seed, limit))
                lines.append(f"| seed {seed} | {limit:g} s | a plan | | |")
                continue
            except Infeasible as refused:
                change = next(c.change for c in refused.conflicts if c.constraint == "target_roi")
            cpu = time.process_time() - started
            named = Decimal(8) - change
            try:
                applied = solve(roi_shares_problem(named, seed, 30.0))
                answer = f"{applied.status}, {applied.expected_return / applied.spend:.6f}"
            except (Infeasible, SolveTimeout) as error:
                answer = type(error).__name__
            lines.append(f"| seed {seed} | {limit:g} s | {named} | {cpu:.2f} s | {answer} |")
    return lines


def s_curve_problem(channels: int, periods: int, time_limit: float) -> Problem:
    """Every channel S-shaped (alpha 1.5–3.5), seasonal weights, no caps."""
    rng = np.random.default_rng(5)
    made = tuple(Channel(f"s{i}", Hill(Decimal(int(rng.integers(200_000, 900_000))),
                                        Decimal(int(rng.integers(30_000, 200_000))),
                                        Decimal(str(round(rng.uniform(1.5, 3.5), 2)))))
                 for i in range(channels))
    period_list = tuple(Period(f"p{p}", weight=Decimal(str(round(0.8 + 0.4 * np.cos(p / 3), 3))))
                        for p in range(periods))
    return Problem(total=Decimal(channels * 150_000), decimals=2,
                   reserve=Reserve(percent=Decimal(10)), channels=made, periods=period_list,
                   time_limit=time_limit)


def concave_request(channels: int, periods: int, flat: bool = False) -> dict:
    """Concave channels (a fifth linear) with caps, weekly seasonal periods; `flat`: the issue's
    flatter curves (alpha 0.8–1, k near the spend) and caps on 30 % of the channels only."""
    rng = np.random.default_rng(11)
    def channel(i: int) -> dict:
        if i % 5 == 0:
            response = {"type": "linear", "roi": str(round(rng.uniform(0.3, 1.2), 2))}
        elif flat:
            k = int(rng.integers(50_000, 200_000))
            response = {"type": "hill", "beta": str(int(k * rng.uniform(1.5, 4))), "k": str(k),
                        "alpha": str(round(rng.uniform(0.8, 1.0), 2))}
        else:
            response = {"type": "hill", "beta": str(int(rng.integers(100_000, 400_000))),
                        "k": str(int(rng.integers(1_000, 5_000))),
                        "alpha": str(round(rng.uniform(0.5, 1.0), 2))}
        capped = rng.random() < 0.3 if flat else True
        return {"id": f"c{i}", "response": response} | (
            {"max": str(int(rng.integers(80_000, 200_000)))} if capped else {})
    return {"currency": "USD", "total": str(channels * 100_000), "reserve": {"percent": "10"},
            "channels": [channel(i) for i in range(channels)],
            "periods": [{"id": f"w{w:02d}", "weight": str(round(0.8 + 0.4 * np.cos(w / 8), 3))}
                        for w in range(periods)]}


def capped_request(channels: int, periods: int) -> dict:
    """The flatter concave channels of `concave_request` under period caps shaped as a new
    user's trial made them: every fifth period (from the third) capped at 70 % of an even share
    of the total."""
    request = concave_request(channels, periods, flat=True)
    even = int(request["total"]) / periods
    for p, period in enumerate(request["periods"]):
        if p % 5 == 2:
            period["cap"] = str(int(even * 0.7))
    return request


def grouped_request(channels: int, periods: int, groups: int, share: str,
                    time_limit: float) -> dict:
    """The flatter concave channels of `concave_request` with `groups` overlapping groups
    shaped as a new user's trial made them (each a run of neighbouring channels sharing its
    last with the next one's first, round the list, each at most `share` of the spend), and
    the first and fifth periods capped at 1.2 times an even share."""
    request = concave_request(channels, periods, flat=True)
    even = int(request["total"]) / periods
    for p, period in enumerate(request["periods"]):
        if p % 4 == 0:
            period["cap"] = str(int(even * 1.2))
    stride = max(channels // groups, 1)
    request["groups"] = [{"id": f"g{g}", "channels": [f"c{(stride * g + j) % channels}"
                                                      for j in range(stride + 1)],
                          "max_share": share} for g in range(groups)]
    return request | {"time_limit_seconds": time_limit}


def weekly_request(channels: int, seed: int = 150, time_limit: float = 20.0) -> dict:
    """A department's weekly request, shaped as users' are (the saved 100/150/200 × 52 ones):
    Hill curves on 60 % of the channels (two in three S-shaped, alpha 1.5–3), linear and
    piecewise (often S-shaped) points curves, deals on 14 %, caps on a third, a brand group of
    every third channel at 25 %, 52 weeks with quarterly ramps in weight and caps at twice an
    even share, 5 % reserve."""
    rng = np.random.default_rng(seed)
    total = channels * 150_000

    def channel(i: int) -> dict:
        kind = rng.random()
        if kind < 0.14:
            cost = int(rng.integers(20_000, 190_000))
            return {"id": f"ch{i}", "response": {"type": "deal", "cost": str(cost),
                                                 "return": str(int(cost * rng.uniform(0.3, 3.0)))}}
        if kind < 0.27:
            response = {"type": "linear", "roi": str(round(rng.uniform(0.7, 2.2), 2))}
        elif kind < 0.40:
            spends = np.cumsum(rng.uniform(25_000, 100_000, 5))
            returns = np.cumsum(rng.uniform(0.3, 3.0, 5) * np.diff(np.r_[0, spends]))
            response = {"type": "points", "points": [[0, 0]] + [[str(int(s)), str(int(r))]
                                                              for s, r in zip(spends, returns)]}
        else:
            alpha = rng.uniform(1.5, 3.0) if rng.random() < 0.67 else rng.uniform(0.6, 1.0)
            response = {"type": "hill", "beta": str(int(rng.uniform(200_000, 1_900_000))),
                        "k": str(int(rng.uniform(60_000, 500_000))), "alpha": str(round(alpha, 2))}
        capped = rng.random() < 0.33
        return {"id": f"ch{i}", "response": response} | (
            {"max": str(int(rng.uniform(110_000, 600_000)))} if capped else {})
    made = [channel(i) for i in range(channels)]
    return {"currency": "USD", "total": str(total), "reserve": {"percent": "5"},
            "channels": made, "time_limit_seconds": time_limit,
            "groups": [{"id": "brand", "channels": [c["id"] for c in made[::3]],
                        "min_share": "0.25"}],
            "periods": [{"id": f"w{w + 1}", "weight": str(round(1 + 0.0385 * (w % 13), 2)),
                         "cap": str(2 * total // 52)} for w in range(52)]}


def _concave_problem(channels: int, periods: int, flat: bool = False) -> Problem:
    return _problem(concave_request(channels, periods, flat))


def _problem(body: dict) -> Problem:
    return to_problem(OptimizationRequest.model_validate(body))


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def _describe(result) -> str:
    gap = "–" if result.gap is None else f"{result.gap:.1e}"
    return f"{result.status}, gap {gap}, approximation error {result.approximation_error:.1e}"


def model_build() -> list[str]:
    """PuLP's per-variable build against the matrix build, on the same formulation."""
    lines = ["", "| model | columns | rows | nonzeros | binaries | PuLP build | "
                 "matrix build (numpy + HiGHS passModel) | ratio |", "|---|---|---|---|---|---|---|---|"]
    for label, problem in (("50 × 13 mix, full gating", mixed_problem(50, 13, 6)),
                           ("100 × 26 mix, full gating", mixed_problem(100, 26, 6))):
        model = ScaledProblem(problem)
        cells = model.cells(FIRST_TOLERANCE)
        matrix, form = timed(_passed, model, cells)
        pulp_build, _ = timed(to_pulp, form)
        lines.append(f"| {label} | {len(form.cost):,} | {len(form.row_names):,} | {len(form.value):,} | "
                     f"{int(form.integer.sum()):,} | {pulp_build:.2f} s | {matrix:.2f} s | "
                     f"{pulp_build / matrix:.1f}× faster |")
    return lines


def _passed(model, cells):
    form = formulate(model, cells)
    highspy.Highs().passModel(highs_model(form))
    return form


def methods() -> list[str]:
    """Full gating from a cold start (before) against tangent gating from the envelope LP's
    plan and bound (after), and each change alone, on the same problems."""
    lines = ["", "| problem | full gating, cold | full gating, warm | tangent gating, cold | "
                 "tangent gating, warm | full cold ÷ tangent warm |", "|---|---|---|---|---|---|"]
    for label, problem in (("50 × 13 mix", mixed_problem(50, 13, 6, time_limit=10)),
                           ("50 × 13 other shapes", hard_problem(50, 13, 6, time_limit=10))):
        cells, values = [], []
        for gating, warm in (("full", False), ("full", True), ("tangent", False), ("tangent", True)):
            seconds, result = timed(_solve_or_none, problem, gating=gating, warm_start=warm)
            values.append(None if result is None else result.expected_return)
            cells.append(f"{seconds:.2f} s" + ("" if result is None else f" ({result.status})"))
            if gating == "full" and not warm:
                before = seconds
        agree = "same return" if len({v for v in values if v is not None}) == 1 else \
            "returns " + " / ".join(str(v) for v in values)
        lines.append(f"| {label} | {' | '.join(cells)} | {before / seconds:.1f}× ({agree}) |")
    return lines


def _solve_or_none(problem: Problem, **options):
    try:
        return solve(problem, **options)
    except SolveTimeout:
        return None


def targets() -> list[str]:
    lines = ["", "| case | time limit | seconds | answer | target |", "|---|---|---|---|---|"]
    cases = (("50 × 13 mix, 6 deals", mixed_problem(50, 13, 6, time_limit=30), "< 1 s"),
             ("50 × 13 other shapes, 6 deals", hard_problem(50, 13, 6, time_limit=30), "< 1 s"),
             ("100 × 26 mix, 6 deals", mixed_problem(100, 26, 6, time_limit=10),
              "optimal or gap ≤ 0.1 % within 10 s"),
             ("100 × 26 other shapes, 6 deals", hard_problem(100, 26, 6, time_limit=10),
              "optimal or gap ≤ 0.1 % within 10 s"),
             ("200 S-shaped × 20", s_curve_problem(200, 20, 20), "a plan within 20 s"),
             ("2,000 S-shaped × 55", s_curve_problem(2000, 55, 2), "an answer within 2 s + margin"),
             ("1,000 concave × 52 (greedy)", _concave_problem(1000, 52), "≤ 1 s"),
             ("1,000 flatter concave × 52, 30 % capped (greedy)",
              _concave_problem(1000, 52, flat=True), "≤ 1 s"),
             ("1,000 × 52 under period caps", _problem(capped_request(1000, 52)), "≤ 1 s"),
             *((f"1,000 × 52 under period caps, `{shape.__name__}`", _problem(shape()), "≤ 1 s")
               for shape in SHAPES))
    for label, problem, target in cases:
        started = time.perf_counter()
        try:
            answer = _describe(solve(problem))
        except SolveTimeout:
            answer = "no plan (solve-time-limit)"
        seconds = time.perf_counter() - started
        lines.append(f"| {label} | {problem.time_limit:g} s | {seconds:.2f} | {answer} | {target} |")
    return lines


# Solves one of the MILP workloads (argv[1]) with the optimizer of the tree it runs in, in
# wall and CPU seconds (the machine is shared: CPU is the steadier figure).
_MILP_TIMER = """
import json, sys, time
# The tree's own optimizer first: the bench module puts this tree's root first on the path.
from services.budget.optimizer import SolveTimeout, solve
import services.budget.whatif
sys.path.insert(0, sys.argv[2])
from optimizer import MILP_CASES
problem = MILP_CASES[sys.argv[1]][0]()
started, cpu = time.perf_counter(), time.process_time()
first = {}
def heard(progress):
    # The first plan that places money (a job shows it; a stop or the limit answers it).
    if not first and progress.incumbent > 0:
        first.update(first=time.perf_counter() - started, first_cpu=time.process_time() - cpu)
try:
    result = solve(problem, heard)
    answer = {"status": result.status, "gap": result.gap, "error": result.approximation_error,
              "expected_return": str(result.expected_return)}
except SolveTimeout:
    answer = {"status": "no plan", "gap": None, "error": None, "expected_return": "0"}
print(json.dumps(answer | {"seconds": time.perf_counter() - started,
                           "cpu": time.process_time() - cpu, "first": None, "first_cpu": None}
                 | first))
"""

# The MILP workloads: how to make each, and the target for it.
MILP_CASES = {
    "50 × 13 mix, 6 deals (30 s)": (lambda: mixed_problem(50, 13, 6, time_limit=30), "< 1 s"),
    "50 × 13 other shapes, 6 deals (30 s)": (lambda: hard_problem(50, 13, 6, time_limit=30),
                                             "< 1 s"),
    "50 × 13 other shapes, 6 deals (10 s)": (lambda: hard_problem(50, 13, 6, time_limit=10),
                                             "optimal (within 0.1 %) in 10 s"),
    "100 × 26 mix, 6 deals (10 s)": (lambda: mixed_problem(100, 26, 6, time_limit=10),
                                     "optimal or gap ≤ 0.1 % within 10 s"),
    "100 × 26 other shapes, 6 deals (10 s)": (lambda: hard_problem(100, 26, 6, time_limit=10),
                                              "(not an issue target)"),
    "200 S-shaped × 20 (20 s)": (lambda: s_curve_problem(200, 20, 20), "a plan within 20 s"),
    "weekly 150 × 52, S-curves, deals, brand group (20 s)": (
        lambda: _weekly_problem(150), "a first plan in a couple of seconds"),
    "weekly 200 × 52, S-curves, deals, brand group (20 s)": (
        lambda: _weekly_problem(200), "a first plan in a couple of seconds"),
    "department L8 160 × 52, floors if used, deals, brand group (20 s)": (
        lambda: _problem(department_l8()), "a first plan in a few seconds"),
}


def _weekly_problem(channels: int) -> Problem:
    return _problem(weekly_request(channels))


def milp_before_after(commit: str, only: list[str] | None = None) -> list[str]:
    """The MILP workloads (those whose label holds one of `only`, if given) on `commit`'s
    optimizer and on this tree's, each solve in a fresh process, the two in turn: wall and
    CPU seconds to the first plan and to the answer, the answer and its gap."""
    root = Path(__file__).resolve().parent.parent
    lines = ["", f"| MILP workload | before ({commit[:7]}): first plan; end, wall (CPU), answer | "
                 "after: first plan; end, wall (CPU), answer | CPU before ÷ after | target |",
             "|---|---|---|---|---|"]

    def cell(run: dict) -> str:
        gap = "–" if run["gap"] is None else f"{run['gap']:.1e}"
        error = "–" if run["error"] is None else f"{run['error']:.1e}"
        first = "none" if run["first"] is None else \
            f"{run['first']:.2f} s ({run['first_cpu']:.2f} s)"
        return (f"first plan {first}; {run['seconds']:.2f} s ({run['cpu']:.2f} s), "
                f"{run['status']}, gap {gap}, error {error}, "
                f"return {float(run['expected_return']):,.0f}")

    with tempfile.TemporaryDirectory() as work:
        before = Path(work) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(root), "archive", commit, "services", "shared"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        for label, (_, target) in MILP_CASES.items():
            if only and not any(part in label for part in only):
                continue
            runs = {}
            for name, tree in (("before", before), ("after", root)):
                out = subprocess.run([sys.executable, "-c", _MILP_TIMER, label,
                                      str(Path(__file__).resolve().parent)], cwd=tree,
                                     env=os.environ | {"PYTHONPATH": str(tree)}, check=True,
                                     capture_output=True, text=True).stdout
                runs[name] = json.loads(out.strip().splitlines()[-1])
            ratio = runs["before"]["cpu"] / max(runs["after"]["cpu"], 1e-9)
            lines.append(f"| {label} | {cell(runs['before'])} | {cell(runs['after'])} | "
                         f"{ratio:.1f}× | {target} |")
    return lines


def stop_latency() -> list[str]:
    """How soon a stopped solve answers: stopped at its first reported plan and at fixed
    times, on the other shapes at 50 × 13 (the MILP that runs longest)."""
    lines = ["", "| stop (50 × 13 other shapes) | answered after the stop | answer |",
             "|---|---|---|"]
    for label, after in (("at the first plan reported", None), ("after 1 s", 1.0),
                         ("after 3 s", 3.0), ("after 6 s", 6.0)):
        waited, answer = _stopped(hard_problem(50, 13, 6, time_limit=30), after)
        lines.append(f"| {label} | {waited:.2f} s | {answer} |")
    return lines


def _stopped(problem: Problem, after: float | None) -> tuple[float, str]:
    """Solve `problem`, stopped `after` seconds (None: at its first report); return how long
    the answer took after the stop, and the answer."""
    heard: list = []
    started, stopped_at = time.perf_counter(), []

    def stop() -> bool:
        due = bool(heard) if after is None else time.perf_counter() - started >= after
        if due and not stopped_at:
            stopped_at.append(time.perf_counter())
        return due
    try:
        result = solve(problem, heard.append, stop=stop)
        answer = _describe(result) + f", return {float(result.expected_return):,.0f}"
    except SolveTimeout:
        answer = "no plan yet"
    return time.perf_counter() - (stopped_at[0] if stopped_at else started), answer


# Times `solve` on a request read from argv[1] with the optimizer of the tree it runs in.
_TIMER = """
import json, sys, time
from services.budget.optimizer import Infeasible, SolveTimeout, solve
from services.budget.whatif import OptimizationRequest, to_problem
problem = to_problem(OptimizationRequest.model_validate(json.load(open(sys.argv[1]))))
started, cpu = time.perf_counter(), time.process_time()
try:
    result = solve(problem)
    answer = {"solver": result.solver, "status": result.status,
              "error": result.approximation_error,
              "expected_return": str(result.expected_return),
              "marginal": str(result.marginal_value_of_budget)}
except (Infeasible, SolveTimeout) as error:
    # The tree before may find no plan in the limit (the 422 a user gets).
    answer = {"solver": None, "status": type(error).__name__, "error": float("nan"),
              "expected_return": None, "marginal": None}
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}
                 | answer))
"""


def greedy_before_after(commit: str, rounds: int = 3) -> list[str]:
    """The exact greedy path end to end (cutting, greedy, rounding, assembly) on `commit`'s
    optimizer and on this tree's, each solve in a fresh process, the two alternating. Wall and
    CPU seconds (best of `rounds`): on a shared machine the CPU time is the steadier figure."""
    return _before_after(commit, "1,000 concave × 52 (greedy path)",
                         [("benchmark curves", concave_request(1000, 52), rounds),
                          ("flatter curves, 30 % capped", concave_request(1000, 52, True), rounds)])


def period_caps_before_after(commit: str, rounds: int = 3) -> list[str]:
    """Concave curves under period caps (`capped_request`: 1,000 × 52, 100 × 52, 50 × 13) on
    `commit`'s optimizer and on this tree's, as `greedy_before_after` does; the 1,000 × 52
    request once on the tree before (its answer takes the whole 30 s limit there)."""
    return _before_after(commit, "concave under period caps",
                         [("1,000 × 52", capped_request(1000, 52), 1),
                          ("100 × 52", capped_request(100, 52), rounds),
                          ("50 × 13", capped_request(50, 13), rounds),
                          *((f"1,000 × 52, `{shape.__name__}`", shape(), rounds)
                            for shape in SHAPES)], show_status=True)


def groups_before_after(commit: str) -> list[str]:
    """Concave curves under groups' shares (`grouped_request`) on `commit`'s optimizer and on
    this tree's, as `period_caps_before_after` does, each once on the tree before (where they
    take the MILP's route, most of their limit or all of it)."""
    return _before_after(commit, "concave under groups' shares",
                         [("200 × 4, 20 groups", grouped_request(200, 4, 20, "0.1", 20), 1),
                          ("200 × 4, 200 groups", grouped_request(200, 4, 200, "0.012", 20), 1),
                          ("400 × 8, 200 groups", grouped_request(400, 8, 200, "0.008", 60), 1)],
                         show_status=True)


def _before_after(commit: str, title: str, cases: list[tuple[str, dict, int]], *,
                  show_status: bool = False) -> list[str]:
    """Each case's request solved in a fresh process on `commit`'s tree and on this one, the
    two alternating, `rounds` times each: best wall and CPU seconds, their ratio, and whether
    the two answer the same plan (expected return and the budget's price)."""
    root = Path(__file__).resolve().parent.parent
    lines = ["", f"| {title}, wall (CPU) | before ({commit[:7]}) | after | before ÷ after | "
                 "same plan |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        before = Path(work) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(root), "archive", commit, "services", "shared"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        for label, body, rounds in cases:
            request = Path(work) / "request.json"
            request.write_text(json.dumps(body))
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(rounds):
                for name, tree in (("before", before), ("after", root)):
                    out = subprocess.run([sys.executable, "-c", _TIMER, str(request)], cwd=tree,
                                         env=os.environ | {"PYTHONPATH": str(tree)}, check=True,
                                         capture_output=True, text=True).stdout
                    runs[name].append(json.loads(out.strip().splitlines()[-1]))
            old, new = ({key: min(r[key] for r in runs[name]) for key in ("seconds", "cpu")}
                        for name in ("before", "after"))
            answers = [{(r["expected_return"], r["marginal"]) for r in runs[name]}
                       for name in ("before", "after")]
            same = "yes" if answers[0] == answers[1] else f"no: {answers[0]} / {answers[1]}"
            status = [", ".join(sorted({f"{r['status']}, error {r['error']:.1e}"
                                        for r in runs[name]})) for name in ("before", "after")] \
                if show_status else ["", ""]
            wall, cpu = old["seconds"] / new["seconds"], old["cpu"] / new["cpu"]
            lines.append(f"| {label} | {old['seconds']:.2f} s ({old['cpu']:.2f} s) {status[0]} | "
                         f"{new['seconds']:.2f} s ({new['cpu']:.2f} s) {status[1]} | "
                         f"{wall:.1f}× ({cpu:.1f}×) | {same} |")
    return lines


def through_the_api(before: str | None = None, rounds: int = 3, body: dict | None = None,
                    label: str = "1,000 concave × 52") -> list[str]:
    """1,000 concave channels × 52 periods (or `body`) POSTed through the gateway of
    `marketplan up`, and the same request solved in process (a fresh process each time), in
    the same run; with
    `before`, that commit's whole tree runs a second stack beside this one, the two taking
    turns. Per tree: medians of `rounds` calls, their ratio, and what the API adds to a call
    beyond the solve (end to end less the solver's own seconds, median)."""
    root = Path(__file__).resolve().parent.parent
    lines = ["", f"| {label} | in process | through the gateway | API ÷ in process | "
                 "API beyond the solve | response |", "|---|---|---|---|---|---|"]
    body = concave_request(1000, 52) if body is None else body
    key = "bench-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as work:
        trees = {"after": root}
        if before:
            trees = {"before": Path(work) / "before"} | trees
            trees["before"].mkdir()
            archive = subprocess.run(["git", "-C", str(root), "archive", before],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(trees["before"])], input=archive, check=True)
        request = Path(work) / "request.json"
        request.write_text(json.dumps(body))
        stacks, clients = {}, {}
        try:
            for port, (name, tree) in zip((18400, 18410), trees.items()):
                var = Path(work) / f"var-{name}"
                stacks[name] = subprocess.Popen(
                    [sys.executable, "-m", "marketplan", "up", "--port", str(port), "--var-dir",
                     str(var)], cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    text=True, env=os.environ | {"MARKETPLAN_ADMIN_KEY": key,
                                                 "PYTHONPATH": str(tree)})
                for line in stacks[name].stdout:
                    if line.startswith("Ctrl-C stops all"):
                        break
                clients[name] = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                             headers={"Authorization": f"Bearer {key}"})
                # Warm the worker (its imports) before timing.
                clients[name].post("/api/v1/budget/optimize", json=concave_request(5, 2))
            runs: dict[str, dict[str, list[float]]] = {
                name: {"api": [], "solver": [], "in_process": [], "bytes": [], "status": []}
                for name in trees}
            for _ in range(rounds):
                for name, tree in trees.items():
                    started = time.perf_counter()
                    response = clients[name].post("/api/v1/budget/optimize", json=body)
                    runs[name]["api"].append(time.perf_counter() - started)
                    # A tree that finds no plan in the limit answers a 422 (no solver seconds).
                    runs[name]["solver"].append(response.json()["solver"]["seconds"]
                                                if response.is_success else math.nan)
                    runs[name]["status"].append(response.status_code)
                    out = subprocess.run([sys.executable, "-c", _TIMER, str(request)], cwd=tree,
                                         env=os.environ | {"PYTHONPATH": str(tree)}, check=True,
                                         capture_output=True, text=True).stdout
                    runs[name]["in_process"].append(
                        json.loads(out.strip().splitlines()[-1])["seconds"])
                    runs[name]["bytes"].append(len(response.content))
        finally:
            for stack in stacks.values():
                stack.terminate()
                stack.wait(timeout=30)
    for name in trees:
        api, in_process = (statistics.median(runs[name][k]) for k in ("api", "in_process"))
        beyond = statistics.median(a - s for a, s in zip(runs[name]["api"], runs[name]["solver"]))
        label = f"before ({before[:7]})" if name == "before" and before else name
        lines.append(f"| {label} | {in_process:.2f} s | {api:.2f} s "
                     f"(runs {', '.join(f'{s:.2f}' for s in runs[name]['api'])}) | "
                     f"{api / in_process:.2f}× | {beyond:.2f} s | "
                     f"{runs[name]['bytes'][-1] / 1e6:.1f} MB, HTTP "
                     f"{', '.join(map(str, sorted(set(runs[name]['status']))))} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--before", help="a commit whose greedy path to time against this tree's")
    parser.add_argument("--only-greedy", action="store_true",
                        help="only the greedy path: before/after and through the API")
    parser.add_argument("--caps-before",
                        help="a commit whose concave-under-period-caps path to time against this "
                             "tree's (in process, and through the API)")
    parser.add_argument("--groups-before",
                        help="a commit whose route for concave curves under groups to time "
                             "against this tree's")
    parser.add_argument("--only-caps", action="store_true",
                        help="only concave curves under period caps (with --caps-before)")
    parser.add_argument("--milp-before", help="a commit whose MILP to time against this tree's")
    parser.add_argument("--milp-cases", nargs="*",
                        help="with --milp-before: only the workloads whose label holds one of these")
    parser.add_argument("--only-targets", action="store_true",
                        help="only the issue's targets, on the benchmark's shapes and others")
    parser.add_argument("--only-milp", action="store_true",
                        help="only the MILP: before/after (with --milp-before) and the stop")
    parser.add_argument("--only-roi", action="store_true",
                        help="only the best ROI named for an unreachable target_roi under shares")
    args = parser.parse_args()
    sections = [targets] if args.only_targets else [unreachable_roi_named] if args.only_roi else \
        [] if args.only_greedy or args.only_milp or args.only_caps else \
        [lambda: compare(args.instances), model_build, methods, targets, unreachable_roi_named]
    if args.caps_before:
        sections.append(lambda: period_caps_before_after(args.caps_before))
        if not args.skip_api:
            sections.append(lambda: through_the_api(
                args.caps_before, rounds=2, body=capped_request(1000, 52),
                label="1,000 concave × 52 under period caps"))
    if args.groups_before:
        sections.append(lambda: groups_before_after(args.groups_before))
    if args.milp_before:
        sections.append(lambda: milp_before_after(args.milp_before, args.milp_cases))
    if args.only_milp:
        sections.append(stop_latency)
    if args.before:
        sections.append(lambda: greedy_before_after(args.before))
    if not args.skip_api and not (args.only_milp or args.only_caps or args.only_targets
                                  or args.only_roi):
        sections.append(lambda: through_the_api(args.before))
    for section in sections:
        print("\n".join(section()), flush=True)


if __name__ == "__main__":
    main()
