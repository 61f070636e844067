"""Round a solver's float plan to the currency's minor unit so that the money adds up exactly.

Largest-remainder rounding, in two levels: channel totals first (their sum is the solver's spend
rounded to the unit, never above the money available, each within its channel's bounds; then
units moved between channels until every group's share holds to the unit), then each channel's
periods (their sum is the channel total, each period within its cap), all channels at once.
"""
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR

import numpy as np
import numpy.typing as npt

from services.budget.optimizer.answer import Units
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.problem import Group, Problem
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem

# A period without a cap has room for any plan (the most money is 1e15 with 4 decimals).
_UNCAPPED = 2**62


@dataclass(frozen=True)
class Rounded:
    """The plan in whole minor units: per cell, and its sums per channel and per period."""

    units: Units
    channels: Units
    periods: Units


def round_allocation(model: ScaledProblem, cells: Cells, spend: Floats) -> Rounded:
    """Per cell, channel and period: the plan in whole minor units, adding up exactly."""
    problem = model.problem
    scale = 10 ** problem.decimals
    to_units = model.unit * scale
    available = int(model.available * scale)
    channels = len(problem.channels)
    channel, period, is_deal = cells.channel, cells.period, cells.is_deal
    wanted_units = np.where(is_deal, 0.0, np.maximum(spend, 0.0) * to_units)

    # A deal counts as bought above EPS of scaled spend.
    deal_units = {i: _units(deal[0] * model.unit, scale) if spend[i] > EPS else 0
                  for i in np.flatnonzero(is_deal).tolist()
                  if (deal := cells[i].deal) is not None}
    wanted = np.bincount(channel, weights=wanted_units, minlength=channels).tolist()
    # A deal's channel is bought whole or not at all, outside these totals.
    deals = {int(channel[i]) for i in np.flatnonzero(is_deal).tolist()}
    # A channel whose min holds only if used is unused where the solver left it below half its
    # min (float noise of a plan that spends nothing there) and no incremental floor makes it
    # used: it gets nothing, not its min, and its noise is not moved to the others.
    unused = deals | {c for c, asked in enumerate(problem.channels) if asked.min_if_used
                      and asked.min is not None and model.lower[c] <= 0
                      and 2 * wanted[c] < _units(float(asked.min), scale)}
    wanted = [0.0 if c in unused else units for c, units in enumerate(wanted)]
    low = [0 if c in unused else _low(model, c, scale) for c in range(channels)]
    high: list[float] = [0 if c in unused else _high(model, c, scale) for c in range(channels)]
    target = min(round(sum(wanted)), available - sum(deal_units.values()))
    # What each period can still take past the deals bought in it.
    room = np.array([_units(float(p.cap), scale) if p.cap is not None else _UNCAPPED
                     for p in model.periods], dtype=np.int64)
    for i, units in deal_units.items():
        room[cells[i].period] -= units
    if all(p.cap is not None for p in model.periods):
        # A plan may pass the caps by the solver's tolerance (1e-9 of the money: cents on
        # tens of millions). Totals past the periods' room would leave a channel short after
        # the shares are kept (the one whose cells' periods fill first, a group's member as
        # well as any: a cent below its share). Only periods that hold a curve's cell count.
        target = min(target, int(np.maximum(room, 0)[np.unique(period[~is_deal])].sum()))
    totals = largest_remainder(wanted, target, low, high)
    if problem.groups:
        bought = [0] * channels
        for i, units in deal_units.items():
            bought[int(channel[i])] += units
        # A channel whose min holds only if used stays unused rather than take a few units.
        shut: list[float] = [0 if problem.channels[c].min_if_used and not totals[c] else high[c]
                             for c in range(channels)]
        totals = keep_shares(problem, totals, bought, wanted, low, shut)

    cell_units = np.zeros(len(cells), dtype=np.int64)
    curves = np.flatnonzero(~is_deal)
    if all(p.cap is None for p in model.periods):
        cell_units[curves] = _largest_remainder_by(channel[curves], wanted_units[curves],
                                                   np.asarray(totals, dtype=np.int64))
    else:
        cell_units[curves] = _largest_remainder_capped(
            channel[curves], period[curves], wanted_units[curves],
            np.asarray(totals, dtype=np.int64), room)
    for i, units in deal_units.items():
        cell_units[i] = units

    return Rounded(units=cell_units, channels=sum_by(channel, cell_units, channels),
                   periods=sum_by(period, cell_units, len(model.periods)))


def sum_by(index: npt.NDArray[np.intp], units: Units, size: int) -> Units:
    """Sums of `units` by `index` (0 … size − 1), exact (no float in between)."""
    sums = np.zeros(size, dtype=np.int64)
    np.add.at(sums, index, units)
    return sums


def largest_remainder(values: list[float], target: int, low: list[int],
                      high: list[float]) -> list[int]:
    """Integers near `values` summing to `target`, each within [low, high] where possible.

    Start from the floors (held in bounds), then give the missing units to the largest
    fractional parts, or take surplus units from the smallest.

    >>> largest_remainder([3333.33, 3333.33, 3333.34], 10000, [0, 0, 0], [10**6] * 3)
    [3333, 3333, 3334]
    """
    floors = [int(min(max(math.floor(v + 1e-6), lo), hi)) for v, lo, hi in zip(values, low, high)]
    missing = target - sum(floors)
    by_remainder = sorted(range(len(values)), key=lambda i: values[i] - floors[i], reverse=True)
    while missing > 0:
        # Whole rounds at once while every value that can grow takes a unit (a unit a round
        # took minutes for a plan far below its target: 2 M units over a few cells).
        growing = [i for i in by_remainder if floors[i] + 1 <= high[i]]
        rounds = min([missing // len(growing)] + [int(high[i] - floors[i]) for i in growing
                                                  if math.isfinite(high[i])]) if growing else 0
        if rounds > 1:
            for i in growing:
                floors[i] += rounds - 1
            missing -= (rounds - 1) * len(growing)
        grew = False
        for i in by_remainder:
            if missing and floors[i] + 1 <= high[i]:
                floors[i] += 1
                missing -= 1
                grew = True
        if not grew:
            break
    # A unit a round from the smallest remainders up; several rounds where the floors pass the
    # target by more than a unit each (an incremental floor the solver's plan did not keep).
    while missing < 0:
        shrinking = [i for i in reversed(by_remainder) if floors[i] > low[i]]
        if not shrinking:
            break
        rounds = max(min([-missing // len(shrinking)] + [floors[i] - low[i] for i in shrinking]),
                     1)
        for i in shrinking:
            taken = min(rounds, floors[i] - low[i], -missing)
            floors[i] -= taken
            missing += taken
    return floors


def keep_shares(problem: Problem, totals: list[int], bought: list[int], wanted: list[float],
                low: list[int], high: list[float]) -> list[int]:
    """Channel totals (`totals` plus the deals `bought`) whose every group holds its share of
    the spend to the unit: units moved from the channels outside a group short of its
    `min_share` to its members (out of a group over its `max_share`: to the others), within
    each channel's [low, high], never breaking another group's share. Where no channel can
    take them (bounds, other groups), units are left unspent instead, one at a time, each from
    the channel that leaves the shares nearest their rules (`_unspend`).

    A move takes from the channel furthest above what it wanted and gives to the one furthest
    below, so the plan stays as near the solver's as the shares allow. A share that cannot be
    mended so is left as near as it came.

    >>> from decimal import Decimal
    >>> from services.budget.optimizer.problem import Channel, Group, Linear
    >>> one = Linear(Decimal(1))
    >>> problem = Problem(Decimal(100), 2, (Channel("a", one), Channel("b", one)),
    ...                   groups=(Group("g", ("a",), min_share=Decimal("0.21")),))
    >>> keep_shares(problem, [5371, 20207], [0, 0], [5371.38, 20206.62], [0, 0], [10**9] * 2)
    [5372, 20206]
    """
    totals = list(totals)
    index = {channel.id: c for c, channel in enumerate(problem.channels)}
    groups = [(frozenset(index[c] for c in group.channels), group) for group in problem.groups]
    within: dict[int, set[int]] = {}
    for g, (members, _) in enumerate(groups):
        for c in members:
            within.setdefault(c, set()).add(g)
    # Each move fills a group's need, or empties a channel's room or another group's slack;
    # a unit left unspent brings a short share at least its fraction of a unit nearer.
    for _ in range(2 * (len(totals) + len(groups)) + _MOST_UNSPENT):
        spend = sum(totals) + sum(bought)
        rules = _rules(groups, spend)
        held = [sum(totals[c] + bought[c] for c in members) for members, _, _ in rules]
        broken = [g for g, (_, least, most) in enumerate(rules) if not least <= held[g] <= most]
        if not broken:
            break
        # Channels by how far below what they wanted: takers from the front, givers the back.
        order = sorted(range(len(totals)), key=lambda c: totals[c] - wanted[c])
        move = next(filter(None, (_mend(rules[g], held[g], order, totals, low, high, rules,
                                        held, within) for g in broken)), None)
        if move is not None:
            taker, giver, moved = move
            totals[taker] += moved
            totals[giver] -= moved
            continue
        unspent = _unspend(totals, wanted, low, rules, _rules(groups, spend - 1), held)
        if unspent is None:
            break
        totals[unspent] -= 1
    return totals


# Units `keep_shares` may leave unspent: a share short by a few units after rounding needs at
# most a few units over the share.
_MOST_UNSPENT = 1_000


def _rules(groups: list[tuple[frozenset[int], Group]],
           spend: int) -> list[tuple[frozenset[int], int, int]]:
    """Per group, its members and the least and most units they may hold of `spend`."""
    rules = []
    for members, group in groups:
        least = 0 if group.min_share is None else int(
            (group.min_share * spend).to_integral_value(ROUND_CEILING))
        most = spend if group.max_share is None else int(
            (group.max_share * spend).to_integral_value(ROUND_FLOOR))
        # Bounds closer than a unit may hold no whole unit at this spend (0.25 of 18,400,000.02
        # is 4,600,000.005): the rule is then broken whatever the members hold, and mended by
        # leaving units unspent.
        rules.append((members, least, most))
    return rules


def _unspend(totals: list[int], wanted: list[float], low: list[int],
             rules: list[tuple[frozenset[int], int, int]],
             fewer: list[tuple[frozenset[int], int, int]], held: list[int]) -> int | None:
    """The channel to leave a unit unspent from: the one that leaves the groups' shares
    furthest from their rules least far at the spend a unit less (`fewer`), no further than
    now (`rules`); of those, the channel furthest above what it wanted. Shares held at both
    ends (0.61 and 0.39 of a plan) may need a few such units before a spend holds both."""
    now = sum(_outside(rule, units) for rule, units in zip(rules, held))
    base = sum(_outside(rule, units) for rule, units in zip(fewer, held))
    # Per channel, how much its unit less changes that sum: only its groups' terms change.
    change = [0] * len(totals)
    for rule, units in zip(fewer, held):
        delta = _outside(rule, units - 1) - _outside(rule, units)
        if delta:
            for c in rule[0]:
                change[c] += delta
    best = min((c for c in range(len(totals)) if totals[c] > low[c]
                and base + change[c] <= now),
               key=lambda c: (change[c], wanted[c] - totals[c]), default=None)
    return best


def _outside(rule: tuple[frozenset[int], int, int], units: int) -> int:
    """How many units a group holding `units` lies outside its rule."""
    _, least, most = rule
    return max(least - units, units - most, 0)


def _mend(rule: tuple[frozenset[int], int, int], holds: int, order: list[int],
          totals: list[int], low: list[int], high: list[float],
          rules: list[tuple[frozenset[int], int, int]], held: list[int],
          within: dict[int, set[int]]) -> tuple[int, int, int] | None:
    """A move of units towards the share of a group that `holds` outside its `rule`: into it
    when short, out of it when over; takers in `order`, givers in reverse."""
    members, least, most = rule
    short = holds < least
    need = least - holds if short else holds - most
    takers = [c for c in order if (c in members) == short and totals[c] < high[c]]
    givers = [c for c in reversed(order) if (c in members) != short and totals[c] > low[c]]
    return _first_move(takers, givers, need, totals, high, low, rules, held, within)


# Pairs of channels tried for one move of `keep_shares`: a share that no near pair can mend is
# left as it came rather than searched for among millions of pairs.
_MOST_PAIRS = 20_000


def _first_move(takers: list[int], givers: list[int], need: int, totals: list[int],
                high: list[float], low: list[int], rules: list[tuple[frozenset[int], int, int]],
                held: list[int], within: dict[int, set[int]]) -> tuple[int, int, int] | None:
    """The first (taker, giver, units) in the order given that moves at least a unit, at most
    `need`, within both channels' bounds and every group's shares (`within`: the groups of
    each channel; a group holding both channels is unchanged by the move)."""
    nothing: set[int] = set()
    for k, (taker, giver) in enumerate((t, g) for t in takers for g in givers):
        if k == _MOST_PAIRS:
            return None
        room = min(need, totals[giver] - low[giver])
        if math.isfinite(high[taker]):
            room = min(room, int(high[taker]) - totals[taker])
        into, out_of = within.get(taker, nothing), within.get(giver, nothing)
        for g in into - out_of:
            room = min(room, rules[g][2] - held[g])
        for g in out_of - into:
            room = min(room, held[g] - rules[g][1])
        if room > 0:
            return taker, giver, room
    return None


def _largest_remainder_by(group: npt.NDArray[np.intp], values: Floats,
                          totals: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`largest_remainder` within each group at once, with no bounds but 0: per group, the
    floors plus a unit more for the largest fractional parts (a unit less for the smallest)."""
    floors = np.floor(values + 1e-6).astype(np.int64)
    missing = totals - np.bincount(group, weights=floors, minlength=len(totals)).astype(np.int64)
    counts = np.bincount(group, minlength=len(totals))
    # Every member gets the whole rounds of missing units; the rest goes by remainder.
    rounds = np.where(counts > 0, np.maximum(missing, 0) // np.maximum(counts, 1), 0)
    floors += rounds[group]
    missing -= rounds * counts
    order = np.lexsort((-(values - floors), group))
    floors[order] += _ranks(group[order], np.ones(len(values), dtype=bool)) < missing[group[order]]
    floors -= _given_back(group, values - floors, floors, np.maximum(-missing, 0))
    return floors


def _largest_remainder_capped(channel: npt.NDArray[np.intp], period: npt.NDArray[np.intp],
                              values: Floats, totals: npt.NDArray[np.int64],
                              room: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per cell, whole units near `values` such that each channel's add up to its total where
    the periods' `room` allows, and no period's pass its room.

    The floors, then a unit more for the cells by falling fractional part, across all channels
    (the largest first), while the cell's channel lacks units and its period has room: a cell a
    full period refuses leaves its channel's unit to the channel's next cell. That greedy is
    walked cell by cell over the cells that can take a unit (their channel lacks and their
    period has room), until no channel lacks: found in rounds of deferred acceptance over every
    cell at once instead, it took 12-20 rounds and 0.07-0.13 s of CPU at 1,000 x 52
    (`bench/shapes.py`'s `tiny_caps`, `points_all_capped`), the walk 0.02 s.
    A channel whose cells' periods are all full by then takes whole units where room is left
    (`largest_remainder`), or goes short (what it lacks stays unspent; no cap is passed).
    """
    channels, periods = len(totals), len(room)
    floors = np.floor(values + 1e-6).astype(np.int64)
    # A plan may pass a cap by the solver's tolerance (units on a large budget): such a period
    # first gives units back, from its smallest fractional parts.
    over = np.maximum(sum_by(period, floors, periods) - room, 0)
    floors -= _given_back(period, values - floors, floors, over)
    lacking = totals - sum_by(channel, floors, channels)
    floors -= _given_back(channel, values - floors, floors, np.maximum(-lacking, 0))
    lacking = np.maximum(lacking, 0)
    left = room - sum_by(period, floors, periods)
    order = np.argsort(floors - values, kind="stable")
    order = order[(lacking[channel[order]] > 0) & (left[period[order]] > 0)]
    lacks, rooms, need = lacking.tolist(), left.tolist(), int(lacking.sum())
    given = []
    for i, c, p in zip(order.tolist(), channel[order].tolist(), period[order].tolist()):
        if not need:
            break
        if lacks[c] and rooms[p] > 0:
            lacks[c], rooms[p], need = lacks[c] - 1, rooms[p] - 1, need - 1
            given.append(i)
    kept = np.zeros(len(values), dtype=bool)
    kept[given] = True
    floors += kept
    lacking -= sum_by(channel, kept.astype(np.int64), channels)
    left -= sum_by(period, kept.astype(np.int64), periods)
    for c in np.flatnonzero(lacking > 0).tolist():
        mine = np.flatnonzero(channel == c)
        base = floors[mine]
        grown = np.asarray(largest_remainder(
            values[mine].tolist(), int(base.sum() + lacking[c]), base.tolist(),
            (base + left[period[mine]]).astype(float).tolist()), dtype=np.int64)
        left -= sum_by(period[mine], grown - base, periods)
        floors[mine] = grown
    return floors


def _given_back(group: npt.NDArray[np.intp], remainders: Floats, units: npt.NDArray[np.int64],
                count: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per member, how many units it gives back: in each group, `count` units in all (or all
    it has), in rounds of a unit from each member that has one left, those with the smallest
    fractional parts first (the shares moved a channel's total several units below its
    cells' floors)."""
    given = np.zeros(len(units), dtype=np.int64)
    left = count.copy()
    order = np.lexsort((remainders, group))
    while left.any():
        has = units - given
        giving = np.zeros(len(units), dtype=bool)
        giving[order] = has[order] >= 1
        members = sum_by(group, giving.astype(np.int64), len(left))
        if not (members[left > 0] > 0).any():
            break
        # Whole rounds while every member with units gives one (a channel's surplus can be
        # millions of units over a few cells); then one from the smallest remainders.
        whole = (left // np.maximum(members, 1))[group]
        step = np.where(giving & (whole > 0), np.minimum(has, np.maximum(whole, 1)), 0)
        last = giving & (whole == 0)
        ranked = np.zeros(len(units), dtype=bool)
        ranked[order] = last[order] & (_ranks(group[order], last[order]) < left[group[order]])
        step += ranked
        given += step
        left -= sum_by(group, step, len(left))
    return given


def _ranks(group: npt.NDArray[np.intp], flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """Per position of `group` (sorted), how many flagged positions of its group come before."""
    before: npt.NDArray[np.intp] = np.cumsum(flags) - flags
    if not len(group):
        return before
    starts = np.r_[True, group[1:] != group[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(group)), 0))
    ranks: npt.NDArray[np.intp] = before - before[first]
    return ranks


def _units(amount: float, scale: int) -> int:
    return int(round(amount * scale))


def _low(model: ScaledProblem, c: int, scale: int) -> int:
    """The channel's floor in units, used: its min and incremental low."""
    channel = model.problem.channels[c]
    floor = 0 if channel.min is None else _units(float(channel.min), scale)
    return max(floor, math.ceil(model.lower[c] * model.unit * scale - 1e-6))


def _high(model: ScaledProblem, c: int, scale: int) -> int:
    return math.floor(model.upper[c] * model.unit * scale + 1e-6)
