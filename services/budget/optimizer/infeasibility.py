"""Why a request has no plan: the elastic model names the constraints to relax, and by how much."""
import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import partial

import highspy
import numpy as np
import numpy.typing as npt

from services.budget.optimizer import roi_frontier
from services.budget.optimizer.answer import (
    RATIO_PLACES,
    Allocation,
    Conflict,
    Infeasible,
    SolveTimeout,
    TooSteep,
)
from services.budget.optimizer.backends import Row, Run, run_highs, solve_rows
from services.budget.optimizer.curves import Floats, envelope
from services.budget.optimizer.formulation import Formulation, formulate
from services.budget.optimizer.problem import (
    FIRST_TOLERANCE,
    Channel,
    Deal,
    Group,
    Hill,
    Incremental,
    Points,
    Problem,
    Reserve,
)
from services.budget.optimizer.rounding import round_allocation
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem
from shared.money import quantum

# A model of the request, its elastic model and that model's cells.
Elastic = tuple[ScaledProblem, Formulation, Cells]
# Naming the conflict gets at least this long, even past the deadline: a 422 that says what to
# change beats a timeout.
LEAST_SECONDS = 1.0
# ... but a 422 comes at most this long past its time limit, every step of the naming (each at
# least LEAST_SECONDS, a check a whole solve) ending by then: at a 0.5 s limit, fuzzed
# target_roi and min_spend requests were refused 2.3-5.1 s after they began, and trial 19's
# roi20_t3 at a 5 s limit 5.2 s past it.
NAMING_SECONDS = 1.0
# `solver.solve`, handed over by `solver` once defined: a fix is solved applied (`_works`,
# `_further`), and the solver names its conflicts with this module, which so cannot import it.
SOLVE: Callable[[Problem], Allocation] | None = None

ADVICE = {
    "budget": "raise the money available (total minus reserve) by {amount}",
    "min": "lower the minimum of channel {name} by {amount}",
    "max": "raise the maximum of channel {name} by {amount}",
    "period_cap": "raise the cap of period {name} by {amount}",
    "target_return": "lower target_return by {amount}",
    "target_roi": "lower target_roi to at most {amount}",
}
# `share_roi_plan` tries its plan at this many scales, from the LP's spend to the most it may.
SCALINGS = 40
# ... and at each whole number of minor units up to this many.
TINY_UNITS = 100
# `past_best_roi` reads every cell's best return per unit before a target_roi is solved only
# up to this many cells: it takes about 40 µs a cell (2 s at 1,000 x 52), paid by every
# request, where the MILP's search for an unreachable target takes its whole time limit.
PAST_BEST_CELLS = 1000
# The instant (`time.perf_counter()`) by which the answer being made must come (`answer_by`):
# its time limit and NAMING_SECONDS; a change checked applied is solved within its caller's.
_LATEST: ContextVar[float] = ContextVar("latest", default=math.inf)
# Set while a fix is solved applied (`_works`), whose own conflicts are not needed.
_VERIFYING: ContextVar[bool] = ContextVar("verifying", default=False)
# Set while a request with changes applied is solved for what it still lacks (`_further`),
# whose own changes are not checked.
_CHASING: ContextVar[bool] = ContextVar("chasing", default=False)
# target_roi's changes are checked applied (`checked`) for at most this long.
CHECK_SECONDS = 1.0
# tolerance_percent is told to the hundredth of a percent, rounded up so that it suffices.
PERCENT_PLACES = Decimal("0.01")
# Under a return floor the curves past the caps are cut as finely as the solver's first round
# cuts them (FIRST_TOLERANCE): their segments lie on or below a concave curve, so a raised cap
# named for a return floor is enough on the curve too. Without one the curves do not matter to
# the slacks: a segment or two each (200 x 26 capped curves cut finely took 2 s of CPU more
# than the rest of the naming).
PAST_CAPS_COARSE = 0.5
# Dinkelbach's rounds for the most a plan returns per unit spent (`_most_per_unit`): each
# solves the elastic model once; two or three reach it on the trial's requests.
ROI_ROUNDS = 6
# A ratio told to the ratios' places is floored past floats' noise of this share of it, as the
# solver counts a plan short of its target only past it (`solver._short_of`): a deal and 100
# spent on a channel at 1 a unit return 700 for 200, 3.4999999999999996 in floats, and 3.499999
# was named.
ROI_NOISE = 1e-12
# How long the fixes named are made smaller by whole units and checked (`_to_the_unit`), at most:
# a check is a solve, a few milliseconds on small requests.
SMALLEST_SECONDS = 0.5
# Under min_spend, the share of the time left when conflicts are named kept from the elastic
# model's solves for the checks that size the changes (`conflicts`).
SIZING_SHARE = 0.5
# Past this ratio between a change that works and one that does not, the next tried between them
# is their geometric mean (`_to_the_unit`).
FAR_APART = 4
# Halvings of the scale of a plan's cells down to the least money it needs (`_least_money`):
# 1e-12 of its spend, below a cent of 1e9.
LEAST_MONEY_HALVINGS = 40
# Newton steps that move a floor's split among its periods to where the true slopes meet
# (`_slopes_met`): from the envelopes' split a few reach float noise.
SPLIT_STEPS = 20


@contextmanager
def unnamed() -> Iterator[None]:
    """Within it, `conflicts` names none: a solve whose failure is tried again first."""
    token = _VERIFYING.set(True)
    try:
        yield
    finally:
        _VERIFYING.reset(token)


@contextmanager
def answer_by(latest: float) -> Iterator[None]:
    """Within it, naming a conflict ends by `latest` (`given`), or by the answer's own latest
    instant where that is sooner: the solve of a change applied ends by its caller's."""
    token = _LATEST.set(min(latest, _LATEST.get()))
    try:
        yield
    finally:
        _LATEST.reset(token)


def given(deadline: float) -> float:
    """The seconds a step of the naming that should end by `deadline` is given from now: at
    least LEAST_SECONDS, but never past the answer's latest instant (`answer_by`); 0 once that
    has passed."""
    now = time.perf_counter()
    return max(min(max(deadline - now, LEAST_SECONDS), _LATEST.get() - now), 0.0)


def conflicts(model: ScaledProblem, cells: Cells, deadline: float) -> list[Conflict]:
    """Name the constraints to relax, and by how much, with an elastic version of the model:
    every constraint of the request gets a penalised slack, and the least total slack is the
    smallest change that makes the request feasible.

    Raising the money available can make a channel's or a period's cap bind past the old
    money (a deal of 150,000 in a channel capped at 120,000, with 100,000 available): the
    elastic model then reaches as far as any cheaper fix could go. A first fix that keeps the
    money (its budget slack at 0: no plan spends past it, so no cap past it matters) costs C;
    a fix raising the money by more than C / BUDGET_PENALTY costs more, so the second model,
    of the request with C more money available and its budget row held at the old money, has
    every cap below that as a row and every curve reaching that far (`_reaching`)."""
    # Which plans are possible depends on the curves only through a return floor.
    floors = model.problem.objective in ("min_spend", "target_roi")
    if _VERIFYING.get() or given(deadline) <= 0:
        # A fix being tried (`_works`): that it has no plan is all that is asked. Or no time
        # is left: building the elastic model alone takes seconds under load.
        return []
    # Half the time left (or of LEAST_SECONDS) to cut the curves past their caps, the rest to
    # solve: 2,000 x 52 curves take seconds to cut.
    cut_by = time.perf_counter() + given(deadline) / 2
    lifted = _past_caps(model, cells, cut_by, floors)
    cut = cells if lifted is None else lifted
    form = formulate(model, cut, exact=None if floors else (), elastic=True)
    form.col_upper[form.slacks["budget"][0]] = 0.0
    # Under min_spend a change is sized by checks that each solve for the most return (2-3 s of
    # CPU at 30 x 8): the elastic model, whose MILP may run to its limit, leaves them a share.
    solve_by = deadline - (deadline - time.perf_counter()) * SIZING_SHARE \
        if model.problem.objective == "min_spend" else deadline
    seconds = given(solve_by)
    if seconds <= 0:
        # Its margin spent cutting the curves and building the model (each seconds of a core
        # at load 15): HiGHS's own model would take as long again.
        return []
    run = _honest(form, cut, seconds)
    # The model whose money the slacks are told in, its elastic model and cells; the request's
    # own, where a part is tried alone that does not raise the money: its curves are cut as
    # the solver cuts them, where the wider model's, cut to more money, reached a target_roi
    # that the solver's did not (trial 18f, k3: a min lowered by 30,008.85 named enough).
    told, own = model, (model, form, cut)
    # More money is the cheaper fix only where a unit of it does more than a unit of another
    # rule's slack: it earns more than one of return under a return floor, or it completes a
    # deal's lump; lowering a floor or raising a cap by as much costs less (BUDGET_PENALTY).
    lumps = any(isinstance(channel.response, Deal) for channel in model.problem.channels)
    if run.x is not None and (floors or lumps) and time.perf_counter() < solve_by:
        wider = _reaching(model, float(form.cost @ run.x), cut_by, floors)
        if wider is not None:
            reached = _honest(wider[1], wider[2], given(solve_by))
            if reached.x is not None:
                (told, form, cut), run = wider, reached
    raw = [] if run.x is None else _named(told, form, cut, run.x, deadline, own)
    found = raw
    incremental = model.problem.incremental
    if incremental is not None:
        found = named_as_set(model, incremental, found)
        unused = _left_unused(model, incremental, floors, deadline)
        if unused is not None:
            found.append(unused)
    # The set is one change, every part of it needed; a part changed further may do without
    # the rest, and is named too, as enough alone: a return floor lowered (a target of 9e9
    # lowered by 8,954,848,049.77 with the budget and seven caps raised, or by a little more
    # alone; a target of 5,000 on a return of 2 a unit with 1,000 available met by 1,500 more
    # money, or lowered by 3,000), a minimum lowered further (trial 18f, c4: a min of 60,000
    # on a and a group's share that puts as much on b, with 80,000 in the periods' caps: the
    # min lowered by 10,000 and the share together, or the min by 20,000 alone). Each is
    # solved applied before it is named (`_works`). The return floor is tried first, at least
    # LEAST_SECONDS; each other part while time is left.
    floor = {"min_spend": "target_return", "target_roi": "target_roi"}.get(
        model.problem.objective)
    parts = [c.constraint for c in raw if c.constraint != floor]
    # Under min_spend the target lowered alone is named from the plan of most return, to the
    # cent (`solver._most_return_cut`), which drops any named here: its elastic solves and
    # checks took 4-6 s at 12 x 4 with S-curves and deals, past the time limit.
    tried = ([floor] if floor in form.slacks and [c.constraint for c in raw] != [floor]
             and model.problem.objective != "min_spend" else []) \
        + (parts if len(raw) > 1 else [])
    wider = (told, form, cut)
    for rule in tried:
        if rule != floor and time.perf_counter() >= deadline:
            break
        # On the request's own curves first, then (the money aside) on the wider model's,
        # whose finer pieces may name a change the solver finds a plan for (trial 18f, q10).
        for elastic in [wider] if rule == "budget" else [own] + ([wider] if told is not model
                                                                  else []):
            if rule not in elastic[1].slacks:
                # A cap at or past the request's own money has no row there: only the wider
                # model, given more money, holds it (a channel whose min and max are the money).
                continue
            fix = _alone(model, rule, elastic, deadline)
            if fix is not None:
                found.append(fix)
                break
    # The set applied together is checked, its return floor's part (or its one part) made
    # larger where the set does not work, and smaller where it does; each fix enough alone
    # made the smallest that works: all told on the pieces, and to the unit while
    # SMALLEST_SECONDS last (under min_spend, the time left: its share, SIZING_SHARE, is kept
    # for it). Under min_spend the target's part is told from the plan of most return
    # (`solver._enough_together`).
    by = deadline if model.problem.objective == "min_spend" else \
        min(deadline, time.perf_counter() + SMALLEST_SECONDS)
    together = [fix for fix in found if not fix.alone]
    targets = [fix for fix in together if fix.constraint in ("target_roi", "target_return")]
    part = targets[0] if targets else together[0] if len(together) == 1 else None
    fitted = part
    if part is not None and not (part.constraint == "target_return"
                                 and model.problem.objective == "min_spend"):
        fitted = _to_the_unit(model, part, [fix for fix in together if fix is not part], by)
        found = [fitted if fix is part else fix for fix in found]
    if together and (part is None or fitted is part and part.constraint != "target_roi"):
        # Money, caps and minimums, which under target_roi the pieces alone may have met, not
        # made to work by the one part's size: the target's part added where the set falls
        # short (a min lowered by 26.28 alone was 0.168666 a unit short applied).
        found = checked(model, found, sets_only=True)
    if part is None and model.problem.objective != "target_roi":
        found = _widened(model, found, by)
    # A plan found on the true curves may return more per unit than the pieces' plans: target_roi
    # lowered alone is tried at that figure first (t2b_hardmin_w: 5.509194 where the pieces
    # said 5.507771, and whole-unit steps from there did not reach it in time).
    target = model.problem.target_roi
    reach = None
    if target is not None and given(by) > 0:
        if any(fix.alone and fix.constraint == "target_roi" for fix in found):
            reach = _reached_roi(model, cells, time.perf_counter() + given(by) / 2)
        elif floor in tried:
            # Its check found no plan in time (trial 19's roi30_t3.5 at 30 x 8: a set named,
            # no target): a plan apart from the pieces that keeps every other rule meets the
            # target lowered to what it returns per unit, with no solve.
            held = _reached_roi(model, cells, time.perf_counter() + given(by) / 2, held=True)
            if held is not None and held < target:
                found.append(Conflict("target_roi", target - held,
                                      ADVICE["target_roi"].format(amount=held), alone=True))
    first = None if target is None or reach is None else target - reach
    return [_to_the_unit(model, fix, [], by, works=True,
                         first=first if fix.constraint == "target_roi" else None)
            if fix.alone else fix for fix in found]


def _to_the_unit(model: ScaledProblem, fix: Conflict, others: list[Conflict], deadline: float,
                 *, works: bool | None = None, first: Decimal | None = None) -> Conflict:
    """`fix`, applied with `others`, made the smallest change that works (`_works`) to the unit
    (of money, or of a ratio's places) by `deadline`: one unit tried first; then, where the
    named change works (`works`: known to; or `first`, a smaller one tried once, does), halved
    back between it and the unit, by ratio while they are more than FAR_APART apart; where it
    does not, steps up from it that double from one unit until one works, then halved back.
    As named where no change up to the whole rule (a target lowered to 0, a min to 0; money
    without end) was found to work in time. The pieces lie below a concave curve and above an
    S-curve's convex part: k3's min lowered by 30,036.61 alone where 30,000.00 is enough, t3's
    target_roi named 3.999999 where 4.000000 is met, and a change that gains little a unit is
    named many times too large (trial 19: a max raised by 373,989.06 where 0.01 is enough, a
    min_spend target a cent past the most return)."""
    family, _, label = fix.constraint.partition(":")
    if family not in ("budget", "min", "max", "period_cap", "target_return", "target_roi") or \
            fix.detail != _resized(model, fix, fix.change).detail:
        return fix
    unit = RATIO_PLACES if family == "target_roi" else quantum(model.problem.decimals)
    problem = model.problem
    channels = {channel.id: channel for channel in problem.channels}
    whole = {"target_roi": problem.target_roi, "target_return": problem.target_return,
             "min": channels[label].min if label in channels else None}.get(family)
    most = None if whole is None else whole - unit if family == "target_roi" else whole

    def applied_works(change: Decimal) -> bool:
        # A check begun is given LEAST_SECONDS at least: cut short, a change that works would
        # be taken for one that does not.
        return _works(model, others + [_resized(model, fix, change)], given(deadline))

    # The elastic model's pieces can overstate the change by any factor (where it gains little a
    # unit), and each check is a solve (seconds under min_spend, whose checks solve for the most
    # return): the least change there is costs one check, where stepping down to it costs one
    # per doubling.
    short: Decimal | None = None
    if fix.change > unit and time.perf_counter() < deadline:
        if applied_works(unit):
            return _resized(model, fix, unit)
        short = unit
    if works is None:
        works = time.perf_counter() < deadline and applied_works(fix.change)
    good: Decimal | None = fix.change if works else None
    bad: Decimal | None = short if works else fix.change
    if works and first is not None and 0 < first < fix.change and applied_works(first):
        good = first
    step = unit
    if not works and family == "target_roi":
        # The first step up is what the request so changed names lowered (`_further`): a
        # unit's doublings from 1e-6 take a solve each (0.000288 more was not reached in time).
        step = max(_further(model, others + [fix], deadline) or unit, unit)
    # Up from a change that does not work, by steps that double, until one does.
    while good is None and time.perf_counter() < deadline:
        assert bad is not None
        trial = bad + step if most is None else min(bad + step, most)
        if trial == bad:
            break
        if applied_works(trial):
            good = trial
        else:
            bad = trial
        step *= 2
    while good is not None and bad is not None and abs(good - bad) > unit and \
            time.perf_counter() < deadline:
        low, high = min(good, bad), max(good, bad)
        # Halved by ratio while the two are far apart: from one unit and 373,989.06, halving
        # the difference takes 25 checks to reach 0.01, halving the ratio 4 to a factor of 4.
        middle = (high * low).sqrt() if high > FAR_APART * low else (high + low) / 2
        middle = (middle / unit).to_integral_value(ROUND_FLOOR) * unit
        if applied_works(middle):
            good = middle
        else:
            bad = middle
    return fix if good is None or good == fix.change else _resized(model, fix, good)


def _resized(model: ScaledProblem, fix: Conflict, change: Decimal) -> Conflict:
    """`fix` changing its rule by `change`, told as `ADVICE` tells it."""
    family, _, label = fix.constraint.partition(":")
    target = model.problem.target_roi
    amount = target - change if family == "target_roi" and target is not None else change
    return replace(fix, change=change, detail=ADVICE[family].format(name=label, amount=amount))


def checked(model: ScaledProblem, found: list[Conflict], *,
            sets_only: bool = False) -> list[Conflict]:
    """target_roi's changes `found`, each enough alone (unless `sets_only`: `conflicts` has
    solved those applied) and the set together, solved applied
    (`_works`); where one has no plan, the request so changed is solved and target_roi lowered
    further by what it names lowered (its pieces, the cents and the rules no change touched can
    keep a plan short of a figure told on the best channel, or on the elastic plan: a set of a
    min lowered and a cap raised was 0.001324 a unit short), and kept where that works.
    As named where it does not, or CHECK_SECONDS (or the answer's latest instant) pass first."""
    if model.problem.objective != "target_roi" or _VERIFYING.get() or _CHASING.get():
        return found
    deadline = min(time.perf_counter() + CHECK_SECONDS, _LATEST.get())
    together = [fix for fix in found if not fix.alone]
    kept = list(found)
    alone = [] if sets_only else [[fix] for fix in found
                                  if fix.alone and fix.constraint == "target_roi"]
    for fixes in alone + ([together] if together else []):
        if time.perf_counter() >= deadline or _works(model, fixes, given(deadline)):
            continue
        more = _further(model, fixes, deadline)
        if more is None:
            continue
        lowered = [fix for fix in fixes if fix.constraint == "target_roi"]
        fitted = [_resized(model, fix, fix.change + more) if fix in lowered else fix
                  for fix in fixes]
        if not lowered:
            fitted.append(_resized(model, Conflict("target_roi", Decimal(0), ""), more))
        if not _works(model, fitted, given(deadline)):
            continue
        kept = [fix for fix in kept if fix not in fixes] + fitted
    return kept


def _widened(model: ScaledProblem, found: list[Conflict], deadline: float) -> list[Conflict]:
    """`found` with its set of several parts and no return floor (under `max_return`,
    `max_profit`, `min_spend`) solved applied, and where that has no plan and the changed
    request names only parts of the set again, each widened by as much: the elastic model
    holds a share to its tolerance, which whole cents can miss (under max_profit a min lowered
    by 5,000 and a group's max share raised by 0.483334 were one millionth short applied;
    fuzz). As named
    where it works, or the widened set does not, or a check does not finish (at least
    LEAST_SECONDS each)."""
    if _VERIFYING.get() or _CHASING.get():
        return found
    together = [fix for fix in found if not fix.alone]
    named = {fix.constraint for fix in together}
    more = _named_applied(model, together, deadline)
    if not more or any(fix.constraint not in named for fix in more):
        return found
    groups = {group.id: group for group in model.problem.groups}
    extra = {fix.constraint: fix.change for fix in more}
    wider = []
    for fix in together:
        family, _, label = fix.constraint.partition(":")
        change = fix.change + extra.get(fix.constraint, Decimal(0))
        wider.append(share_conflict(groups[label], family, float(change))
                     if family in ("group_min", "group_max") else _resized(model, fix, change))
    if _named_applied(model, wider, deadline) != []:
        return found
    return [fix for fix in found if fix.alone] + wider


def _solve(problem: Problem) -> Allocation:
    """`problem` solved by the solver (`SOLVE`, which `solver` hands over)."""
    assert SOLVE is not None, "services.budget.optimizer.solver sets SOLVE when imported"
    return SOLVE(problem)


def _applied_all(model: ScaledProblem, fixes: list[Conflict]) -> Problem | None:
    """The request with every one of `fixes` made (`applied`); None where one cannot be."""
    changed: Problem | None = model.problem
    for fix in fixes:
        changed = None if changed is None else applied(changed, model.reserve, fix)
    return changed


def _further(model: ScaledProblem, fixes: list[Conflict], deadline: float) -> Decimal | None:
    """How much further target_roi must be lowered where the request with `fixes` applied has
    no plan: what that request names lowered alone (or as its one change); None where it names
    none, no plan or conflict was found in its time (at least LEAST_SECONDS), or `deadline`
    passed before it began."""
    if time.perf_counter() >= deadline:
        return None
    named = _named_applied(model, fixes, deadline) or []
    lowered = [fix.change for fix in named if fix.constraint == "target_roi" and
               (fix.alone or len(named) == 1)]
    return min(lowered) if lowered else None


def _named_applied(model: ScaledProblem, fixes: list[Conflict],
                   deadline: float) -> list[Conflict] | None:
    """The changes the request with `fixes` applied names, its own not checked (`_CHASING`);
    [] where it has a plan, None where a fix cannot be applied or no answer came by `deadline`
    (at least LEAST_SECONDS, within the answer's latest instant)."""
    changed = _applied_all(model, fixes)
    seconds = given(deadline)
    if changed is None or seconds <= 0:
        return None
    token = _CHASING.set(True)
    try:
        _solve(replace(changed, time_limit=seconds))
    except Infeasible as refused:
        return refused.conflicts
    except (SolveTimeout, TooSteep):
        return None
    finally:
        _CHASING.reset(token)
    return []


def _reaching(model: ScaledProblem, cost: float, deadline: float,
              floors: bool) -> tuple[ScaledProblem, Formulation, Cells] | None:
    """The request with `cost` (scaled) more money available, its elastic model with the
    budget row held at the old money (its caps below the new money are rows, its curves reach
    it) and that model's cells. None where cutting the curves passes `deadline`."""
    problem = model.problem
    more = Decimal(repr(cost * model.unit)).quantize(quantum(problem.decimals),
                                                      rounding=ROUND_CEILING)
    reaching = ScaledProblem(replace(problem, total=problem.total + more,
                                     reserve=Reserve(amount=model.reserve)))
    lifted = _past_caps(reaching, None, deadline, floors)
    if lifted is None:
        return None
    form = formulate(reaching, lifted, exact=None if floors else (), elastic=True)
    form.row_upper[form.row_index("budget")] = reaching.money(model.available)
    return reaching, form, lifted


def _left_unused(model: ScaledProblem, incremental: Incremental, floors: bool,
                 deadline: float) -> Conflict | None:
    """`tolerance_percent` raised to 100, enough alone where it lets a "min if used" channel
    with an incremental floor go unused (at 100 % its floor is 0, and its `min` holds only if
    it spends): the request solved at 100 % has a plan, which leaves such a channel at 0.
    None where it is no fix (no plan even so, none found in time, or none that leaves one of
    them unused) or the tolerance is 100 % already. The elastic model cannot find it: with a
    floor above 0 the channel's `min` is a hard one (`formulation`)."""
    problem = model.problem
    held = [c for c, channel in enumerate(problem.channels)
            if channel.min_if_used and (channel.min or 0) > 0 and model.lower[c] > 0]
    if incremental.tolerance >= 1 or not held:
        return None
    wide = ScaledProblem(replace(problem, incremental=replace(incremental, tolerance=Decimal(1))))
    try:
        cells = wide.cells(FIRST_TOLERANCE if floors else PAST_CAPS_COARSE, deadline)
    except SolveTimeout:
        return None
    form = formulate(wide, cells, exact=None if floors else ())
    # Any plan will do, the one spending least on those channels best: it shows which go
    # unused.
    mine = (form.cell_of >= 0) & np.isin(cells.channel[np.maximum(form.cell_of, 0)], held)
    form.cost = np.where(mine, -form.spend_of if form.maximise else form.spend_of, 0.0)
    run = run_highs(form, given(deadline))
    if run.x is None:
        return None
    spent = np.bincount(cells.channel, weights=form.cell_spend(run.x, len(cells)),
                        minlength=len(problem.channels))
    unused = [problem.channels[c].id for c in held if spent[c] <= EPS]
    if not unused:
        return None
    names = ", ".join(unused)
    return Conflict("tolerance_percent",
                    (100 - incremental.tolerance * 100).quantize(PERCENT_PLACES),
                    f"raise tolerance_percent to 100 and leave channel {names} unused: at "
                    f"100 % its previous amount sets no floor, and its min holds only if used",
                    alone=True)


def _alone(model: ScaledProblem, rule: str, elastic: Elastic,
           deadline: float) -> Conflict | None:
    """The change of `rule` alone that makes the request possible on the elastic model
    `elastic`, told on the true curves or else on the pieces, whichever first the solver then
    finds a plan for (`_works`; it may find none for the first, under a return floor, where the
    pieces it starts from reach less: trial 18f, q4); None where neither."""
    if given(deadline) <= 0:
        return None
    here, shape, cells = elastic
    column = shape.slacks[rule][0]
    upper = shape.col_upper.copy()
    upper[[other for other, _ in shape.slacks.values() if other != column]] = 0.0
    only = replace(shape, col_upper=upper)
    run = _honest(only, cells, given(deadline))
    if run.x is None:
        return None
    incremental = model.problem.incremental
    for tight in (True, False):
        named = _named(here, only, cells, run.x, deadline, tight=tight)
        if incremental is not None:
            named = named_as_set(model, incremental, named)
        if len(named) == 1 and _works(model, named, given(deadline)):
            return replace(named[0], alone=True)
    return None


def applied(problem: Problem, reserve: Decimal, fix: Conflict) -> Problem | None:
    """`problem` with the change `fix` made, its reserve held at `reserve` where the money is
    raised; None where the change is not one to a number of the request (a rule it does not
    have)."""
    family, _, label = fix.constraint.partition(":")
    channels = {channel.id: channel for channel in problem.channels}
    periods = {period.id: period for period in problem.periods}
    groups = {group.id: group for group in problem.groups}
    if family == "budget":
        problem = replace(problem, total=problem.total + fix.change,
                          reserve=Reserve(amount=reserve))
    elif family == "min" and label in channels:
        channels[label] = replace(channels[label], min=(channels[label].min or 0) - fix.change)
    elif family == "max" and label in channels and (high := channels[label].max) is not None:
        channels[label] = replace(channels[label], max=high + fix.change)
    elif family == "period_cap" and label in periods and (cap := periods[label].cap) is not None:
        periods[label] = replace(periods[label], cap=cap + fix.change)
    elif family == "group_min" and label in groups and (least := groups[label].min_share) \
            is not None:
        groups[label] = replace(groups[label], min_share=max(least - fix.change, Decimal(0)))
    elif family == "group_max" and label in groups and (most := groups[label].max_share) \
            is not None:
        groups[label] = replace(groups[label], max_share=min(most + fix.change, Decimal(1)))
    elif family == "target_return" and problem.target_return is not None:
        problem = replace(problem, target_return=problem.target_return - fix.change)
    elif family == "target_roi" and problem.target_roi is not None:
        problem = replace(problem, target_roi=problem.target_roi - fix.change)
    elif family == "tolerance_percent" and problem.incremental is not None:
        problem = replace(problem, incremental=replace(
            problem.incremental, tolerance=problem.incremental.tolerance + fix.change / 100))
    else:
        return None
    return replace(problem, channels=tuple(channels.values()), periods=tuple(periods.values()),
                   groups=tuple(groups.values()))


def _works(model: ScaledProblem, fixes: list[Conflict], seconds: float) -> bool:
    """Whether the request with `fixes` applied has a plan, found by the solver within
    `seconds` (its rounded amounts hold every group's share to the cent, or the solver
    refuses it: `assembly`); false where a change cannot be applied (`applied`) or no time is
    left (`given`)."""
    changed = _applied_all(model, fixes)
    if changed is None or seconds <= 0:
        return False
    token = _VERIFYING.set(True)
    try:
        _solve(replace(changed, time_limit=seconds))
    except (Infeasible, SolveTimeout, TooSteep):
        return False
    finally:
        _VERIFYING.reset(token)
    return True


def _named(model: ScaledProblem, form: Formulation, cells: Cells, x: Floats,
           deadline: float, own: Elastic | None = None, *, tight: bool = True) -> list[Conflict]:
    """The changes that the elastic plan `x`, made a plan (`_plan`), needs: one per rule it
    breaks, by as much as it breaks it; target_roi as the ratio to lower it to, the most per
    unit spent that plans breaking no other rule by more reach (`_most_per_unit`), on these
    pieces and on `own`'s, the request's (the less). `tight`: target_return and the money
    told on the true curves (`_least_money`), else on the pieces."""
    plan, needs = _plan(form, cells, x)
    target = model.problem.target_return
    if tight and "target_return" in needs and target is not None:
        # What the plan lacks on the true curves: the pieces lie below a concave curve, and
        # a target lowered to the pieces' return was lowered by 35.78 more than needed (trial
        # 18f, m5: 115,361.22 where 115,326.72 is enough).
        earned = float(model.true_returns(cells, form.cell_spend(plan, len(cells))).sum())
        needs["target_return"] = max(model.money(target) - earned, 0.0)
        if needs["budget"] > 1e-7:
            least = _least_money(model, form, cells, plan)
            if least is not None:
                needs["budget"] = min(needs["budget"], max(least, 0.0))
    roi = needs.get("target_roi", 0.0) > 1e-7
    if roi:
        upper = form.col_upper.copy()
        for name, (column, _) in form.slacks.items():
            upper[column] = needs[name] if name != "target_roi" else 0.0
        # The plan reaching most per unit may need less of the other changes.
        plan, needs = _plan(form, cells, _most_per_unit(form, cells, plan, upper, deadline))
    spent = float(form.cell_spend(plan, len(cells)).sum())
    return [conflict for name, need in needs.items()
            if (conflict := _lowered_roi(model, form, cells, plan, own)
                if name == "target_roi" and roi
                else _conflict(model, name, need, spent)) is not None]


def _honest(form: Formulation, cells: Cells, seconds: float, start: Floats | None = None) -> Run:
    """`form` solved (from the column values `start` if given), where a "min if used" channel
    its plan leaves unused spends within HiGHS's tolerances (a dollar of a million on a curve
    steep near zero spend returns thousands: `_plan`) solved again with those channels held
    at 0 and, apart, used: the better plan of the two that spends no such dust, else the
    first."""
    run = run_highs(form, seconds, start=start)
    if run.x is None:
        return run
    x = run.x
    dusty = [c for c, column in form.used.items() if x[column] < 0.5 and
             np.abs(x[(form.cell_of >= 0) & (cells.channel[np.maximum(form.cell_of, 0)] == c)]
                    ).sum() > 1e-12]
    if not dusty:
        return run
    mine = (form.cell_of >= 0) & np.isin(cells.channel[np.maximum(form.cell_of, 0)], dusty)
    switches = [form.used[c] for c in dusty]
    held, used = form.col_upper.copy(), form.col_lower.copy()
    held[mine], held[switches], used[switches] = 0.0, 0.0, 1.0
    end = time.perf_counter() + seconds
    best = None
    for branch in (replace(form, col_upper=held), replace(form, col_lower=used)):
        again = run_highs(branch, max(end - time.perf_counter(), 0.0))
        if again.x is None or again.objective is None or (
                best is not None and best.objective is not None and
                (again.objective <= best.objective if form.maximise
                 else again.objective >= best.objective)):
            continue
        best = again
    return run if best is None else best


def _plan(form: Formulation, cells: Cells, x: Floats) -> tuple[Floats, dict[str, float]]:
    """The elastic plan `x` as a plan: its binaries rounded, a "min if used" channel whose
    `used` is off spending nothing, each cell's curve filled in order up to its spend; and per
    rule, how far that plan breaks it (scaled). HiGHS holds rows only to its tolerances, which
    a curve steep near zero spend turns into return: a "min if used" channel left unused but
    spending a dollar of a million, at alpha 0.1, met a target_roi of 100, and "lower the
    minimum of channel p by 50.00" was named enough where it is no fix (trial 18f, t3)."""
    x = x.copy()
    # A deal bought at 0.9999999 is bought (`columns_for` buys one fully paid).
    x[form.integer] = np.round(x[form.integer])
    spend = np.maximum(form.cell_spend(x, len(cells)), 0.0)
    for c, column in form.used.items():
        if x[column] < 0.5:
            spend[cells.channel == c] = 0.0
    plan = form.columns_for(cells, spend)
    broken = _broken(form, plan)
    return plan, {name: float(broken[form.row_index(name)]) for name in form.slacks}


def _broken(form: Formulation, x: Floats) -> Floats:
    """Per row, how far the column values `x` (slacks at 0) are outside its bounds."""
    row = np.repeat(np.arange(len(form.row_names)), np.diff(form.start))
    activity = np.bincount(row, weights=form.value * x[form.index], minlength=len(form.row_names))
    return np.maximum(np.maximum(form.row_lower - activity, activity - form.row_upper), 0.0)


def _least_money(model: ScaledProblem, form: Formulation, cells: Cells,
                 plan: Floats) -> float | None:
    """The money past the budget row's that `plan` needs, its cells scaled down together to the
    least that still meets target_return on the true curves and every other rule (scaled);
    None where `plan` does not. The pieces lie below a concave curve, so the plan the elastic
    model found meets the target with less (trial 18f, m8: 28,252.40 more money named where
    28,248.20 is enough)."""
    target = model.problem.target_return
    assert target is not None
    spend = form.cell_spend(plan, len(cells))
    kept = np.array([name not in ("budget", "target_return") for name in form.row_names])

    def holds(scale: float) -> bool:
        return bool((_broken(form, form.columns_for(cells, spend * scale))[kept] <= 1e-9).all()
                    and model.true_returns(cells, spend * scale).sum() >= model.money(target))

    if not holds(1.0):
        return None
    low, high = 0.0, 1.0
    for _ in range(LEAST_MONEY_HALVINGS):
        middle = (low + high) / 2
        low, high = (low, middle) if holds(middle) else (middle, high)
    return float(spend.sum()) * high - float(form.row_upper[form.row_index("budget")])


def _most_per_unit(form: Formulation, cells: Cells, plan: Floats, upper: Floats,
                   deadline: float) -> Floats:
    """The plan returning most per unit spent on the pieces, starting from `plan`, with the
    columns' bounds `upper` and target_roi's row dropped (Dinkelbach: at the best plan's ratio
    t, the most return − t · spend any plan reaches is 0; a `plan` spending nothing starts at
    t = 0), each round's MILP started from the last round's plan where it holds every row; the
    best plan reached where `deadline` cuts the rounds short. Lowering target_roi to the ratio
    the elastic plan reaches would be a larger change than needed: that plan spends least
    below the target (a hard min of 40,000 at 0.857 a unit, where spending the other 10,000
    on a channel at 1.2 reaches 0.926; trial 18f, k3)."""
    row_lower = form.row_lower.copy()
    row_lower[form.row_index("target_roi")] = -np.inf
    for _ in range(ROI_ROUNDS):
        if time.perf_counter() >= deadline:
            break
        spent = float(form.spend_of @ plan)
        ratio = float(form.return_of @ plan) / spent if spent > EPS else 0.0
        shaped = replace(form, maximise=True, cost=form.return_of - ratio * form.spend_of,
                         row_lower=row_lower, col_upper=upper)
        # The elastic plan's slacks are not among its columns: it starts nothing.
        run = _honest(shaped, cells, deadline - time.perf_counter(),
                      plan if shaped.feasible(plan) else None)
        if run.x is None:
            break
        better, _ = _plan(form, cells, run.x)
        if float(form.return_of @ better) <= (ratio + 1e-9) * float(form.spend_of @ better):
            break
        plan = better
    return plan


def _lowered_roi(model: ScaledProblem, form: Formulation, cells: Cells, plan: Floats,
                 own: Elastic | None) -> Conflict:
    """target_roi lowered to what `plan` returns per unit spent on its pieces, on `own`'s
    pieces (the request's: the solver cuts its curves so, and a plan the wider model's finer
    pieces found above 1.064528 a unit was at 1.064288 on them; trial 18f, k3) and on the
    true curves, the least, down to the ratios' places: a plan then meets it."""
    target = model.problem.target_roi
    assert target is not None
    spend = form.cell_spend(plan, len(cells))
    spent = float(spend.sum())
    earned = [float(form.return_of @ plan), float(model.true_returns(cells, spend).sum())]
    if own is not None and own[0] is not model and len(own[2]) == len(cells):
        base, shape, base_cells = own
        mine = shape.columns_for(base_cells, spend * model.unit / base.unit)
        earned.append(float(shape.return_of @ mine) * base.unit / model.unit)
    reached = Decimal(repr(max(min(earned), 0.0) / max(spent, EPS))).quantize(
        RATIO_PLACES, rounding=ROUND_FLOOR)
    return Conflict("target_roi", target - reached,
                    ADVICE["target_roi"].format(name="", amount=reached))


def _conflict(model: ScaledProblem, name: str, need: float, spent: float) -> Conflict | None:
    """The change `need` (scaled) to the rule `name`, to the next minor unit past the solver's
    float noise (1e-6 of a unit); a group's share as the share itself, `need` over the plan's
    spend `spent` (its members short of, or over, their share by `need`: a user sets a share,
    not money), to the next millionth. None where it is none."""
    if need <= 1e-7:
        return None
    family, _, label = name.partition(":")
    if family in ("group_min", "group_max"):
        group = next(group for group in model.problem.groups if group.id == label)
        return share_conflict(group, family, need / max(spent, EPS))
    unit = quantum(model.problem.decimals)
    change = math.ceil(need * model.unit / float(unit) - 1e-6) * unit
    return Conflict(name, change, ADVICE[family].format(name=label, amount=change))


def share_conflict(group: Group, family: str, slack: float, why: str = "") -> Conflict:
    """Group `group`'s `min_share` lowered (`family` "group_min") or its `max_share` raised by
    `slack`, up to the next millionth past float noise (0.6 solved as 0.6000000000001), so that
    it is enough applied; `why`, where given, says why."""
    change = math.ceil(slack / float(RATIO_PLACES) - 1e-3) * RATIO_PLACES
    if family == "group_min":
        assert group.min_share is not None
        how, moved = "lower the minimum", max(group.min_share - change, Decimal(0))
    else:
        assert group.max_share is not None
        how, moved = "raise the maximum", min(group.max_share + change, Decimal(1))
    return Conflict(f"{family}:{group.id}", change,
                    f"{how} share of group {group.id} by {change.normalize():f} (to "
                    f"{moved.normalize():f})" + (f": {why}" if why else ""))


def _past_caps(model: ScaledProblem, cells: Cells | None, deadline: float,
               floors: bool) -> Cells | None:
    """The cells of the elastic model: each channel's reaching the money available past its
    cap and its periods' caps. A cell's segments end at its caps, so a slack on a `max:` or
    `period_cap:` row alone could never place money past them: raising a cap, the fix a user
    may need, was never proposed (a floor of return or of a group's share was named instead).
    `cells` where nothing is capped, or where cutting the curves again passes `deadline` (a
    conflict without the caps' raises beats none; None when `cells` is None). `floors`: under
    a return floor, whose slack depends on the curves."""
    if cells is not None and all(high >= model.budget for high in model.upper) and \
            all(period.cap is None for period in model.periods):
        return cells
    lifted = copy.copy(model)
    lifted.upper = [model.budget] * len(model.upper)
    lifted.periods = tuple(replace(period, cap=None) for period in model.periods)
    try:
        return lifted.cells(FIRST_TOLERANCE if floors else PAST_CAPS_COARSE, deadline)
    except SolveTimeout:
        return cells


def named_as_set(model: ScaledProblem, incremental: Incremental,
            found: list[Conflict]) -> list[Conflict]:
    """The conflicts on channels' floors and caps named by the rules the user set: a channel in
    `incremental.previous` has its bounds from its previous amount ± tolerance_percent, so a
    change there is a wider tolerance (one, the largest any channel needs) or, past 100 %, a
    larger previous amount; its own `min`/`max` is named only where it binds too."""
    channels = {channel.id: channel for channel in model.problem.channels}
    unit = quantum(model.problem.decimals)
    kept: list[Conflict] = []
    tolerances: dict[str, Decimal] = {}
    for conflict in found:
        family, _, label = conflict.constraint.partition(":")
        channel = channels.get(label)
        # A "min if used" channel's floor is its own min alone where the incremental rule
        # allows it 0 (it may go unused); else the larger of the two (`formulation`).
        if family not in ("min", "max") or channel is None or label not in incremental.previous \
                or (family == "min" and channel.min_if_used
                    and model.lower[model.index[label]] <= 0):
            kept.append(conflict)
            continue
        own, needed, previous = _floor_fix(channel, incremental, conflict.change) \
            if family == "min" else _cap_fix(channel, incremental, conflict.change, unit)
        if own is not None:
            kept.append(Conflict(conflict.constraint, own,
                                 ADVICE[family].format(name=label, amount=own)))
        if needed is not None:
            tolerances[label] = needed
        if previous is not None:
            kept.append(Conflict(f"previous:{label}", previous,
                                 f"raise channel {label}'s previous amount by {previous}: "
                                 f"tolerance_percent is at most 100, so it may spend at most "
                                 f"twice its previous amount"))
    if tolerances:
        label = max(sorted(tolerances), key=tolerances.__getitem__)
        most = tolerances[label]
        kept.append(Conflict("tolerance_percent", most - incremental.tolerance * 100,
                             f"raise tolerance_percent to at least {most}: channel {label} "
                             f"must move that far from its previous amount "
                             f"{incremental.previous[label].quantize(unit)}"))
    return kept


def _floor_fix(channel: Channel, incremental: Incremental,
               change: Decimal) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """What lowers a channel's floor by `change`: (its own min lowered by, the tolerance in
    percent needed, None)."""
    previous = incremental.previous[channel.id]
    kept = previous * (1 - incremental.tolerance)
    own = channel.min if channel.min is not None else Decimal(0)
    floor = max(own, kept) - change
    lowered = own - floor if own > floor else None
    needed = None
    if kept > floor:
        needed = ((1 - floor / previous) * 100).quantize(PERCENT_PLACES, rounding=ROUND_CEILING)
    return lowered, needed, None


def _cap_fix(channel: Channel, incremental: Incremental, change: Decimal,
             unit: Decimal) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """What raises a channel's cap by `change`: (its own max raised by, the tolerance in percent
    needed, and past 100 % the previous amount raised by, to the currency's `unit`)."""
    previous = incremental.previous[channel.id]
    kept = previous * (1 + incremental.tolerance)
    cap = (kept if channel.max is None else min(channel.max, kept)) + change
    raised = cap - channel.max if channel.max is not None and channel.max < cap else None
    if kept >= cap:
        return raised, None, None
    needed = Decimal(100) if previous == 0 else \
        ((cap / previous - 1) * 100).quantize(PERCENT_PLACES, rounding=ROUND_CEILING)
    if needed <= 100 and previous > 0:
        return raised, needed, None
    # At 100 % the cap is twice the previous amount: the previous amount must grow to half of
    # it, and the tolerance to 100 % (the previous amount alone, at the tolerance set, was
    # not enough: 25,000 at 10 % allows 27,500, not the 50,000 named for).
    return raised, Decimal(100), (cap / 2).quantize(unit, rounding=ROUND_CEILING) - previous


def unreachable_roi(model: ScaledProblem, cells: Cells, deadline: float, *,
                    found_none: bool = False) -> list[Conflict]:
    """The conflict of a `target_roi` above the best return per unit spent that any plan
    spending whole minor units reaches on the true curves (empty when one reaches it). A plan's
    ROI is at most its best channel's. A channel without a floor reaches at most its best
    cell's (`_cell_rois`). A channel with one (its `min`, used or not, or an incremental floor)
    spends at least that floor m, so reaches at most the most its cells' concave envelopes
    (plus each curve's rise above its pieces) return on m, over m: a concave return over its
    spend falls as the spend grows (trial 18e: a `min_if_used` points channel at 40,000 whose
    first 30,000 return 2 a unit was named 2.0 where it reaches 1.75). Where no plan can spend
    anything, no target is met: `_spending_changes` names what lets one spend. With groups'
    shares, the more of the ROI of `share_roi_plan`'s plan, rounded, and of the plan of
    `most_per_unit_roi` (deals and `min_if_used` channels' choices included, within half the
    time left before `deadline`), where it is below the target and the
    best channel's: a brand group at `min_share` 0.5 over a channel of 1 a unit beside one of
    3 named 3.0, and a target of 2.5 ended "no plan that spends found"; both now name 2.0.
    The figure named is reached, not a bound: the MILP's rounds may be cut short, and its
    pieces lie below a concave curve. A floor's figure is a
    bound; the target is named lowered to what the floors' plans reach (`_best_roi`) where
    it is past the bound, or, where the solver `found_none`, past what they reach: a target
    of 1.888 on a Hill curve whose floor of 10 reaches 1.811292, under a bound of 2.68 at a
    total of 1,000,000, was a 422 with no conflict named (fuzz)."""
    target = model.problem.target_roi
    assert target is not None
    best, where = _best_roi(model, cells)
    if not math.isfinite(best):
        return _spending_changes(model)
    bound = best
    best, where = _best_roi(model, cells, reached=True)
    # The shares' plan and the MILP's rounds share half the time left (LEAST_SECONDS at least).
    now = time.perf_counter()
    shared = share_roi_plan(model, cells, now + given(now + (deadline - now) / 4))
    if shared is not None:
        # Under groups' shares the best channel alone may be no plan: what a plan holding them
        # reaches is named instead, a figure reached (not a bound). The shares' LP leaves
        # deals and `min_if_used` channels out, the MILP's rounds do not (a user's 53 x 13
        # request was named 4.014604 where plans buying two deals reach 4.8). They take half
        # the time left (LEAST_SECONDS at least): the rest of the naming follows, checks of
        # the change applied among it. A check that a change works asks only whether it does.
        now = time.perf_counter()
        found = [rounded_roi(model, cells, shared)] + ([] if _VERIFYING.get() or not given(
            deadline) else [
            most_per_unit_roi(model, cells, shared, now + given(now + (deadline - now) / 2))])
        reached_roi = max((roi for roi in found if roi is not None), default=None)
        if reached_roi is not None and reached_roi < float(target) and reached_roi < bound:
            reached = Decimal(repr(reached_roi * (1 + ROI_NOISE))).quantize(
                RATIO_PLACES, rounding=ROUND_FLOOR)
            return [Conflict("target_roi", target - reached,
                             f"lower target_roi to at most {reached}: a plan holding every "
                             f"group's share returns that much per unit spent, and no channel "
                             f"alone more than {Decimal(repr(bound)).quantize(RATIO_PLACES)}")]
    if (best if found_none else bound) >= float(target):
        return []
    # Down to the ratios' places: that target is met, and the change is then at least needed.
    reached = Decimal(repr(best)).quantize(RATIO_PLACES, rounding=ROUND_FLOOR)
    channel = model.problem.channels[cells[where].channel].id
    period = model.periods[cells[where].period].id
    place = f"channel {channel}" + (f" in period {period}" if model.problem.periods and
                                    _floors(model)[cells[where].channel] <= EPS else "")
    if best < bound:
        return [Conflict("target_roi", target - reached,
                         f"lower target_roi to at most {reached}: the best plan found ({place}"
                         f"{' at its floor' if _floors(model)[cells[where].channel] > EPS else ''}"
                         f") returns that much per unit spent, and no plan more than "
                         f"{Decimal(repr(bound)).quantize(RATIO_PLACES, rounding=ROUND_CEILING)}")]
    return [Conflict("target_roi", target - reached,
                     f"lower target_roi to at most {reached}: no plan that spends anything "
                     f"returns more per unit spent (the best is {place})")]


def past_best_roi(model: ScaledProblem, cells: Cells, deadline: float) -> list[Conflict]:
    """`unreachable_roi`'s conflict where target_roi is above the most any plan returns per
    unit spent (`_best_roi`: a bound where no channel has a hard floor), so that it is named
    before any solve: the MILP searched for a plan until the time limit (trial 18g, t7_d: a
    target of 40 where no cell returns more than 9, 29 s). Empty where a plan may reach it, or
    where the request has more than PAST_BEST_CELLS cells (the check would cost more)."""
    target = model.problem.target_roi
    if target is None or len(cells) > PAST_BEST_CELLS or (np.asarray(model.lower) > EPS).any():
        return []
    best, _ = _best_roi(model, cells)
    if not math.isfinite(best) or best >= float(target):
        return []
    return unreachable_roi(model, cells, deadline)


def _best_roi(model: ScaledProblem, cells: Cells, *, reached: bool = False) -> tuple[float, int]:
    """The most return per unit spent any plan reaches (`unreachable_roi`) and the cell that
    reaches it; −∞ where no plan can spend anything. A channel with a floor counts at the
    bound `_floor_roi`, or if `reached` at what its floor's plan returns (`_floor_spend`,
    rounded): the bound named was 1.834140 where a floor of 10 on a concave Hill curve returns
    1.808193 a unit (fuzz)."""
    rois, _ = _cell_rois(model, cells)
    floors = _floors(model)
    held: list[tuple[float, int, int]] = []
    for c in np.flatnonzero(floors > EPS).tolist():
        mine = np.flatnonzero(cells.channel == c)
        rois[mine] = -math.inf
        if len(mine) and floors[c] <= min(model.upper[c], model.budget) + EPS:
            rois[mine[0]] = _floor_roi(cells, mine, float(floors[c]))
            held.append((float(rois[mine[0]]), c, int(mine[0])))
    if reached and held:
        # A floor's plan is rounded and priced only where its bound could beat the best so far
        # (each takes a rounding of the whole plan).
        others = np.delete(rois, [first for _, _, first in held])
        best = float(others.max()) if len(others) else -math.inf
        for bound, c, first in sorted(held, reverse=True):
            if bound <= best:
                rois[first] = -math.inf
                continue
            # A floor that returns nothing reaches 0, a ratio like any other (`or` made it −∞).
            reached_roi = rounded_roi(model, cells, _floor_spend(model, cells, c, floors[c]))
            rois[first] = -math.inf if reached_roi is None else reached_roi
            best = max(best, float(rois[first]))
    if not len(rois):
        return -math.inf, -1
    where = int(np.argmax(rois))
    return float(rois[where]), where


def _spending_changes(model: ScaledProblem) -> list[Conflict]:
    """What lets a plan spend where none can (every channel's `min` and every deal's cost past
    the money it may spend): per such channel, the money raised to its `min` or its deal's
    cost, or its `min` lowered to the most it may spend; each change that meets the target
    alone is named as enough alone, else the one reaching the best ROI with target_roi lowered
    to that ROI (both needed). Trial 18f (`rr6`): two `min_if_used` channels whose mins and a
    deal whose cost passed the money answered a 500 (a best ROI of no cell, −∞); only channel
    c1's min lowered to the money (its Hill curve returns 119 a unit there) meets 2.990476."""
    problem = model.problem
    target = problem.target_roi
    assert target is not None
    unit = quantum(problem.decimals)
    floors = _floors(model)
    working: list[Conflict] = []
    partial: list[tuple[float, list[Conflict]]] = []
    for c, channel in enumerate(problem.channels):
        reach = min(model.upper[c], model.budget)
        deal = isinstance(channel.response, Deal)
        if isinstance(channel.response, Deal):
            need = channel.response.cost
        elif channel.min is not None and floors[c] > reach + EPS and \
                model.money(channel.min) >= floors[c] - EPS:
            need = channel.min
        else:
            continue
        changes: list[tuple[Conflict, Problem]] = []
        if need > model.available and (channel.max is None or channel.max >= need):
            more = need - model.available
            changes.append((Conflict("budget", more, ADVICE["budget"].format(amount=more)),
                            replace(problem, total=problem.total + more,
                                    reserve=Reserve(amount=model.reserve))))
        can = Decimal(repr(reach * model.unit)).quantize(unit, rounding=ROUND_FLOOR)
        if not deal and can > 0:
            lower = need - can
            changes.append((Conflict(f"min:{channel.id}", lower,
                                     ADVICE["min"].format(name=channel.id, amount=lower)),
                            replace(problem, channels=tuple(
                                replace(other, min=can) if other is channel else other
                                for other in problem.channels))))
        for conflict, changed in changes:
            scaled = ScaledProblem(changed)
            best, _ = _best_roi(scaled, scaled.cells(FIRST_TOLERANCE), reached=True)
            if best >= float(target):
                working.append(replace(conflict, alone=True))
            elif math.isfinite(best):
                reached = Decimal(repr(best)).quantize(RATIO_PLACES, rounding=ROUND_FLOOR)
                partial.append((best, [conflict, Conflict(
                    "target_roi", target - reached,
                    f"lower target_roi to at most {reached}: with that change the best "
                    f"plan found returns that much per unit spent")]))
    if working or not partial:
        return working
    return max(partial, key=lambda option: option[0])[1]


def _cell_rois(model: ScaledProblem, cells: Cells) -> tuple[Floats, Floats]:
    """Per cell, the most its true curve returns per unit spent on whole minor units up to its
    money (-inf where it can spend none), and the spend that returns it (scaled).
    A curve's return over spend is highest at a whole unit next to where the chord from 0 is
    steepest: a points curve's breakpoints (on each piece the ratio is monotone), a Hill
    curve's first unit where alpha ≤ 1 (the ratio falls) else next to k · (alpha − 1)^(1/alpha)
    (where it peaks), a linear curve's any; and the cell's end.
    On the cells' arrays, a points channel's cells at a time and the others' all at once: cell
    by cell it took 2-2.5 s of CPU at 1,000 × 52, past the time limit."""
    unit = float(quantum(model.problem.decimals)) / model.unit
    responses = [channel.response for channel in model.problem.channels]
    channel, share = cells.channel, cells.share
    reach = np.minimum(np.minimum(cells.upper, model.budget), np.asarray(model.upper)[channel])
    spends = ~cells.is_deal & (reach >= unit * (1 - 1e-9))
    points = np.array([isinstance(r, Points) for r in responses], dtype=bool)[channel]
    # Per cell its candidates' inner points (where the chord is steepest), each with the next
    # unit, then its first unit and its end; a curve with none has its first unit in their place.
    peak = np.array([float(r.k) / model.unit * (float(r.alpha) - 1) ** (1 / float(r.alpha))
                     if isinstance(r, Hill) and r.alpha > 1 else math.nan for r in responses])
    rows = []
    mine = np.flatnonzero(spends & ~points)
    inner = peak[channel[mine]] * share[mine]
    first = np.full(len(mine), unit)
    rows.append((mine, np.column_stack([
        np.where(np.isnan(inner), first, inner), np.where(np.isnan(inner), first, inner + unit),
        first, reach[mine]])))
    for c in np.unique(channel[spends & points]).tolist():
        response = responses[c]
        assert isinstance(response, Points)
        mine = np.flatnonzero(spends & (channel == c))
        inner = np.array([float(x) for x, _ in response.points[1:]]) / model.unit * \
            share[mine][:, None]
        ends = np.column_stack([np.full(len(mine), unit), reach[mine]])
        rows.append((mine, np.concatenate([inner, inner + unit, ends], axis=1)))
    owners, spent = [], []
    for mine, candidates in rows:
        units = np.floor(candidates / unit + 1e-9)
        last = np.floor(reach[mine] / unit + 1e-9)
        # Ascending in each cell, as the largest of equal returns per unit is the one kept.
        units = np.sort(np.clip(units, 1, last[:, None]), axis=1) * unit
        owners.append(np.repeat(mine, units.shape[1]))
        spent.append(units.ravel())
    owner, spend = np.concatenate(owners), np.concatenate(spent)
    order = np.argsort(owner, kind="stable")
    owner, spend = owner[order], spend[order]
    earned = model.true_returns(cells.select(owner), spend)
    rois = np.full(len(cells), -math.inf)
    # Every candidate spends a whole unit or more, and a cent of a large budget is far below
    # EPS: dividing by EPS there named 0.3 for a curve that returns 2 a unit (trial 18f).
    ratio = earned / spend
    np.maximum.at(rois, owner, ratio)
    at = np.zeros(len(cells))
    top = ratio >= rois[owner]
    at[owner[top]] = spend[top]
    # A deal cell's (cost, value): the channel's, its value times the period's weight.
    deal = np.flatnonzero(cells.is_deal)
    offers = np.array([(model.money(r.cost), model.money(r.value)) if isinstance(r, Deal)
                       else (math.nan, math.nan) for r in responses]).reshape(-1, 2)
    cost, value = offers[channel[deal]].T
    value = value * cells.weight[deal]
    fits = cost <= np.minimum(cells.upper[deal], model.budget) + EPS
    rois[deal[fits]], at[deal[fits]] = value[fits] / cost[fits], cost[fits]
    return rois, at


def best_roi_plan(model: ScaledProblem, cells: Cells) -> Floats | None:
    """The plan spending only in the cell whose whole minor units return most per unit spent on
    the true curves, where the channels' floors allow one cell alone (none has one, nor a
    `min_if_used` minimum above 0 on that cell's channel); None where they do not. It meets any
    target_roi up to that return per unit (`unreachable_roi` names it), which the pieces, below
    a concave curve's first unit, can miss. The cell spends the most whole units, from there to
    its money, that still meet the target (found by halving; a concave curve's return per unit
    falls past its best): one Hill curve of beta 200,000 and k 100,000 at a target of 1.9999
    spends 5.00 for 10.00, not one cent for 0.02. A deal spends its cost."""
    if not len(cells) or (np.asarray(model.lower) > EPS).any():
        return None
    rois, at = _cell_rois(model, cells)
    best = int(np.argmax(rois))
    if not math.isfinite(rois[best]) or _floors(model)[cells[best].channel] > EPS:
        return None
    target = float(model.problem.target_roi or 0)
    unit = float(quantum(model.problem.decimals)) / model.unit
    cell = cells[best]
    one = Cells([cell])

    def meets(units: int) -> bool:
        spent = units * unit
        return float(model.true_returns(one, np.array([spent]))[0]) >= target * spent

    # `low` meets the target, `high` does not (or is the cell's last unit).
    low = round(at[best] / unit)
    high = math.floor(min(cell.upper, model.budget, model.upper[cell.channel]) / unit + 1e-9)
    if cell.deal is not None:
        high = low
    elif meets(high):
        low = high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if meets(middle) else (low, middle)
    spend = np.zeros(len(cells))
    spend[best] = low * unit
    return spend


def _floors(model: ScaledProblem) -> Floats:
    """Per channel, the least it spends if used (scaled): its floor, its `min` if that holds only
    if used."""
    floors = np.asarray(model.lower, dtype=float).copy()
    for c, channel in enumerate(model.problem.channels):
        if channel.min_if_used and channel.min is not None:
            floors[c] = max(floors[c], model.money(channel.min))
    return floors


def _floor_roi(cells: Cells, mine: npt.NDArray[np.intp], floor: float) -> float:
    """The most the cells `mine` of one channel return on `floor` spent among them, over
    `floor`: their concave envelopes' pieces filled by falling return per unit (each weighted,
    within its cell's cap), plus each curve's rise above its pieces; a deal at its value if its
    cost fits in the floor."""
    _, taken, gain, rises = _filled(cells, mine, floor)
    return (float(taken @ gain) + rises) / floor


def _filled(cells: Cells, mine: npt.NDArray[np.intp],
            floor: float) -> tuple[npt.NDArray[np.intp], Floats, Floats, float]:
    """`floor` spread over the cells `mine` as `_floor_roi` spreads it: per piece, in order of
    falling return per unit, its cell, the spend taken and its return per unit; and the
    curves' rises above their pieces."""
    # Begun empty: a channel can have no cells (every period capped at 0), and its floor then
    # no piece to fill (a target_roi request so, with a floor, answered a 500).
    owners: list[npt.NDArray[np.intp]] = [np.zeros(0, dtype=np.intp)]
    lengths: list[Floats] = [np.zeros(0)]
    gains: list[Floats] = [np.zeros(0)]
    rises = 0.0
    for i in mine.tolist():
        cell = cells[i]
        if cell.deal is not None:
            owners.append(np.array([i]))
            lengths.append(np.array([cell.deal[0]]))
            gains.append(np.array([cell.deal[1] / cell.deal[0]]))
            continue
        assert cell.segments is not None
        hull = envelope(cell.segments)
        owners.append(np.full(len(hull.lengths), i))
        lengths.append(hull.lengths)
        gains.append(cell.weight * hull.slopes)
        rises += cell.weight * cell.segments.error
    length, gain = np.concatenate(lengths), np.concatenate(gains)
    order = np.argsort(-gain, kind="stable")
    taken = np.minimum(length[order], np.maximum(floor - np.r_[0.0, np.cumsum(length[order])[:-1]],
                                                 0.0))
    return np.concatenate(owners)[order], taken, gain[order], rises


def _reached_roi(model: ScaledProblem, cells: Cells, by: float, *,
                 held: bool = False) -> Decimal | None:
    """The most per unit spent, rounded to whole minor units, on the true curves and down to
    the ratios' places, that the plans found apart from the pieces return (`best_roi_plan`,
    `share_roi_plan` made by the instant `by`, `floor_plan`, `used_floor_plan`); None where
    none spends. Each may break a rule but target_roi: a figure to try applied, not to name
    unchecked; unless `held`, where only the plans whose rounded amounts keep every rule but
    target_roi count, so that the figure is met by one."""
    rules = rules_but_roi(model, cells) if held else None
    found = []
    for plan in (best_roi_plan(model, cells), share_roi_plan(model, cells, by),
                 floor_plan(model, cells), used_floor_plan(model, cells)):
        if plan is None:
            continue
        amounts = rounded_plan(model, cells, plan)
        spent = float(amounts.sum())
        if spent > 0 and (rules is None or rules(amounts)):
            found.append(float(model.true_returns(cells, amounts).sum()) / spent)
    best = max(found, default=None)
    return None if best is None else Decimal(repr(best)).quantize(RATIO_PLACES,
                                                                  rounding=ROUND_FLOOR)


# Whether a plan (per cell, scaled) keeps a set of rules.
Allows = Callable[[Floats], bool]


def rules_but_roi(model: ScaledProblem, cells: Cells) -> Allows:
    """Whether a plan (per cell, scaled) keeps every rule of the request but target_roi: read
    off the plan where the rules are bounds alone (`roi_frontier.within_bounds`), else on the
    request's model on `cells` with every row but target_roi's. That model reads no clock: at
    1,000 x 52 it took 7.6 s profiled, past a 5 s limit, to check plans of a few cents."""
    if roi_frontier.bounds_only(model, cells):
        return partial(roi_frontier.within_bounds, model, cells)
    form = formulate(model, cells)
    held = form.row_lower.copy()
    held[form.row_index("target_roi")] = -np.inf
    rules = replace(form, row_lower=held)
    return lambda spend: rules.feasible(rules.columns_for(cells, spend))


def floor_plan(model: ScaledProblem, cells: Cells) -> Floats | None:
    """The plan spending only every channel's floor (its `min`, or an incremental floor), each
    spread over its periods as `_floor_roi` spreads it, per cell (scaled); None where no channel
    has a floor, or one is a deal. The pieces lie below a concave curve: a hard min of 10,000 on
    a Hill curve of beta 60,000 and k 30,000 returns 1.5 a unit there, and a target of 1.5 was
    named lowered to 1.498666, the pieces' figure."""
    lower = np.asarray(model.lower, dtype=float)
    if not (lower > EPS).any() or any(isinstance(model.problem.channels[c].response, Deal)
                                      for c in np.flatnonzero(lower > EPS).tolist()):
        return None
    spend = np.zeros(len(cells))
    for c in np.flatnonzero(lower > EPS).tolist():
        spend += _floor_spend(model, cells, c, float(lower[c]))
    return spend


def used_floor_plan(model: ScaledProblem, cells: Cells) -> Floats | None:
    """`floor_plan` (or no spend) with the channel whose floor returns most per unit spent
    (`_best_roi`, reached) at that floor, where it is a `min_if_used` channel's `min`, which
    `floor_plan` leaves out; None where the best is no such channel. A fuzzed request named
    9.090909, c1 at its `min` of 10, and at that target had no plan."""
    best, where = _best_roi(model, cells, reached=True)
    if not math.isfinite(best):
        return None
    channel = cells[where].channel
    floor = float(_floors(model)[channel])
    if floor <= model.lower[channel] + EPS:
        return None
    spend = floor_plan(model, cells)
    spend = np.zeros(len(cells)) if spend is None else spend
    spend[cells.channel == channel] = 0.0
    return spend + _floor_spend(model, cells, channel, floor)


def _floor_spend(model: ScaledProblem, cells: Cells, channel: int, floor: float) -> Floats:
    """`floor` (scaled) on the cells of `channel`, spread as `_floor_roi` spreads it, then on a
    concave Hill curve to where the cells' true slopes meet (`_slopes_met`); per cell."""
    mine = np.flatnonzero(cells.channel == channel)
    spend = np.zeros(len(cells))
    owner, taken, _, _ = _filled(cells, mine, floor)
    np.add.at(spend, owner, taken)
    response = model.problem.channels[channel].response
    if isinstance(response, Hill) and response.alpha <= 1 and len(mine) > 1:
        _slopes_met(model, Cells(cells[i] for i in mine.tolist()), mine, spend)
    return spend


def _slopes_met(model: ScaledProblem, mine: Cells, where: npt.NDArray[np.intp],
                spend: Floats) -> None:
    """Move `spend` at `where`, the cells `mine` of one channel whose curve is a concave Hill
    curve, to where their true slopes meet (the most their sum returns), in place, the sum
    kept: Newton steps, each cell inside its bounds moving by d_i = (λ − t_i) / s_i (slope t_i,
    curvature s_i < 0) with Σ d_i = 0, a step shortened where it would take a cell past its
    bounds. `_filled` splits on the envelopes' pieces: t2b_hardmin_w's hard min of 50,000 on
    a Hill curve over periods of weight 1 and 1.7 put 20,588.84 in the first, 5.508433 a unit,
    where 19,868.19 returns 5.509195 (trial 18g)."""
    upper = np.array([cell.upper for cell in mine])
    for _ in range(SPLIT_STEPS):
        x = spend[where]
        free = (x > EPS) & (x < upper - EPS)
        if np.count_nonzero(free) < 2:
            return
        h = 1e-6 * x
        slope = model.true_slopes(mine, x)
        # A cell at 0 has h = 0, so 0 / 0: it is not `free`, and only free cells are read.
        with np.errstate(divide="ignore", invalid="ignore"):
            bend = (model.true_slopes(mine, x + h) - model.true_slopes(mine, x - h)) / (2 * h)
        if not (np.isfinite(slope[free]).all() and (bend[free] < 0).all()):
            return
        price = float(np.sum(slope[free] / bend[free]) / np.sum(1 / bend[free]))
        move = np.where(free, (price - slope) / np.where(free, bend, -1.0), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):   # a cell that does not move
            room = np.where(move < 0, x / -move, np.where(move > 0, (upper - x) / move, np.inf))
        spend[where] = x + min(1.0, float(room.min())) * move
        if float(np.abs(move).max()) <= 1e-12:
            return


def unmet_shares(model: ScaledProblem) -> list[Conflict]:
    """The groups' shares to change where no plan that spends anything holds them all (empty
    when one can): two groups with no channel in common and min shares of 0.6 each leave only
    the plan that spends nothing, which holds any share and answered 0 with its error unknown.

    A plan spending S > 0 divided by S is a share x per channel: x ≥ 0, Σ x = 1, x = 0 where the
    channel can spend nothing (a cap of 0, a deal above its cap), each group's members' sum
    within its shares; deals taken as divisible, so only a request that no plan can meet is
    refused. An elastic LP over those shares names the smallest changes, in shares.
    """
    problem = model.problem
    if not problem.groups or model.budget <= EPS or \
            all(period.cap is not None and period.cap <= 0 for period in model.periods):
        return []
    channels = problem.channels
    spends = np.array([high > EPS and (not isinstance(c.response, Deal)
                                       or model.money(c.response.cost) <= high + EPS)
                       for c, high in zip(channels, model.upper)], dtype=bool)
    rules = [(group, label, share) for group in problem.groups
             for label, share in (("group_min", group.min_share), ("group_max", group.max_share))
             if share is not None and (share > 0 if label == "group_min" else share < 1)]
    if not rules:
        return []
    count = len(channels)
    lp = highspy.HighsLp()
    lp.num_col_ = count + len(rules)
    lp.col_cost_ = np.r_[np.zeros(count), np.ones(len(rules))]
    lp.col_lower_ = np.zeros(count + len(rules))
    lp.col_upper_ = np.r_[np.where(spends, 1.0, 0.0), np.full(len(rules), np.inf)]
    rows: list[Row] = [(list(range(count)), [1.0] * count, 1.0, 1.0)]
    for r, (group, label, share) in enumerate(rules):
        members = model.members(group)
        minimum = label == "group_min"
        rows.append((members + [count + r], [1.0] * len(members) + [1.0 if minimum else -1.0],
                     float(share) if minimum else -np.inf, np.inf if minimum else float(share)))
    solved = solve_rows(lp, rows)
    if solved is None:
        # Infeasible even with the shares relaxed: no channel can spend, and the request's
        # other rules say why (the MILP's conflicts).
        return []
    slacks = solved[count:]
    return [share_conflict(group, label, slack, "no plan that spends anything holds every "
                            "group's share")
            for (group, label, _), slack in zip(rules, slacks.tolist()) if slack > 1e-9]


def share_roi_plan(model: ScaledProblem, cells: Cells, by: float) -> Floats | None:
    """A plan holding every group's share (and every floor and cap) that returns the most per
    unit spent, rounded to whole minor units, on the true curves, per cell (scaled); None where
    the request has no share or no such plan is found. The plans tried: the best cell alone
    whose channel alone holds the shares (`_lone_plan`: a deal, an S-curve at its peak), and
    the mix of the shares' LP (`_mixed_plans`) at many scales. A brand group at `min_share`
    0.5 over a channel of 1 a unit beside one of 3 outside it: 2, not 3.
    Made by the instant `by` (`time.perf_counter()`): the LPs within it, and the plans rounded
    and priced while it lasts (hundreds: 1-3 s at 53 x 13 with a brand group), the lone plan
    first; the best of those tried."""
    if not any(g.min_share is not None or g.max_share is not None for g in model.problem.groups):
        return None
    lone = _lone_plan(model, cells)
    plans = _mixed_plans(model, cells, set(), by)
    # S-curves' envelopes promise their tangent's return per unit from the first cent, which
    # their first cents are far below: the mix is also tried without them (trial 18g, t7_a: 2
    # cents of brand on an S-curve beside 1 on h returned 542.79 a unit, on the linear brand
    # channel 543.32).
    s_curves = {c for c, channel in enumerate(model.problem.channels)
                if isinstance(channel.response, Hill) and channel.response.alpha > 1}
    if s_curves:
        plans += _mixed_plans(model, cells, s_curves, by)
    if lone is not None:
        plans.append(lone)
    # The lone plan, one cell, is tried first; ties still go to the later plan.
    order = list(range(len(plans)))
    if lone is not None:
        order = order[-1:] + order[:-1]
    kept: list[tuple[float, int]] = []
    for n, i in enumerate(order):
        if n and time.perf_counter() >= by:
            break
        roi = rounded_roi(model, cells, plans[i])
        if roi is not None:
            kept.append((roi, i))
    return plans[max(kept)[1]] if kept else None


def _lone_plan(model: ScaledProblem, cells: Cells) -> Floats | None:
    """The cell returning most per unit spent (`_cell_rois`, a deal bought whole) among those
    whose channel alone holds every group's share and has no floor, at that spend; None where
    a channel has a floor or no cell qualifies. Trial 18g: a deal returning 9 a unit in a brand
    group at `min_share` 0.5 (t7_d), an S-curve alone in one (t7b), which the LP leaves out or
    sees on its envelope."""
    if (np.asarray(model.lower) > EPS).any():
        return None
    rois, at = _cell_rois(model, cells)
    floors = _floors(model)
    for c in range(len(model.problem.channels)):
        if floors[c] > EPS or not _alone_holds(model, c):
            rois[cells.channel == c] = -math.inf
    if not len(rois) or not math.isfinite(best := float(np.max(rois))):
        return None
    spend = np.zeros(len(cells))
    where = int(np.argmax(rois))
    spend[where] = at[where]
    return spend if best > 0 else None


def _alone_holds(model: ScaledProblem, channel: int) -> bool:
    """Whether a plan spending on `channel` alone holds every group's share."""
    for group in model.problem.groups:
        share = 1 if channel in model.members(group) else 0
        if (group.min_share is not None and share < group.min_share) or \
                (group.max_share is not None and share > group.max_share):
            return False
    return True


def _mixed_plans(model: ScaledProblem, cells: Cells, without: set[int],
                 by: float) -> list[Floats]:
    """The plan holding every group's share (and every floor and cap) that returns the most per
    unit spent on the curves' concave envelopes, per cell (scaled), at several scales; empty
    where the LP finds none. The return per unit of a plan spending S is a ratio; with
    y = x / S and t = 1 / S (Charnes–Cooper) it is linear: most Σ weight · slope · z over the
    envelopes' pieces z ≤ t · length, Σ z = 1, each group's members' Σ z within its shares,
    caps and floors times t, and 1 / budget ≤ t ≤ 1 / minor unit. Deals, `min_if_used`
    channels with a `min` (unused, which they may be, so the plan is one the request allows)
    and the channels `without` are left out. Empty where the instant `by` passes before the LP
    is solved."""
    problem = model.problem
    if time.perf_counter() >= by:
        return []
    leave = without | {c for c, channel in enumerate(problem.channels) if channel.min_if_used
                       and (channel.min or 0) > 0 and model.lower[c] <= 0}
    owner, lengths, gains = [], [], []
    for i, cell in enumerate(cells):
        if cell.deal is not None or cell.channel in leave:
            continue
        assert cell.segments is not None
        hull = envelope(cell.segments)
        owner.append(np.full(len(hull.lengths), i))
        lengths.append(hull.lengths)
        gains.append(cell.weight * hull.slopes)
    if not owner:
        return []
    of = np.concatenate(owner)
    count = len(of)
    t = count
    unit = float(quantum(problem.decimals)) / model.unit
    lp = highspy.HighsLp()
    lp.num_col_ = count + 1
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.r_[np.concatenate(gains), 0.0]
    lp.col_lower_ = np.r_[np.zeros(count), 1.0 / model.budget]
    lp.col_upper_ = np.r_[np.full(count, np.inf), 1.0 / unit]
    rows: list[Row] = [(list(range(count)), [1.0] * count, 1.0, 1.0)]
    rows += [([j, t], [1.0, -float(length)], -np.inf, 0.0)
             for j, length in enumerate(np.concatenate(lengths).tolist())]
    channel_of, period_of = cells.channel[of], cells.period[of]

    def over(mine: npt.NDArray[np.bool_], per_t: float, lower: bool) -> Row:
        """Σ z over `mine` against `per_t` · t: at least (`lower`) or at most."""
        cols = np.flatnonzero(mine).tolist()
        return (cols + [t], [1.0] * len(cols) + [-per_t],
                0.0 if lower else -np.inf, np.inf if lower else 0.0)
    for c in range(len(problem.channels)):
        if model.upper[c] < model.budget:
            rows.append(over(channel_of == c, model.upper[c], False))
        if model.lower[c] > 0:
            rows.append(over(channel_of == c, model.lower[c], True))
    for p, period in enumerate(model.periods):
        if period.cap is not None:
            rows.append(over(period_of == p, model.money(period.cap), False))
    for group in problem.groups:
        members = np.flatnonzero(np.isin(channel_of, model.members(group))).tolist()
        rows.append((members, [1.0] * len(members),
                     -np.inf if group.min_share is None else float(group.min_share),
                     np.inf if group.max_share is None else float(group.max_share)))
    solved = solve_rows(lp, rows, by - time.perf_counter())
    if solved is None or solved[t] <= 0:
        return []
    spend = np.zeros(len(cells))
    np.add.at(spend, of, solved[:count] / solved[t])
    # The LP's spend may be a cent or two, which whole units cannot split by the shares (a
    # cent on each side of a group at 0.5 took 1.0 a unit where 1,638.9 was there): the plan is
    # also tried scaled up, as far as the money and caps let it, and the best rounded kept.
    room = [model.budget / float(spend.sum())]
    for c in range(len(problem.channels)):
        mine = float(spend[cells.channel == c].sum())
        if mine > 0:
            room.append(model.upper[c] / mine)
    for p, period in enumerate(model.periods):
        mine = float(spend[cells.period == p].sum())
        if period.cap is not None and mine > 0:
            room.append(model.money(period.cap) / mine)
    # And at each whole number of units up to TINY_UNITS, down to the scale its floors allow:
    # a concave curve returns most per unit on its first units, where whole units may still
    # split by the shares (trial 18g, t7_c: 0.07 and 0.03 hold a min_share of 0.7 and a
    # max_share of 0.3 and return 7.009573 a unit, where the scales above reached 6.071590).
    top = max(min(room), 1.0)
    spent = float(spend.sum())
    least = max([model.lower[c] / max(float(spend[cells.channel == c].sum()), EPS)
                 for c in range(len(problem.channels)) if model.lower[c] > 0] or [0.0])
    unit_factors = np.arange(1, TINY_UNITS + 1) * unit / spent
    factors = np.r_[np.geomspace(1.0, top, SCALINGS),
                    unit_factors[(unit_factors >= least) & (unit_factors <= top)]]
    return [spend * factor for factor in factors]


def rounded_roi(model: ScaledProblem, cells: Cells, spend: Floats) -> float | None:
    """The return per unit spent of the plan `spend` (scaled) rounded to whole minor units as
    answered, on the true curves; None where it rounds to nothing."""
    amounts = rounded_plan(model, cells, spend)
    spent = float(amounts.sum())
    return float(model.true_returns(cells, amounts).sum()) / spent if spent > 0 else None


def rounded_plan(model: ScaledProblem, cells: Cells, spend: Floats) -> Floats:
    """The plan `spend` (scaled) rounded to whole minor units as answered, per cell (scaled)."""
    units: Floats = np.asarray(round_allocation(model, cells, spend).units, dtype=float)
    return units / float(model.unit * 10 ** model.problem.decimals)


def most_per_unit_roi(model: ScaledProblem, cells: Cells, start: Floats | None,
                      deadline: float) -> float | None:
    """The most return per unit spent that a plan keeping every rule but target_roi reaches,
    deals and `min_if_used` channels' choices included, as far as `deadline` lets the search
    go: Dinkelbach's rounds on the MILP (`_most_per_unit`, from the plan `start`, per cell,
    scaled), its plan rounded to whole minor units as answered and told on its pieces and on
    the true curves, the less, so that the MILP of the request with target_roi lowered to it
    holds that plan. None where the plan rounds to nothing or breaks a rule rounded.
    A brand group {a} (1 a unit) at `min_share` 0.5 beside b (2 a unit) and a deal of 600
    for 100: the deal and 100 on a return 3.5 a unit, where the shares' LP, without the deal,
    reaches 1.5."""
    form = formulate(model, cells, spends=True)
    rules = replace(form, row_lower=form.row_lower.copy())
    rules.row_lower[rules.row_index("target_roi")] = -np.inf
    plan = np.zeros(len(form.cost)) if start is None else form.columns_for(cells, start)
    found = _most_per_unit(form, cells, plan, form.col_upper, deadline)
    amounts = rounded_plan(model, cells, form.cell_spend(found, len(cells)))
    held = form.columns_for(cells, amounts)
    spent = float(amounts.sum())
    if spent <= 0 or not rules.feasible(held):
        return None
    return min(float(form.return_of @ held), float(model.true_returns(cells, amounts).sum())) \
        / spent
