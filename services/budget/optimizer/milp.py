"""Solve the scaled problem as a MILP (any curve, deal or constraint) and read its shadow price.

Tangent gating: binaries only where the plan needs them. The concave-envelope LP (every curve by
its upper hull, deals and "min if used" continuous) is an upper bound, and its plan, repaired
(deals not fully paid dropped, segments filled in order), starts the MILP. The MILP then models
deals and "min if used" exactly and each curve by its envelope, except the cells found inside a
non-concave stretch (strictly between two hull breakpoints where the curve lies below the hull):
those get the exact, gated model and the MILP is solved again from the last plan, until no cell
is left there. On the envelope's breakpoints and concave stretches the envelope is the curve, and
every other cell's envelope is above its curve, so the last model is a relaxation whose optimum
the plan reaches: the optimum of the fully gated model, with far fewer binaries. The objectives
with a return floor (`min_spend`, `target_roi`) gate every cell from the start: an envelope
could meet the floor with return the curves do not give.

The envelope LP is solved on curves cut coarsely (a quarter of the segments; its time grows with
them): its plan is repaired as above, then polished (its choices kept, its amounts re-solved on
the real curves near it), and its row prices y give the bound L(y) on the real cells' envelope
(`windows`), which also narrows every curve of the MILP to where a plan as good as the best one
can spend. A problem without binaries that the greedy cannot take (concave curves under
period caps or groups) takes the same route: its whole LP, many thin columns on few rows, took
HiGHS 33 s at 100 x 52 (no plan within 15 s), the coarse LP, polish and narrowed curves 4 s.
Where the problem has deals and the start is not proven, the deals' periods are searched for
first (`deal_search`, on the narrowed envelope LP) and the cells that plan leaves inside a
non-concave stretch decided out of it on the same LP: HiGHS's branching finds such plans late
(other shapes at 50 x 13: its first better plan after 9-10 s of CPU), the search and its
settling in 0.1-0.4 s of CPU. That plan is proven by the deals' own bound (`deal_bound`: a
search over the deals' choices, each bounded with the periods' caps kept), where HiGHS's MILP
took seconds more; failing that, it starts the MILP, whose bound (or the envelope's) is the
answer's: the search proves nothing. On a model too big for its LPs (SEARCH_COLUMNS) the
search and settling run on the coarse curves narrowed alike, and their plan is polished on the
real ones.
Where the problem is concave once its deals are bought in parts (no floor "if used", no return
floor), that envelope LP is solved by the priced greedy instead (`first_plan`, on the real
cells): HiGHS's coarse LP took 6.7 s of CPU at 200 x 52 (a 5 or 10 s limit answered no plan),
the priced greedy about 1 s, and its plan is the real envelopes' optimum with its deals fixed
(not polished), its row prices the LP's own.
A plan is proven once within `_gap` of the bound: what the curves' own error leaves of the
answer's 0.1 % (the answer's error bound holds the gap: see `assembly.approximation_error`).
"""
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import numpy as np

from services.budget.optimizer import deal_bound, deal_search, first_plan, greedy, period_prices
from services.budget.optimizer.answer import Infeasible, SolveTimeout
from services.budget.optimizer.backends import (
    MIP_GAP,
    Bounded,
    Run,
    Stop,
    bounding,
    relax_then_fix,
    run_cbc,
    run_highs,
)
from services.budget.optimizer.curves import Floats, envelope
from services.budget.optimizer.formulation import SPEND_TIE_BREAK, Formulation, formulate
from services.budget.optimizer.infeasibility import conflicts
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem, Solution
from services.budget.optimizer.windows import intervals, lagrangian, narrowed, prices

Gating = Literal["tangent", "full"]
# Called with (incumbent, bound) of the objective, scaled, as they improve.
Report = Callable[[float, float | None], None]
# The budget's shadow price needs one more LP; below this many seconds left it is skipped.
DUAL_SECONDS, DUAL_SHARE = 0.2, 0.25
# The envelope LP that starts the MILP cuts its curves this coarsely (a sixteenth of the
# segments' precision, a quarter of their count): its plan and row prices are what matter,
# and its bound is re-made on the real cells from those prices.
COARSE_TOLERANCE = 6.4e-3
# The prices that narrow the curves (`windows`): the model they price, themselves, L(y).
Priced = tuple[Formulation, Floats, float]
# The real cells' envelope model and its prices take about this many times the coarse
# model's build (200 x 52: 0.38 s and 0.18 s to formulate, with the prices and the held plan).
ENVELOPE_BUILDS = 3
# Making a tangent-gated model of S-curves takes about this many seconds of CPU a cell
# (`formulate`: 86-91 µs at 200 × 20 and 2,000 × 11): at 2,000 × 55 it took 10 s, so a 2 s
# limit ran seconds past its end, where the greedy's plan was in hand.
CELL_BUILD = 8e-5
# The envelopes' greedy takes about this many seconds of CPU a cell (0.39 s at 2,000 × 55);
# its plan's gap and the answer's assembly after it about as much again (the solver's
# ASSEMBLY_SHARE keeps 0.3 s of a 2 s limit for them, the README's margin the rest).
GREEDY_CELL = 3.5e-6
# The priced greedy (`first_plan`) takes about this many seconds of CPU a cell to its first
# LP's plan, its first price round hearing no clock (1,000 x 52 S-curves' envelopes with a
# group: 0.65 s); with a plan in hand (`first_plan.scaled_plan`) and less time left, it is not
# begun (1,500 x 52 with capped weeks, loaded: begun 0.1 s before the deadline, it ended 1.2 s
# past it).
PRICED_CELL = 2e-5
# The pace of the wall clock to the CPU's is read once the MILP has taken this much CPU.
PACE_CPU = 0.05
# A plan meets a row to this (absolute, scaled), as `Formulation.feasible` holds it.
HELD = 1e-7
# After a stop, the real cells' envelope is made for the plan's gap only if it should take at
# most this many seconds (a cancel is answered within 1 s).
AFTER_STOP = 0.5
# The coarse plan is re-solved on the real curves within this share of each cell's spend.
NEAR = 0.5
# The deals' search and the settling of its plan take at most this share of the time left,
# the search this share of that.
STAGE_SHARE, SEARCH_SHARE = 0.5, 0.75
# The deals are searched for on the coarse curves' narrowed model, and its plan polished on
# the real curves, when the real one has more columns than this: at 100 x 26 other shapes its
# 146,000 columns took seconds an LP (the search never got past its first in 10 s), the
# coarse curves' 29,000 take 20 ms warm, and the plan reached 1.1 % more. At 50 x 13 (25,000
# real columns) the coarse curves rank the deals worse (0.2 % less), so the real ones stay.
SEARCH_COLUMNS = 60_000
# The deals' own bound (`deal_bound`) takes at most this share of the time left before the
# MILP, which proves the plan where it does not, is handed the rest.
BOUND_SHARE = 0.75
# A MILP's bound this close to a plan's objective (relative) is taken as reached.
NOISE = 1e-12
# The MILP stops at this share of the gap its start leaves the answer's error bound: the plan
# it ends at has model and true returns of its own.
GAP_SAFETY = 0.9


def solve_milp(model: ScaledProblem, cells: Cells, deadline: float, *,
               gating: Gating = "tangent", warm_start: bool = True,
               report: Report | None = None, stop: Stop | None = None,
               target_error: float | None = None,
               since: tuple[float, float] | None = None) -> Solution:
    """The MILP's plan by `deadline` (a `time.perf_counter()` instant) or once `stop()` turns
    true (the best plan so far, with its gap), or `Infeasible` naming the smallest change that
    makes one possible, or `SolveTimeout` when no plan is found.

    `target_error`: how far below the true optimum the answer may be; a plan is proven (and
    the search ends) within what the curves' own error leaves of it (`_gap`), at least
    MIP_GAP. `since`: when the solve began, by `time.perf_counter()` and `time.process_time()`
    (else now), for the pace of the wall clock to the CPU's."""
    def stopped() -> bool:
        return stop is not None and stop()

    def over() -> bool:
        return stopped() or _left(deadline) <= 0

    entered = since or (time.perf_counter(), time.process_time())

    def pace() -> float:
        """Wall seconds a second of this process's CPU has taken (at least 1): the steps'
        estimates are CPU's, and a loaded machine gives the process part of a core (trial
        21's 1,500 x 52 at 30 s, load 9: the envelope model's 2.6 s of CPU took 11 s)."""
        cpu = time.process_time() - entered[1]
        return max(1.0, (time.perf_counter() - entered[0]) / cpu) if cpu > PACE_CPU else 1.0

    if model.problem.solver == "cbc":
        return _solve_cbc(model, cells, deadline)
    floors = model.problem.objective in ("min_spend", "target_roi")
    exact: set[int] | None = None if gating == "full" or floors else set()
    needs_binaries = bool(cells.is_deal.any()) or \
        any(seg is not None and seg.gated for seg in cells.curve_of[0]) or \
        any(ch.min_if_used for ch in model.problem.channels)
    best: tuple[Floats, float] | None = None     # (spend per cell, objective)
    bound: float | None = None
    spend: Floats | None = None
    marginal: float | None = None                 # the budget's shadow price at `spend`
    priced: Priced | None = None
    budget_price: float | None = None             # prices to make when a MILP is needed
    polish = False                                # the coarse plan re-solved on the cells
    # How long the last model took to make (the coarse one's, before the first MILP's; on the
    # greedy's route, where none is made before it, its estimate): with
    # less time left than that, the next one is not made (at 200 x 52 on a loaded machine,
    # 5.5 s of narrowing and building past the deadline, only for the loop to end once made).
    build = 0.0
    hulls = _envelopes(cells)
    # The deals' search, once, where the tangent-gated MILP of a revenue objective starts.
    search = exact is not None and warm_start and cells.is_deal.any()
    # The search's plan is what the MILPs after it start from: rarely bettered, so they are
    # run for their bound (`backends.PROVING`).
    proving = False
    coarse: Cells | None = None                   # the coarse envelope LP's cells, if made
    if warm_start and not floors and needs_binaries and period_prices.applies(model) and \
            greedy.concave(model, hulls):
        # S-curves under period caps or groups' shares: the first plan's priced greedy reads no
        # clock in its price rounds, so a plan and a bound are made first by the greedy alone
        # (`first_plan.scaled_plan`), answered where nothing better comes in time. Not begun
        # with less time left than its first pass takes at the solve's pace, as below (its
        # others heed the deadline).
        if _left(deadline) < GREEDY_CELL * len(cells) * pace():
            raise SolveTimeout(f"no plan found within {model.problem.time_limit:g} s")
        unscaled, scaled = first_plan.scaled_plan(model, hulls, deadline)
        bound = _objective(model, hulls, unscaled)
        if scaled is not None:
            spend = scaled
            best = spend, _objective(model, cells, spend)
            if report:
                report(best[1], bound)
        # The models of the real cells are made only where they fit in the time left.
        build = CELL_BUILD * len(cells) * pace()
    if warm_start and needs_binaries and greedy.applies(model, hulls):
        # Only S-curves under a budget and channel bounds: the envelope is concave, so the
        # greedy solves its LP exactly, in a fraction of the LP's time; the cells it leaves
        # inside a non-concave stretch drop back to the stretch's start. It hears no clock:
        # not begun with less time left than it takes, its plan would come past the limit.
        if _left(deadline) < GREEDY_CELL * len(cells):
            raise SolveTimeout(f"no plan found within {model.problem.time_limit:g} s")
        relaxation = greedy.solve(model, hulls)
        bound = _objective(model, hulls, relaxation.spend)
        spend = _off_stretches(cells, relaxation.spend)
        marginal = budget_price = relaxation.marginal_value
        # A plan already where the moves down leave every channel's floor held (the budget and
        # the caps hold at any spend below the greedy's): answered with its gap if no model
        # fits in the time left, or at once if within it.
        spent = np.bincount(cells.channel, weights=spend, minlength=len(model.lower))
        if np.all(spent >= np.asarray(model.lower) - HELD):
            best = spend, _objective(model, cells, spend)
            if report:
                report(best[1], bound)
            gap = _gap(model, cells, best, bound, target_error)
            if _within_gap(best[1], bound, gap):
                return _solution(model, cells, None, None, best, bound, report, deadline, gap,
                                 marginal, stop=stop)
        # No model is made yet: its time is estimated.
        build = CELL_BUILD * len(cells)
    elif warm_start and not floors and (best is None or _left(deadline) >= PRICED_CELL * len(
            cells) * pace()) and (first := first_plan.envelope_plan(model, hulls, deadline, stop)):
        # The envelope LP by the priced greedy (`first_plan`): a plan, and row prices that
        # bound every model of the real cells and narrow their curves, in about a second. Not
        # polished: the plan is the optimum of the real curves' envelopes with its deals
        # fixed, and its prices the envelope LP's own, which no other prices' L(y) is below.
        spend, marginal = first.spend, first.marginal
        if _left(deadline) < CELL_BUILD * len(cells) * pace():
            # No model of the real cells fits in the time left (their envelope's, its
            # narrowing and the gated model after it take about as long as the gated model):
            # the plan, which meets every row, is answered with the envelope LP's bound.
            # Trial 21's 1,000 x 52 S-curves with a group at 5 s: the first plan at 4.4 s, then
            # the models past the limit.
            best = _better(best, (spend, _objective(model, cells, spend)), True)
            bound = min(b for b in (bound, first.bound) if b is not None)
            build = CELL_BUILD * len(cells) * pace()
            if report:
                report(best[1], bound)
        else:
            building = time.perf_counter()
            envelope_model = formulate(model, hulls, exact=())
            build = time.perf_counter() - building
            priced = _priced(envelope_model, first_plan.row_prices(model, hulls, envelope_model,
                                                                   first.rows))
            bound = min(b for b in (bound, priced[2], first.bound) if b is not None)
            held = _held(envelope_model, cells, spend)
            if held is not None:
                spend = held[1]
                best = _better(best, (spend, _objective(model, cells, spend)), True)
                if report:
                    report(best[1], bound)
    elif warm_start and not floors and best is None:
        if stopped():
            raise SolveTimeout("stopped before any plan was found")
        # The coarse envelope LP, rounded and re-solved with its binaries fixed, is often a plan
        # within the gap already; its row prices bound every model of the real cells
        # (L(y) on their envelope) and narrow their curves (`windows`).
        coarse = cut = model.cells(COARSE_TOLERANCE, deadline, stop)
        building = time.perf_counter()
        coarse_model = formulate(model, cut, exact=())
        build = time.perf_counter() - building
        relaxed, repaired = relax_then_fix(coarse_model, _left(deadline),
                                           lambda x: _rounded(coarse_model, cut, x), stop)
        _check(relaxed, model, cells, deadline)
        if repaired is not None and repaired.x is not None:
            spend = coarse_model.cell_spend(repaired.x, len(cells))
            if coarse_model.feasible(repaired.x):
                # The first plan, kept and heard at once: the real cells' envelope (its bound,
                # 0.3 s at 150 x 52) and the polish (seconds) come after, or not at all when
                # the time left is shorter; a stop is heard after the envelope, so the plan is
                # answered with its gap.
                best = spend, _objective(model, cells, spend)
                if report:
                    report(best[1], None)
        elif relaxed.x is not None:
            spend = coarse_model.cell_spend(relaxed.x, len(cells))
            held = _held(coarse_model, cells, spend) if stopped() else None
            if held is not None:
                # Stopped: the relaxation's point held to what the coarse model's columns
                # can spend is the plan, where the loop would hold it on the real envelope
                # after making that (0.3 s of CPU at 200 x 26).
                spend = held[1]
                best = spend, _objective(model, cells, spend)
        if relaxed.row_dual is not None and _left(deadline) > ENVELOPE_BUILDS * build and \
                (not stopped() or best is not None and ENVELOPE_BUILDS * build <= AFTER_STOP):
            # The coarse and the real envelope models have the same rows, in the same order.
            # Made after a stop where there is a plan and it takes little (its gap is in it:
            # 0.3 s of CPU at 200 x 26, seconds on a loaded machine), but not started with
            # less time left than it takes: a plan without a bound beats one past the limit.
            envelope_model = formulate(model, hulls, exact=())
            priced = _priced(envelope_model, prices(envelope_model, relaxed.row_dual))
            bound = priced[2]
        polish = True
    elif warm_start and needs_binaries and best is None:
        # The envelope LP bounds every model below, however its cells are gated; rounded and
        # re-solved with its binaries fixed it is often a plan within the gap already.
        envelope_model = formulate(model, cells, exact=())
        relaxed, repaired = relax_then_fix(envelope_model, _left(deadline),
                                           lambda x: _rounded(envelope_model, cells, x), stop)
        _check(relaxed, model, cells, deadline)
        bound = relaxed.bound
        if repaired is not None and repaired.x is not None:
            spend = envelope_model.cell_spend(repaired.x, len(cells))
            marginal = _dual(envelope_model, repaired.row_dual)
        elif relaxed.x is not None:
            spend = envelope_model.cell_spend(relaxed.x, len(cells))
    while True:
        if _left(deadline) <= build:
            break
        gap = _gap(model, cells, best, bound, target_error)
        if priced is not None and spend is not None:
            held = _held(priced[0], cells, spend)
            if held is not None:
                spend = held[1]
                best = _better(best, (spend, _objective(model, cells, spend)), True)
        if stopped():
            # Before the next model is made: that alone takes a second at 100 × 52, and
            # without a plan held already there is none to answer (`SolveTimeout`).
            break
        if polish and priced is not None and spend is not None:
            polish = False
            spend, polished, priced = _polish(model, cells, _shown(cells, hulls, exact), spend,
                                              priced, deadline, stop)
            # Without binaries the plan is an LP's, whose budget price is the whole LP's: the
            # polish's narrowed curves can leave the budget slack at a price of 0.
            marginal = polished if needs_binaries else None
            bound = priced[2] if bound is None else min(bound, priced[2])
            continue
        building = time.perf_counter()
        shown = cells if priced is None or best is None else \
            _narrowed(cells, hulls, exact, priced, best[1], over)
        if over():
            break   # the model and the plan's place in it take as long as the narrowing
        form = formulate(model, shown, exact=exact)
        if over():
            break
        held = None if spend is None else _held(form, cells, spend)
        if held is None and spend is not None and floors and best is None:
            held = _repaired(form, cells, spend, deadline, stop)
        build = time.perf_counter() - building
        start = None if held is None else held[0]
        if held is not None:
            spend = held[1]
            plan = (spend, _objective(model, cells, spend))
            best = _better(best, plan, form.maximise)
            if report:
                report(best[1], bound)
            # `plan` is scored on the real curves and `bound` holds for every model whose
            # curves lie at or below their envelopes: within the gap, proven wherever it sits.
            if _within_gap(plan[1], bound, gap):
                return _solution(model, cells, form if marginal is None else None, None, plan,
                                 bound, report, deadline, gap, marginal, stop=stop)
        if stopped() or _left(deadline) <= 0:
            break
        if priced is None and budget_price is not None and best is not None and \
                _left(deadline) > build:
            # The budget's price is the greedy's level (the channels' caps priced at 0 leave
            # a looser but valid bound); made only now that a MILP is needed, and the model
            # made again narrowed by it.
            envelope_model = formulate(model, hulls, exact=())
            y = np.zeros(len(envelope_model.row_names))
            y[envelope_model.row_index("budget")] = budget_price
            priced = _priced(envelope_model, y)
            continue
        if search and priced is not None and best is not None:
            # Not proven by the start: its deals' periods are searched for, before the MILP
            # that would search for them by branching (see `deal_search`).
            search = False
            searched = form
            if len(form.cost) > SEARCH_COLUMNS:
                # The coarse curves, made now where the start was `first_plan`'s.
                coarse = coarse or model.cells(COARSE_TOLERANCE, deadline, stop)
                searched = formulate(model, _narrowed(coarse, _envelopes(coarse), exact, priced,
                                                      best[1], over), exact=exact)
            found = _deal_plan(model, cells, searched, spend, deadline, stop)
            if found is not None and searched is not form and not over():
                polished_spend = _polish(model, cells, _shown(cells, hulls, exact), found[0],
                                         priced, deadline, stop)[0]
                found = polished_spend, _objective(model, cells, polished_spend)
            if found is not None and found[1] > best[1]:
                best, spend = found, found[0]
                proving = True
                continue
            if over():
                break   # the MILP's model, handed to HiGHS, would take as long as the search
        if proving and not exact and best is not None and start is not None and \
                priced is not None:
            # The search's plan, proven by the deals' own bound (`deal_bound`) where it can be,
            # its LPs (where its root's prices do not prove it) on the coarse curves narrowed
            # by the plan: only their prices are used, and 5,800 columns take half the time
            # 25,000 do (0.1-0.2 s of CPU at 50 x 13 other shapes, where HiGHS's MILP took
            # 3.2-6.3 s). Not once cells are gated: their rows are priced at 0 there, which
            # bounds a gated curve by its steepest segments.
            proved = _deal_bound(form, model, coarse, cells, start, best, priced, gap,
                                 deadline, stop)
            bound = _tighter(bound, proved, best[1], form.maximise)
            if _within_gap(best[1], bound, gap):
                return _solution(model, cells, form if marginal is None else None, None, best,
                                 bound, report, deadline, gap, marginal, stop=stop)
            if over():
                break
        on_improve = None if report is None else _improving(model, cells, form, report, bound)
        run = run_highs(form, _left(deadline), start=start, on_improve=on_improve,
                        good_enough=bound, stop=stop, gap=gap, proving=proving)
        _check(run, model, cells, deadline)
        if run.x is None:
            break
        spend = form.cell_spend(run.x, len(cells))
        plan = (spend, _objective(model, cells, spend))
        bound = _tighter(bound, run.bound, plan[1], form.maximise)
        loose = [] if exact is None else _inside_envelope(cells, spend, form.exact)
        if not loose and (run.status == "optimal" or _within_gap(plan[1], bound, gap)):
            return _solution(model, cells, None if stopped() else form, run, plan, bound,
                             report, deadline, gap, stop=stop)
        best = _better(best, plan, form.maximise)
        if not loose or time.perf_counter() >= deadline or stopped():
            break
        exact.update(loose)                           # type: ignore[union-attr]
    if best is None:
        raise SolveTimeout("stopped before any plan was found" if stopped() else
                           f"no plan found within {model.problem.time_limit:g} s")
    return _solution(model, cells, None, None, best, bound, report, deadline,
                     _gap(model, cells, best, bound, target_error))


def _held(form: Formulation, cells: Cells, spend: Floats) -> tuple[Floats, Floats] | None:
    """`spend` as `form`'s column values and what those spend per cell, if they meet every
    row: a relaxation's point (a deal part-bought, a cell past its cap, an interrupted
    interior point) is held to what the columns can spend, never taken as it is."""
    x = form.columns_for(cells, spend)
    return (x, form.cell_spend(x, len(cells))) if form.feasible(x) else None


def _deal_plan(model: ScaledProblem, cells: Cells, form: Formulation, spend: Floats | None,
               deadline: float, stop: Stop | None) -> tuple[Floats, float] | None:
    """A plan with the deals' periods found by `deal_search` on `form` (the envelope model
    the MILP would start on) and the cells it leaves inside a non-concave stretch decided out
    of them on the same LP (`deal_search.settle`)."""
    if spend is None or not form.maximise:
        return None
    # The MILP after it keeps the rest of the time, for the bound that proves the plan; the
    # search leaves the settling a share of its own.
    left = STAGE_SHARE * _left(deadline)
    solve = bounding(form, left, stop, form.columns_for(cells, spend))
    found = deal_search.search(form, cells, spend, solve,
                               time.perf_counter() + SEARCH_SHARE * left)
    if found is None:
        return None
    settled = deal_search.settle(
        form, found, solve, lambda at: _inside_envelope(cells, at, frozenset()),
        lambda at: _objective(model, cells, at))
    # Not settled (out of time or stopped in its first LPs): the search's own point is a plan
    # too (it keeps every row), worth less where the LP left a cell inside a stretch (it is
    # scored on the curves). 100 x 26 other shapes at 10 s: the search's plan was lost so.
    return settled if settled is not None else (found.spend, _objective(model, cells, found.spend))


def _deal_bound(form: Formulation, model: ScaledProblem, coarse: Cells | None, cells: Cells,
                plan: Floats, best: tuple[Floats, float], priced: Priced, gap: float,
                deadline: float, stop: Stop | None) -> float | None:
    """The bound `deal_bound` reaches on `form`'s plans (no cell gated) by BOUND_SHARE of the
    time left, from the envelope's prices `priced`, its LPs (where it needs them) on the
    coarse curves (`coarse`, made if None) narrowed by the plan `best` (`plan`: its column
    values of `form`)."""
    until = time.perf_counter() + BOUND_SHARE * _left(deadline)

    def over() -> bool:
        return (stop is not None and stop()) or time.perf_counter() >= until

    def made() -> tuple[Formulation, Bounded]:
        cut = model.cells(COARSE_TOLERANCE, deadline, stop) if coarse is None else coarse
        lp_form = formulate(model, _narrowed(cut, _envelopes(cut), set(), priced, best[1],
                                             over), exact=set())
        return lp_form, bounding(lp_form, until - time.perf_counter(), stop,
                                 lp_form.columns_for(cells, best[0]))
    y = deal_bound.on_rows(form, priced[0], priced[1])
    return deal_bound.bound(form, cells, plan, best[1], gap, y, made, until, stop)


def _fixed(form: Formulation, x: Floats, deadline: float, stop: Stop | None) -> Run:
    """The LP of `form` with its integer columns fixed at their values in `x`, by simplex
    without presolve from `x` (those columns rounded): HiGHS makes its first basis from a
    plan's values. The budget's price at 50 x 13 other shapes: 0.02 s of CPU, where interior
    point took 0.38 s and presolve and simplex 1.0 s (a cold dual simplex on these many thin
    columns spends its time choosing among the many it flips at once); the polish at 100 x 26
    (146,000 columns): 0.07 s."""
    at = x.copy()
    at[form.integer] = np.round(x[form.integer])
    return run_highs(_choices_fixed(form, at), _left(deadline), relax=True, stop=stop, start=at)


def _choices_fixed(form: Formulation, x: Floats) -> Formulation:
    """`form` with its integer columns fixed at their values in `x`, rounded."""
    at = np.round(x[form.integer])
    lower, upper = form.col_lower.copy(), form.col_upper.copy()
    lower[form.integer], upper[form.integer] = at, at
    return replace(form, col_lower=lower, col_upper=upper)


def _repaired(form: Formulation, cells: Cells, spend: Floats, deadline: float,
              stop: Stop | None) -> tuple[Floats, Floats] | None:
    """The envelope LP's plan `spend`, its choices kept (deals, "min if used", each gated
    cell's stretch) and its amounts re-solved on `form`, if that LP has a plan: the envelope
    lies above an S-curve's convex start, so its plan can miss a return floor on the real
    curves, and the MILP started without a plan (trial 18h: under target_roi with groups and
    "min if used", HiGHS's own first plans spent 0.04 in 13 s; the LP takes the units that earn
    least off, 2,149,314 returned at the target). By presolve and simplex, not from the plan
    as `_fixed` is: the plan misses a row, and from it HiGHS took 0.9-1.0 s of CPU on the
    trial's other request against 0.2 s."""
    run = run_highs(_choices_fixed(form, form.columns_for(cells, spend)), _left(deadline),
                    relax=True, stop=stop)
    if run.x is None or not form.feasible(run.x):
        return None
    return run.x, form.cell_spend(run.x, len(cells))


def _gap(model: ScaledProblem, cells: Cells, best: tuple[Floats, float] | None,
         bound: float | None, target_error: float | None) -> float:
    """The MILP's gap: what `target_error` leaves of the answer's error bound at the plan
    `best` (`assembly.approximation_error`: the plan's model return times 1 + gap, less its
    true return, plus every curve's largest rise above its segments, within `target_error` of
    the true return), GAP_SAFETY of it for the plan the MILP ends at; at least MIP_GAP."""
    if target_error is None or (best is None and bound is None):
        return MIP_GAP
    distinct, curve = cells.curve_of
    errors = np.array([0.0 if seg is None else seg.error for seg in distinct])[curve]
    rises = float(cells.weight @ errors)
    if best is None:
        assert bound is not None
        true = modelled = abs(bound)   # no plan yet: the curves' error against the bound
    else:
        true = float(model.true_returns(cells, best[0]).sum())
        modelled = float(model_values(cells, best[0]).sum())
    if modelled <= EPS:
        return MIP_GAP
    return max(MIP_GAP, GAP_SAFETY * (target_error * true - rises - (modelled - true)) / modelled)


def _priced(envelope_model: Formulation, y: Floats) -> Priced:
    return envelope_model, y, lagrangian(envelope_model, y)


def _narrowed(cells: Cells, hulls: Cells, exact: set[int] | None, priced: Priced,
              floor: float, over: Stop | None = None) -> Cells:
    """The cells as the MILP models them (envelopes outside `exact`), each curve narrowed to
    where a plan worth at least `floor` spends at the prices `priced` (see `windows`), as far
    as it got before `over()` turned true."""
    envelope_model, y, bound = priced
    low, high = intervals(envelope_model, y, len(cells), bound - floor, over)
    return narrowed(_shown(cells, hulls, exact), low, high, over)


def _shown(cells: Cells, hulls: Cells, exact: set[int] | None) -> Cells:
    """The cells as the MILP models them: by their envelopes outside `exact`."""
    return Cells(cell if exact is None or i in exact else hulls[i]
                 for i, cell in enumerate(cells))


def _polish(model: ScaledProblem, cells: Cells, shown: Cells, spend: Floats, priced: Priced,
            deadline: float, stop: Stop | None) -> tuple[Floats, float | None, Priced]:
    """A coarse plan's choices (deals, gates) kept and its amounts re-solved on the real curves
    near it (each cell's curve merged outside NEAR × its spend): a better plan, the budget's
    price with those choices, and row prices whose L(y) is usually the tighter bound."""
    def over() -> bool:
        return (stop is not None and stop()) or _left(deadline) <= 0

    # Heard between its steps: narrowing, making the model and placing the plan in it take
    # 0.1-0.3 s of CPU each at 200 x 26 (a second at 100 x 52 on a loaded machine).
    if over():
        return spend, None, priced
    local = narrowed(shown, spend * (1 - NEAR), spend * (1 + NEAR) + EPS, over)
    if over():
        return spend, None, priced
    form = formulate(model, local, exact=frozenset(
        i for i, cell in enumerate(shown) if cell.segments is not None and cell.segments.gated))
    if over():
        return spend, None, priced
    start = form.columns_for(cells, spend)
    if not form.feasible(start):
        return spend, None, priced
    run = _fixed(form, start, deadline, stop)
    if run.x is None:
        return spend, None, priced
    envelope_model = priced[0]
    rows = len(envelope_model.row_names)
    # The gated cells' own rows come after the request's, which the envelope model shares.
    if run.row_dual is not None and form.row_names[:rows] == envelope_model.row_names:
        y = prices(envelope_model, run.row_dual[:rows])
        again = lagrangian(envelope_model, y)
        if again < priced[2]:
            priced = envelope_model, y, again
    return form.cell_spend(run.x, len(cells)), _dual(form, run.row_dual), priced


def _envelopes(cells: Cells) -> Cells:
    """`cells` with every non-concave curve replaced by its envelope (once per curve)."""
    distinct, _ = cells.curve_of
    return cells.select(np.arange(len(cells)), [
        envelope(seg) if seg is not None and seg.gated else seg for seg in distinct])


def _off_stretches(cells: Cells, spend: Floats) -> Floats:
    """`spend` with each cell inside a non-concave stretch moved down to the stretch's start
    (it spends less, so every budget and cap still holds)."""
    owner, low, high = cells.stretches
    at = spend[owner]
    # A cell's stretches do not overlap: each cell is inside one at most.
    inside = (at > low + EPS) & (at < high - EPS)
    moved = spend.copy()
    moved[owner[inside]] = low[inside]
    return moved


def _rounded(form: Formulation, cells: Cells, x: Floats) -> Floats:
    """The relaxation's binaries rounded: each deal bought in the period where it is most
    bought, if at least half; a "min if used" channel used if at least half."""
    rounded = x.copy()
    deals: dict[int, list[int]] = {}
    for column in np.flatnonzero(form.integer):
        cell = int(form.cell_of[column])
        if cell >= 0:
            deals.setdefault(cells[cell].channel, []).append(int(column))
        else:
            rounded[column] = float(x[column] >= 0.5)
    for columns in deals.values():
        most = max(columns, key=lambda j: x[j])
        rounded[columns] = 0.0
        rounded[most] = float(x[most] >= 0.5)
    return rounded


def _within_gap(objective: float, bound: float | None, gap: float = MIP_GAP) -> bool:
    return bound is not None and abs(bound - objective) <= gap * max(abs(objective), EPS)


def _left(deadline: float) -> float:
    return deadline - time.perf_counter()


def _check(run: Run, model: ScaledProblem, cells: Cells, deadline: float) -> None:
    if run.status == "infeasible":
        # Under min_spend the pieces, below a concave curve, can miss a target that a plan
        # meets: the solver asks the plan of most return first, and names the conflicts only
        # where that falls short (`solver._most_return_cut`).
        raise Infeasible([] if model.problem.objective == "min_spend" else
                         conflicts(model, cells, deadline))


def _better(best: tuple[Floats, float] | None, plan: tuple[Floats, float],
            maximise: bool) -> tuple[Floats, float]:
    if best is None or (plan[1] > best[1] if maximise else plan[1] < best[1]):
        return plan
    return best


def _tighter(bound: float | None, new: float | None, reached: float,
             maximise: bool) -> float | None:
    """The tighter of two bounds. A MILP's bound that a plan beats on the curves (HiGHS may
    leave a segment split out of order, within its gap, and bound that split) is no bound;
    one that the plan beats by float noise only (a proven optimum's objective summed in another
    order: 1e-16 of it, which once cost a proven plan its proof) is the plan's value."""
    if new is not None and abs(new - reached) <= NOISE * max(abs(reached), EPS):
        new = reached
    if new is None or (new < reached if maximise else new > reached):
        return bound
    if bound is None:
        return new
    return min(bound, new) if maximise else max(bound, new)


def _improving(model: ScaledProblem, cells: Cells, form: Formulation, report: Report,
               known: float | None) -> Callable[[Floats, float], None]:
    """HiGHS's improving solutions as reports, each scored on the curves (an envelope's own
    objective overstates a plan inside a non-concave stretch), with the tighter of HiGHS's
    bound (infinite before its root is solved) and the `known` one."""
    def on_improve(x: Floats, bound: float) -> None:
        objective = _objective(model, cells, form.cell_spend(x, len(cells)))
        report(objective, _tighter(known, bound if math.isfinite(bound) else None, objective,
                                   form.maximise))
    return on_improve


def _solution(model: ScaledProblem, cells: Cells, form: Formulation | None, run: Run | None,
              best: tuple[Floats, float], bound: float | None, report: Report | None,
              deadline: float, allowed: float = MIP_GAP,
              marginal: float | None = None, *, stop: Stop | None = None) -> Solution:
    """The best plan with its gap to the bound; proven `optimal` only when within `allowed` of
    the bound (or, with none, when the last model was solved to optimality)."""
    spend, objective = best
    # A bound from elsewhere (the envelope's) that the plan does not meet overrules a solver's
    # "optimal": that only speaks for its own model.
    proven = _within_gap(objective, bound, allowed) if bound is not None else \
        run is not None and run.status == "optimal"
    gap = None if bound is None else abs(bound - objective) / max(abs(objective), EPS)
    if report:
        report(objective, bound)
    if form is not None:
        marginal = _budget_dual(form, spend, run, deadline, cells, stop)
    return Solution(spend, "optimal" if proven else "feasible", gap, "HiGHS", marginal,
                    float(model_values(cells, spend).sum()))


def _objective(model: ScaledProblem, cells: Cells, spend: Floats) -> float:
    """The request's objective for `spend` on the piecewise-linear curves."""
    earned, paid = float(model_values(cells, spend).sum()), float(spend.sum())
    objective = model.problem.objective
    if objective == "min_spend":
        return paid
    if objective == "max_profit":
        return earned - paid
    return earned - SPEND_TIE_BREAK * paid


def model_values(cells: Cells, spend: Floats) -> Floats:
    """Per cell, the piecewise-linear model's return at `spend` (segments filled in order,
    whatever the solver's split among equal-valued segments)."""
    values = np.zeros(len(cells))
    for i in np.flatnonzero(cells.is_deal & (spend > EPS)):
        deal = cells[i].deal
        assert deal is not None
        values[i] = deal[1]
    for seg, mine in cells.curves:
        xs = np.concatenate([[0.0], np.cumsum(seg.lengths)])
        ys = np.concatenate([[0.0], np.cumsum(seg.lengths * seg.slopes)])
        values[mine] = cells.weight[mine] * np.interp(spend[mine], xs, ys)
    return values


def _inside_envelope(cells: Cells, spend: Floats, exact: frozenset[int]) -> list[int]:
    """The cells modelled by their envelope whose spend lies strictly inside a stretch where
    the curve is below the envelope: there the envelope overstates the return."""
    owner, low, high = cells.stretches
    at = spend[owner]
    inside = np.unique(owner[(at > low + EPS) & (at < high - EPS)])
    return [int(i) for i in inside if int(i) not in exact]


def _budget_dual(form: Formulation, spend: Floats, run: Run | None, deadline: float,
                 cells: Cells, stop: Stop | None = None) -> float | None:
    """The shadow price of the budget; for a MILP, of the LP with its binaries fixed (given at
    most a share of the time left, and given up at a stop: it is worth less than keeping the
    limit or answering a cancel), from the plan (`_fixed`)."""
    duals = None if run is None else run.row_dual
    if form.integer.any() or duals is None:
        if _left(deadline) < DUAL_SECONDS:
            return None
        duals = _fixed(form, form.columns_for(cells, spend),
                       time.perf_counter() + DUAL_SHARE * _left(deadline), stop).row_dual
    return _dual(form, duals)


def _dual(form: Formulation, duals: Floats | None) -> float | None:
    return None if duals is None else abs(float(duals[form.row_index("budget")]))


def _solve_cbc(model: ScaledProblem, cells: Cells, deadline: float) -> Solution:
    """CBC on the fully gated model (it takes PuLP's model; the shadow price from HiGHS)."""
    form = formulate(model, cells)
    run = run_cbc(form, _left(deadline))
    _check(run, model, cells, deadline)
    if run.x is None:
        raise SolveTimeout(f"no plan found within {model.problem.time_limit:g} s")
    spend = form.cell_spend(run.x, len(cells))
    return Solution(spend, run.status, 0.0 if run.status == "optimal" else None, "CBC",
                    _budget_dual(form, spend, run, deadline, cells),
                    float(model_values(cells, spend).sum()))
