"""Benchmark the budget optimizer against the allocators of the best open MMM tools.

On the same seeded instances, in one run:
- Marketplan (`services.budget.optimizer.solve`);
- Robyn-style: nlopt AUGLAG with SLSQP as local solver, from the lower bounds, xtol_rel 1e-10,
  maxeval 1e5, total spend = budget (Robyn's allocator settings);
- PyMC-Marketing-style: scipy SLSQP from an even split, ftol 1e-9, maxiter 1000, total = budget;
- Meridian-style: hill climbing on a spend grid (step 10^floor(log10(budget × 1e-4)), its default
  gtol), taking the best incremental ROI until the next step would pass the budget.
Every plan is scored on the true curves; "best known" is the best of all four. Then timings:
50 channels × 13 periods with 6 deals, 1,000 concave channels × 52 periods through the API
(`marketplan up`, via the gateway), and the largest sizes solved within 30 s.

    python bench/optimizer.py [--instances 60] [--skip-api]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import nlopt
import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.budget.optimizer import (
    Channel,
    Deal,
    Group,
    Hill,
    Linear,
    Period,
    Points,
    Problem,
    Reserve,
    SolveTimeout,
    solve,
)
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
    channels = tuple(Channel(f"c{i}", Hill(Decimal(str(float(b))), Decimal(str(float(k))), Decimal(str(float(a)))),
                             min=Decimal(int(low)),
                             max=None if not np.isfinite(u) or u >= inst["budget"] else Decimal(int(u)))
                     for i, (b, k, a, low, u) in enumerate(zip(inst["beta"], inst["k"], inst["alpha"],
                                                               inst["lower"], inst["upper"])))
    result = solve(Problem(total=Decimal(int(inst["total"])), decimals=2,
                           reserve=Reserve(percent=Decimal(10)), channels=channels))
    return np.array([float(a.amount) for a in result.allocations])


def robyn(inst):
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

def mixed_problem(channels: int, periods: int, deals: int, seed: int = 7, caps: bool = True) -> Problem:
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
            response = Points(((Decimal(0), Decimal(0)), (Decimal(50_000), Decimal(int(rng.integers(80_000, 150_000)))),
                               (Decimal(200_000), Decimal(int(rng.integers(160_000, 300_000))))))
        else:
            alpha = rng.uniform(1.5, 2.5) if kind == 3 and i % 8 == 3 else rng.uniform(0.5, 1.0)
            response = Hill(Decimal(int(rng.integers(100_000, 600_000))), Decimal(int(rng.integers(20_000, 150_000))),
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
                   periods=period_list, groups=brand)


def concave_request(channels: int, periods: int) -> dict:
    rng = np.random.default_rng(11)
    return {"currency": "USD", "total": str(channels * 100_000), "reserve": {"percent": "10"},
            "channels": [{"id": f"c{i}", "max": str(int(rng.integers(80_000, 200_000))),
                          "response": ({"type": "linear", "roi": str(round(rng.uniform(0.3, 1.2), 2))}
                                       if i % 5 == 0 else
                                       {"type": "hill", "beta": str(int(rng.integers(100_000, 400_000))),
                                        "k": str(int(rng.integers(1_000, 5_000))),
                                        "alpha": str(round(rng.uniform(0.5, 1.0), 2))})}
                         for i in range(channels)],
            "periods": [{"id": f"w{w:02d}", "weight": str(round(0.8 + 0.4 * np.cos(w / 8), 3))}
                        for w in range(periods)]}


def timed(function, repeat: int = 3):
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def timings() -> list[str]:
    lines = ["", "| case | seconds (median of 3) | path | status | approximation error |", "|---|---|---|---|---|"]
    seconds, result = timed(lambda: solve(mixed_problem(50, 13, 6)))
    lines.append(f"| 50 channels × 13 periods, 6 deals, caps, brand group, reserve | {seconds:.2f} | "
                 f"{result.solver} | {result.status} | {result.approximation_error:.1e} |")
    return lines


def largest() -> list[str]:
    lines = ["", "| path | channels × periods | seconds |", "|---|---|---|"]
    for label, caps, sizes in (("MILP (caps, group, 1 in 8 S-shaped, deals)", True,
                                [(50, 13), (100, 13), (100, 26), (200, 26), (200, 52), (400, 52)]),
                               ("greedy (concave, no period caps)", False,
                                [(1000, 52), (2000, 52)])):
        for channels, periods in sizes:
            deals = 6 if caps else 0
            started = time.perf_counter()
            try:
                result = solve(mixed_problem(channels, periods, deals, caps=caps) if caps else
                               _concave_problem(channels, periods))
            except SolveTimeout:
                lines.append(f"| {label} | {channels} × {periods} | no plan within 30 s |")
                break
            seconds = time.perf_counter() - started
            lines.append(f"| {label} | {channels} × {periods} | {seconds:.1f} ({result.solver}, {result.status}) |")
            if seconds > 30:
                break
    return lines


def _concave_problem(channels: int, periods: int) -> Problem:
    return to_problem(OptimizationRequest.model_validate(concave_request(channels, periods)))


def through_the_api() -> list[str]:
    """1,000 concave channels × 52 periods, POSTed through the gateway of `marketplan up`."""
    key = "bench-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as var:
        port = 18400
        up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--port", str(port),
                               "--var-dir", var], env=os.environ | {"MARKETPLAN_ADMIN_KEY": key},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            for line in up.stdout:
                if line.startswith("Ctrl-C stops all"):
                    break
            body = concave_request(1000, 52)
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                  headers={"Authorization": f"Bearer {key}"})
            client.post("/api/v1/budget/optimize", json=concave_request(5, 2))   # warm the worker
            seconds = []
            for _ in range(3):
                started = time.perf_counter()
                response = client.post("/api/v1/budget/optimize", json=body)
                response.raise_for_status()
                seconds.append(time.perf_counter() - started)
            plan = response.json()
        finally:
            up.terminate()
            up.wait(timeout=30)
    return ["", f"1,000 concave channels × 52 periods through the gateway: "
                f"median {statistics.median(seconds):.2f} s end to end (runs {', '.join(f'{s:.2f}' for s in seconds)}), "
                f"solver {plan['solver']['name']} {plan['solver']['seconds']:.2f} s, "
                f"response {len(response.content) / 1e6:.1f} MB, status {plan['status']}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=60)
    parser.add_argument("--skip-api", action="store_true")
    args = parser.parse_args()
    sections = [lambda: compare(args.instances), timings, largest] + ([] if args.skip_api else [through_the_api])
    for section in sections:
        print("\n".join(section()), flush=True)


if __name__ == "__main__":
    main()
