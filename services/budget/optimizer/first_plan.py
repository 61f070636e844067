"""The MILP's first plan and the envelope LP's row prices in about a second, by the priced greedy.

With every S-curve taken by its concave envelope and every deal bought in parts (a linear
channel at its value per unit, capped at its cost, in the periods where its cost fits), the
envelope LP is concave curves under the budget, channel bounds, period caps and groups' shares,
which `period_prices` solves to a proven optimum. HiGHS took 6.7 s of CPU on that LP cut
coarsely at 200 x 52 (84,000 columns on 82 rows: its interior point's crossover; the dual
simplex 3.7 s for 54 iterations), so a 5 or 10 s limit answered no plan; the priced greedy takes
about 1 s on the real cells' envelopes. Each deal is then bought whole in the period where the
LP buys most of it, if at least half, else not at all, and the problem solved again with those
deals fixed (none bought, where that has no plan): a plan meeting every row. The first solve's
row prices, named as the MILP's rows, give L(y) on the envelope model (`windows.lagrangian`): a
bound on every plan whatever the prices, which also narrows the MILP's curves.
"""
import copy
import math
import time
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from services.budget.optimizer import greedy, period_prices
from services.budget.optimizer.backends import Stop
from services.budget.optimizer.curves import Floats, linear_segments
from services.budget.optimizer.formulation import Formulation
from services.budget.optimizer.scaled import EPS, Cell, Cells, Indices, ScaledProblem
from services.budget.optimizer.windows import prices

# A deal the envelope LP buys at least this share of is bought whole.
BOUGHT = 0.5
# A deal bought to within this share of its cost (the LP's tolerance) is bought whole already.
TOLERANCE = 1e-9
# The floors' choices are searched (`_flipped`) for at most this share of the time left: the
# first plan waits for it. bench/shapes.py's department_l8 (90 floors, 20 s): at 0.25, 0.74 %
# more return and its first plan at 5.4 s of CPU, where 2.9 s before the search; at 0.1,
# 0.53 % more at 2.6 s (the first plan's other LPs now fewer). Trial 19's 150 x 52 gains the
# same 0.22 % at either.
FLIP_SHARE = 0.1
# `scaled_plan` scales a plan this much below the rows it meets (the rounding holds them to the
# cent), and meets the groups' shares in this many passes at most (scaling for one share can
# move another's).
SCALED_MARGIN, SCALED_PASSES = 1e-9, 3


@dataclass(frozen=True)
class FirstPlan:
    spend: Floats            # per cell, meeting every row
    rows: dict[str, float]   # the envelope LP's row prices, by the MILP's row names
    marginal: float          # the budget's price with the plan's deals
    # The envelope LP's bound at those prices on the request's objective (the return, less the
    # spend under max_profit): no plan of the real cells exceeds it.
    bound: float


# A concave solve's plan per cell, where its LP ends, the budget's price, its objective and
# the bound at its LP's prices.
Solved = tuple[Floats, period_prices.Start, float, float, float]


def envelope_plan(model: ScaledProblem, hulls: Cells, deadline: float,
                  stop: Stop | None = None) -> FirstPlan | None:
    """A plan meeting every row (spend per cell of `hulls`: the cells, each S-curve by its
    envelope), the envelope LP's row prices by the MILP's row names (`row_prices` makes them
    a model's) and the budget's price with the plan's deals; or None where the problem is not
    concave with its deals relaxed (a return floor), no plan is found by `deadline` or `stop()`
    turns true before one is (after it, the floors' search ends with the best so far)."""
    if stop is not None and stop():
        return None
    # The priced greedy heeds the stop here (`period_prices.solve`): the MILP answers without
    # this plan, where the concave route's plan is its only one.
    relaxed = _solve(model, hulls, None, None, deadline, stop)
    if relaxed is None:
        return None
    spend, start, marginal, _, bound = relaxed
    bought = _bought(hulls, spend)
    spent: Floats = np.bincount(hulls.channel, weights=spend,
                                minlength=len(model.problem.channels)).astype(float)
    used = _used(model, spent)
    whole = _whole(hulls, spend, bought)
    if whole is not None and _held(model, spent, used):
        return FirstPlan(whole, start.rows, marginal, bound)
    if stop is not None and stop():
        return None
    # With groups the solve starts at `start`'s thresholds, each cell's, not the greedy's
    # (`period_prices.solve`): a floor chosen past what the relaxed plan spends on its channel
    # leaves columns that cannot meet its row, widened until they do (trial 19's 150 x 52 and
    # 200 x 52 with 9-13 floors: 77,000-99,000 columns, 3.5 s of CPU, where from the greedy's
    # thresholds 2,100 took 0.8-1.0 s, the same plan). Without groups the start is the periods'
    # prices, from which the greedy meets the floors itself.
    again = start if not model.problem.groups or _held(model, spent, used) else None
    fixed = _solve(model, hulls, bought, used, deadline, stop, again)
    if fixed is not None:
        fixed = _flipped(model, hulls, bought, used, spent, fixed, deadline, stop, again)
    else:
        fixed = _solve(model, hulls, {}, dict.fromkeys(used, False), deadline, stop, again)
    return None if fixed is None else FirstPlan(fixed[0], start.rows, fixed[2], bound)


def _flipped(model: ScaledProblem, hulls: Cells, bought: dict[int, int], used: dict[int, bool],
             spent: Floats, fixed: Solved, deadline: float, stop: Stop | None,
             start: period_prices.Start | None) -> Solved:
    """The plan `fixed` with each floor "if used" that the relaxed plan spends part of
    (`spent` per channel, strictly between 0 and its `min`) chosen the other way in turn, the
    least sure first (nearest BOUGHT of its floor), kept where the plan gains, within
    FLIP_SHARE of the time left and until `stop()`. Rounding at half is a guess: trial 19's
    150 x 52 shut three channels spending 31-47 % of their floors, and used, two of them
    returned 0.14 % and 0.08 % more (its plan 0.36 % below the envelope LP's bound)."""
    floors = {c: model.money(model.problem.channels[c].min or Decimal(0)) for c in used}
    unsure = sorted((c for c in used if 0 < spent[c] < floors[c] * (1 - TOLERANCE)),
                    key=lambda c: abs(spent[c] / floors[c] - BOUGHT))
    until = time.perf_counter() + FLIP_SHARE * (deadline - time.perf_counter())
    best, chosen = fixed, used
    for c in unsure:
        if time.perf_counter() >= until or (stop is not None and stop()):
            break
        flipped = {**chosen, c: not chosen[c]}
        found = _solve(model, hulls, bought, flipped, until, stop, start)
        if found is not None and found[3] > best[3]:
            best, chosen = found, flipped
    return best


def _used(model: ScaledProblem, spent: Floats) -> dict[int, bool]:
    """Per channel whose `min` holds only if used (and no other floor makes it used): whether
    it is used, spending (`spent` per channel) at least half its `min` (as `milp._rounded`
    rounds its binary)."""
    return {c: bool(spent[c] >= BOUGHT * model.money(channel.min))
            for c, channel in enumerate(model.problem.channels)
            if channel.min_if_used and channel.min is not None and model.lower[c] <= 0}


def _held(model: ScaledProblem, spent: Floats, used: dict[int, bool]) -> bool:
    """Whether each channel of `used` spends (`spent` per channel) as its choice says already:
    its `min` or more where used, nothing (to the LP's tolerance) where not."""
    for c, on in used.items():
        floor = model.money(model.problem.channels[c].min or Decimal(0))
        if (spent[c] < floor * (1 - TOLERANCE)) if on else (spent[c] > TOLERANCE * floor):
            return False
    return True


def _solve(model: ScaledProblem, hulls: Cells, bought: dict[int, int] | None,
           used: dict[int, bool] | None, deadline: float, stop: Stop | None,
           start: period_prices.Start | None = None) -> Solved | None:
    """The concave problem of `hulls` with each deal bought in parts (`bought` None) or, per
    deal channel, whole in the cell `bought` names and nothing elsewhere, and each channel
    whose `min` holds only if used free of it (`used` None, the LP relaxation of its binary)
    or, as `used` says, held to its `min` or shut: spend per cell, where its LP ends (its row
    prices, a deal channel's on its `max` row), the budget's price and the LP's objective, or
    None. `start`: where the relaxed solve ended, which the solve with its choices fixed may
    start from (the same cells: 100 x 26 mix, whose deals alone are chosen, took 3 LPs from
    the greedy)."""
    problem = model.problem
    lower, upper = list(model.lower), list(model.upper)
    for c, channel in enumerate(problem.channels):
        if channel.min_if_used and channel.min is not None and lower[c] > 0:
            # An incremental floor makes the channel used: its `min` is a hard one.
            lower[c] = max(lower[c], model.money(channel.min))
    for c, on in (used or {}).items():
        if on:
            lower[c] = model.money(problem.channels[c].min or Decimal(0))
        else:
            upper[c] = 0.0
    # The floors "if used" are the bounds above: the concave problem has none of its own.
    channels = tuple(replace(channel, min=None, min_if_used=False) if channel.min_if_used
                     else channel for channel in problem.channels)
    # Read off the deals' cells alone: reading every cell makes each one (`Cells.lazy`), 1.1 s
    # of CPU at 1,000 x 52 with no deal, before the priced greedy's first round.
    dealt = np.flatnonzero(hulls.is_deal).tolist()
    deals = {hulls[i].channel: hulls[i].deal[0] for i in dealt}   # type: ignore[index]
    for c, cost in deals.items():
        if bought is None:
            upper[c] = min(upper[c], cost)
        else:
            lower[c] = upper[c] = cost if c in bought else 0.0
    # One piece per deal channel, a cell's value per unit as its weight; a cell that cannot buy
    # the deal (its price past the period's cap, or bought elsewhere) has no room.
    pieces = {c: linear_segments(1.0, cost) for c, cost in deals.items()}
    shut = linear_segments(0.0, 0.0)
    shown: list[Cell] = []
    for i, cell in enumerate(hulls if dealt else ()):
        if cell.deal is not None:
            cost, value = cell.deal
            c = cell.channel
            room = cost <= cell.upper if bought is None else bought.get(c) == i
            cell = Cell(c, cell.period, value / cost, cell.upper, pieces[c] if room else shut,
                        None, cell.share)
        shown.append(cell)
    concave = copy.copy(model)
    concave.problem = replace(problem, channels=channels)
    concave.lower, concave.upper = lower, upper
    cells = Cells(shown) if dealt else hulls
    if not greedy.concave(concave, cells):
        return None
    solution, end = period_prices.solve(concave, cells, deadline, start, stop, heed=True)
    if solution is None or end is None:
        return None
    spend = solution.spend.copy()
    for i in (bought or {}).values():
        deal = hulls[i].deal
        assert deal is not None
        spend[i] = deal[0]   # bought whole, not to within the LP's tolerance
    # The LP's objective: max_profit's counts the spend (`period_prices`' threshold of 1).
    paid = float(spend.sum()) if problem.objective == "max_profit" else 0.0
    priced = solution.priced
    bound = math.inf if priced is None else priced.constant + float(priced.segments().sum())
    return spend, end, solution.marginal_value or 0.0, solution.model_return - paid, bound


def _bought(hulls: Cells, spend: Floats) -> dict[int, int]:
    """Per deal channel, the cell where `spend` buys most of its deal, if at least BOUGHT of it."""
    bought: dict[int, int] = {}
    deals: Indices = np.flatnonzero(hulls.is_deal)
    for i in deals.tolist():
        cell = hulls[i]
        assert cell.deal is not None
        c = cell.channel
        best = bought.get(c)
        if best is None or spend[i] > spend[best]:
            bought[c] = i
    return {c: i for c, i in bought.items()
            if spend[i] >= BOUGHT * hulls[i].deal[0]}   # type: ignore[index]


def _whole(hulls: Cells, spend: Floats, bought: dict[int, int]) -> Floats | None:
    """`spend` with its deals paid to the cent of their cost, where each is bought whole (to
    the LP's tolerance) in the cell `bought` names and not elsewhere (the envelope LP often
    buys them so: its optimum is a vertex with a few fractional columns); else None."""
    deals = np.flatnonzero(hulls.is_deal)
    cost = np.array([hulls[i].deal[0] for i in deals.tolist()])   # type: ignore[index]
    chosen = np.isin(deals, list(bought.values()))
    paid = spend[deals]
    if np.any(np.abs(paid[chosen] - cost[chosen]) > TOLERANCE * cost[chosen]) or \
            np.any(paid[~chosen] > TOLERANCE * cost[~chosen]):
        return None
    whole = spend.copy()
    whole[deals] = np.where(chosen, cost, 0.0)
    return whole


def row_prices(model: ScaledProblem, hulls: Cells, form: Formulation,
               rows: dict[str, float]) -> Floats:
    """`rows` (by name) as prices of `form`'s rows: a deal channel's price per unit on its
    `max` row is its `once` row's times its cost (that row counts purchases)."""
    named = dict(rows)
    for cell in hulls:
        if cell.deal is not None:
            channel = model.problem.channels[cell.channel].id
            own = named.pop(f"max:{channel}", None)
            if own is not None:
                named[f"once_{cell.channel}"] = own * cell.deal[0]
    y = np.array([named.get(name, 0.0) for name in form.row_names])
    return prices(form, y)


def scaled_plan(model: ScaledProblem, hulls: Cells,
                until: float = math.inf) -> tuple[Floats, Floats | None]:
    """A plan meeting every row of a concave problem under period caps or groups' shares, in a
    few passes of the greedy (`greedy.solve`, no LP), and the optimum of `hulls` under the
    budget and the channels' bounds alone, which bounds every plan (its rows are some of the
    request's). The priced greedy's price rounds read no clock (1.3 s of CPU at 1,500 x 52
    with 13 capped weeks, 2.7 s on a loaded machine), and trial 21's requests of S-curves under
    caps or a group answered no plan in time.

    Where that optimum misses one group's share, its members get that share of the money and
    the others the rest, each side by the greedy: the optimum with the share's row binding
    (the caps aside). Each capped period's cells are then scaled down to its cap, and each
    side's money left is spent on its uncapped periods' cells, by the greedy again. Any
    share still missed (a side short of room, or several groups) is met by scaling down the
    channels it holds back (those outside a floor's group, the members of a ceiling's).
    None for the plan where that breaks a channel's floor. The split and the refill are each
    made only where a pass as long as the first ends before `until` (a `time.perf_counter()`
    instant): the greedy reads no clock, and 2,000 x 55 with capped weeks and a group takes
    0.4 s a pass, 1.1 s in all.

    Example: trial 21's 1,000 x 52 S-curves with a brand group at `min_share` 0.3, which the
    greedy gives less: the brand's channels get 0.3 of the money and the others the rest,
    91.15 M returned on the envelopes of a bound of 91.50 M (the proven plan's 91.15 M),
    where the others scaled down to the share returned 70.1 M."""
    began = time.perf_counter()
    relaxed = greedy.solve(model, hulls).spend
    # A pass of the greedy over every cell, as long as the first.
    passing = time.perf_counter() - began
    period, channel = hulls.period, hulls.channel
    shares = [(np.isin(channel, model.members(group)), float(share), floor)
              for group in model.problem.groups
              for share, floor in ((group.min_share, True), (group.max_share, False))
              if share is not None]
    missed = [(member, share) for member, share, floor in shares
              if _misses(relaxed, member, share, floor)]
    everyone = np.ones(len(hulls), dtype=bool)
    sides = [(everyone, model.budget)] if len(missed) != 1 or \
        time.perf_counter() + passing > until else \
        [(missed[0][0], missed[0][1] * model.budget),
         (~missed[0][0], (1 - missed[0][1]) * model.budget)]
    spend = relaxed.copy()
    nothing = np.zeros(len(model.lower))
    for side, money in sides if len(sides) > 1 else ():
        spend[side] = _filled(model, hulls, side, money, nothing)
    caps = np.array([math.inf if p.cap is None else model.money(p.cap) for p in model.periods])
    spent = np.bincount(period, weights=spend, minlength=len(caps))
    over = spent > caps
    if over.any():
        spend *= np.where(over, caps / np.maximum(spent, EPS), 1.0)[period]
        free = ~np.isfinite(caps)[period]
        for side, money in sides if time.perf_counter() + passing <= until else ():
            fixed = side & ~free
            refill = side & free
            held: Floats = np.bincount(channel[fixed], weights=spend[fixed],
                                       minlength=len(nothing)).astype(np.float64)
            spend[refill] = _filled(model, hulls, refill, money - float(spend[fixed].sum()),
                                    held)
    spend *= 1 - SCALED_MARGIN
    for _ in range(SCALED_PASSES):
        left = False
        for member, share, floor in shares:
            # Asked again for each: scaling for one share moves the others'.
            if not _misses(spend, member, share, floor):
                continue
            left = True
            inside, total = float(spend[member].sum()), float(spend.sum())
            # The channels scaled keep the other side's sum: Σ inside = share · total.
            held_back = ~member if floor else member
            kept = inside if floor else total - inside
            spend[held_back] *= (1 - SCALED_MARGIN) * (
                kept * (1 - share) / (share * (total - inside)) if floor else
                share * kept / ((1 - share) * inside))
        if not left:
            break
    by_channel = np.bincount(channel, weights=spend, minlength=len(model.lower))
    if any(_misses(spend, *share) for share in shares) or \
            np.any(by_channel < np.asarray(model.lower) * (1 - SCALED_MARGIN) - EPS) or \
            np.any(np.bincount(period, weights=spend, minlength=len(caps)) > caps) or \
            float(spend.sum()) > model.budget:
        return relaxed, None
    return relaxed, spend


def _misses(spend: Floats, member: npt.NDArray[np.bool_], share: float, floor: bool) -> bool:
    """Whether the members' part of `spend` misses a group's floor (or ceiling) `share`."""
    inside, total = float(spend[member].sum()), float(spend.sum())
    # Within float noise a share holds (a ceiling of 1 over every channel's sums).
    return inside < share * total - EPS if floor else inside > share * total + EPS


def _filled(model: ScaledProblem, hulls: Cells, side: npt.NDArray[np.bool_], money: float,
            taken: Floats) -> Floats:
    """The greedy's plan on the cells `side` with `money`, each channel's bounds less what it
    spends elsewhere (`taken`, per channel)."""
    index = np.flatnonzero(side)
    present = np.zeros(len(model.lower), dtype=bool)
    present[hulls.channel[index]] = True
    part = copy.copy(model)
    part.budget = max(money, 0.0)
    part.lower = np.where(present, np.maximum(np.asarray(model.lower) - taken, 0.0), 0.0).tolist()
    part.upper = np.where(present, np.maximum(np.asarray(model.upper) - taken, 0.0), 0.0).tolist()
    return greedy.solve(part, hulls.select(index)).spend
