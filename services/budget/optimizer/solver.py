"""The optimizer's entry point: refine the curves until the plan is provably near the optimum,
within the time limit."""
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import numpy.typing as npt

from services.budget.optimizer import (
    greedy,
    infeasibility,
    period_prices,
    roi_frontier,
    spend_frontier,
)
from services.budget.optimizer.answer import (
    RATIO_PLACES,
    Allocation,
    Conflict,
    Infeasible,
    Progress,
    SolveTimeout,
)
from services.budget.optimizer.assembly import allocation, approximation_error, ratio
from services.budget.optimizer.backends import Stop, run_highs
from services.budget.optimizer.curves import Floats
from services.budget.optimizer.formulation import formulate
from services.budget.optimizer.infeasibility import (
    ADVICE,
    Allows,
    applied,
    best_roi_plan,
    checked,
    conflicts,
    floor_plan,
    past_best_roi,
    rounded_plan,
    rules_but_roi,
    share_roi_plan,
    unmet_shares,
    unnamed,
    unreachable_roi,
    used_floor_plan,
)
from services.budget.optimizer.marginal import first_unit_value
from services.budget.optimizer.milp import Gating, solve_milp
from services.budget.optimizer.problem import FIRST_TOLERANCE, Hill, Problem
from services.budget.optimizer.scaled import EPS, Cells, ScaledProblem, Solution
from shared.money import quantum

# The approximation is refined until the true optimum can be at most this far above the plan.
TARGET_ERROR = 1e-3
REFINEMENTS = 3
# A finer round cuts finer only the Hill channels that hold the prices' bound, all but this
# share of TARGET_ERROR (`_finer`): cut to the usual finer tolerance, theirs shrinks to about
# half of TARGET_ERROR, so the bound ends near three quarters of it.
LEFT_OVER = 0.25
# A `target_roi` request whose first cut finds no plan is cut this much finer once before its
# conflicts are named (on the first cut): the pieces lie below a concave curve, and a target
# 0.05 % below a plan's return per unit was refused (trial 18g, t2b_hardmin_w_alone0).
ROI_FINER = 0.01
# Float noise allowed over TARGET_ERROR before a proven plan is called merely feasible.
PROVEN_SLACK = 1e-9
# The solver stops this share of the time limit (plus a fixed part, at most the cap) before
# it, so that rounding and describing the plan end within the limit.
ASSEMBLY_SHARE, ASSEMBLY_FIXED, ASSEMBLY_CAP = 0.1, 0.1, 1.5
# A rounded `target_roi` plan short of its target is cut this many times at most, a
# `min_spend` one added to.
REPAIRS = 4
# A `target_roi` plan whose return per unit is within this of its target (or within twice its
# bound) may be held by the target's row.
ROI_BINDS = 0.01
# After a `target_roi` plan that binds its target, a finer cut's MILP is given at most this many
# times the round's time, and at least ROUND_LEAST seconds (within the limit).
ROUND_TIMES, ROUND_LEAST = 4.0, 1.0
# Naming a `target_roi` request's conflicts ends with checks of its changes applied, solves
# of up to CHECK_SECONDS each, made past the deadline it is given: it is given one this many
# checks before the solver's (trial 19, roi30_t2.6: the elastic model took the time up to the
# deadline and two checks after it ended the 422 at 21.9 s of a 20 s limit).
NAMED_CHECKS = 2
# A `target_roi` plan is scaled (`_scaled`) by doublings or halvings, at most this many, to
# the last that meets its target, then bisected between that and the next this many times.
SCALE_STEPS, SCALE_BISECTIONS = 40, 24
# A `target_roi` cut steps this many times at most on its cell's true curve (`_cut`).
CUT_STEPS = 64
# It passes over the plan's cells this many times at most: cutting a group's member can let a
# cell skipped for the group's share be cut.
CUT_PASSES = 3
# A `min_spend` repair adds units to the plan at most this many times, each where the next unit
# earns most (a concave Hill curve's first unit, at an infinite slope, is one cent).
ADDS = 50
# A `min_spend` plan of most return is cut (`_trim`) trying at most this many cells a step.
TRIM_TRIES = 20
# What a cell, channel, period or the money has room for is counted in whole units up to this
# share of a unit's float noise: the scaled sums carry 1e-16 of the budget, which at
# 18,333,334 cents is 1.4e-9 of one (trial 18f: a plan a cent short, with a cent of room in
# the money and the period, was called unmeetable).
ROOM_NOISE = 1e-6
# `_relaxed_gap`'s search for the budget's price: this many halvings of its bracket on a log
# scale, from LOWEST_PRICE of the steepest price to it (each a pass over the cells: about
# 6 ms at 52,000 cells; the last bracket's ends within 2e-6 of each other).
PRICE_BISECTIONS, LOWEST_PRICE = 24, 1e-12
# Under target_roi the plans made on the true curves apart from the pieces (`_roi_plans`) and
# scaled (`_scaled`) end this share of the way from the solver's deadline to the time limit
# (the rest is the answer's assembly), but get at least APART_LEAST seconds, even past it: a
# MILP that overran its time (at a 2 s limit under load, the finer cut's ended at 1.75 s) left
# them none, and a plan of cents was answered (0.20 spent) where 0.1 s more scaled the
# shares' plan to 3,138.80.
APART_SHARE, APART_LEAST = 0.5, 0.2


def solve(problem: Problem, progress: Callable[[Progress], None] | None = None, *,
          stop: Stop | None = None, gating: Gating = "tangent",
          warm_start: bool = True) -> Allocation:
    """Return the best allocation of `problem` within its time limit, or raise `Infeasible`
    naming the conflict (`SolveTimeout` when the limit passes before any plan is found).

    Each round cuts the curves into segments within a tolerance, solves (concave curves under
    the budget, channel bounds, period caps and groups by the greedy, with period prices and an
    LP where a period has a cap or a group a share; else the MILP) and bounds the true
    optimum's lead over the plan; past TARGET_ERROR the tolerance shrinks and the problem is
    solved again while time is left. `progress`, when given, hears the incumbent, bound and gap
    as they improve. Once `stop()` turns true (asked at HiGHS's interrupt points and between
    rounds) the best plan so far is answered, as `feasible` with its gap unless already proven
    (`SolveTimeout` if there is none).
    `gating` and `warm_start` choose the MILP's method ("full" gating and a cold start are the
    references the tests and the benchmark compare with).
    """
    started, cpu = time.perf_counter(), time.process_time()
    with infeasibility.answer_by(started + problem.time_limit + infeasibility.NAMING_SECONDS):
        return _solved(problem, started, progress, stop=stop, gating=gating,
                       warm_start=warm_start, cpu=cpu)


def _solved(problem: Problem, started: float, progress: Callable[[Progress], None] | None, *,
            stop: Stop | None, gating: Gating, warm_start: bool,
            cpu: float | None = None) -> Allocation:
    """`solve`'s answer, begun at `started` (`time.perf_counter()`; `cpu`, `time.process_time()`
    then)."""
    limit = problem.time_limit
    deadline = started + limit - min(ASSEMBLY_SHARE * limit + ASSEMBLY_FIXED, ASSEMBLY_CAP)
    apart_at = deadline + APART_SHARE * (started + limit - deadline)

    def apart_by() -> float:
        """When the plans apart from the pieces, begun now, end."""
        return max(apart_at, time.perf_counter() + APART_LEAST)

    model = ScaledProblem(problem)
    if problem.objective != "min_spend":
        # Spending nothing holds any share: it is never the answer to shares that only it holds
        # (min_spend's plan of nothing is its answer wherever it meets the target).
        unmet = unmet_shares(model)
        if unmet:
            # Under target_roi the shares changed may still leave the target out of reach
            # (`checked`): a deal past the money in a group at 0.5, and a target of 1.9369
            # where the other channel reaches 1.724137 (fuzz).
            raise Infeasible(checked(model, unmet))

    def report(incumbent: float, bound: float | None) -> None:
        if progress is not None:
            gap = None if bound is None else abs(bound - incumbent) / max(abs(incumbent), 1e-12)
            progress(Progress(incumbent * model.unit, None if bound is None else bound * model.unit,
                              gap, round(time.perf_counter() - started, 4)))

    tolerance = FIRST_TOLERANCE
    # Per channel, a factor on `tolerance`: where the prices' bound names the channels that
    # hold it, only theirs are cut finer (`_finer`).
    finer = np.ones(len(problem.channels))
    best: tuple[Cells, Solution, float] | None = None
    # Where the priced greedy's next round starts (period caps or groups only).
    start: period_prices.Start | None = None
    # Under target_roi: the first cut's cells where it found no plan, named if the finer one
    # finds none either.
    coarse: Cells | None = None
    # The last cut made, for min_spend's plan of most return where its MILP finds none in time.
    made: Cells | None = None
    # A target_roi above the most any plan returns per unit spent (`past_best_roi`).
    past: list[Conflict] = []
    # When the next round's MILP must end: sooner than `deadline` after a plan that binds
    # target_roi (`_roi_binds`).
    round_by = deadline
    # Under target_roi on the frontier's route: the most return (scaled) a plan meeting the
    # target can make, for the best plan (`roi_frontier.ceiling`).
    roof: float | None = None
    # ... and the most such a plan can spend, where the next cut's Newton's steps start.
    reach: float | None = None
    for _ in range(REFINEMENTS):
        round_started = time.perf_counter()
        try:
            cells = made = model.cells(tolerance, deadline, stop, finer)
            cutting = time.perf_counter() - round_started
            if stop is not None and stop():
                # Heard before any model is made of the cut curves: the return floors' route
                # makes its whole envelope model next (seconds at 200 x 26) without asking.
                raise SolveTimeout("stopped before any plan was found")
            if problem.objective == "target_roi" and best is None and coarse is None and \
                    (past := past_best_roi(model, cells, deadline)):
                raise Infeasible(past)
            solution, start = _concave(model, cells, deadline, start, stop, reach)
            if solution is not None:
                report(solution.model_return, solution.model_return * (1 + (solution.gap or 0.0)))
            else:
                # Under target_roi the conflicts are named below, on the first cut, where a
                # finer one finds no plan either.
                with unnamed() if problem.objective == "target_roi" else nullcontext():
                    solution = solve_milp(model, cells, round_by, gating=gating,
                                          warm_start=warm_start, report=report, stop=stop,
                                          target_error=TARGET_ERROR,
                                          since=None if cpu is None else (started, cpu))
        except SolveTimeout:
            cut = coarse or made
            if best is None and problem.objective == "target_roi" and cut is not None and \
                    not (stop is not None and stop()):
                # A cut found nothing in time: a plan on the true curves, as where it finds
                # none (below). Trial 20's 50 x 13 request at a target of 500 got "no plan
                # within 3 s" (and 10 s, loaded) from the first cut's MILP, where one cell's
                # cents of a concave curve beside brand's on an S-curve return thousands a unit.
                apart = _roi_apart(model, cut, started, apart_by(), stop)
                if apart is not None:
                    return apart
            # The finer cut found nothing in time either: the first cut's conflicts.
            if best is None and coarse is not None and not (stop is not None and stop()) and \
                    (named := _roi_conflicts(model, coarse, deadline)):
                raise Infeasible(named) from None
            if best is None and made is not None and problem.objective == "min_spend" and \
                    not (stop is not None and stop()):
                # A target at the most return (as a named change sets it) asks the gated MILP
                # for the optimum itself: trial 18i's 40 × 6 found no plan in 8 s, where
                # max_return is proven in 0.29 s and its plan meets the target. That plan is
                # solved for in the time left and cut to the target (`_most_return_cut`).
                return _most_return_cut(model, made, started, deadline, stop)
            if best is None:
                raise
            break
        except Infeasible as refused:
            if best is not None:
                break
            if problem.objective == "min_spend":
                return _most_return_cut(model, cells, started, deadline, stop)
            if problem.objective == "target_roi":
                if not refused.conflicts and coarse is None:
                    coarse, tolerance = cells, tolerance * ROI_FINER
                    if time.perf_counter() < deadline:
                        # Half the time left is kept for naming the conflicts should the finer
                        # cut find no plan either: its MILP took 11.2 s of a 20 s limit to find
                        # none at 30 x 8 with groups (trial 19, roi30_t3.5), and the naming
                        # after it ended at 21.7 s.
                        round_by = time.perf_counter() + (deadline - time.perf_counter()) / 2
                        continue
                # The pieces lie below a concave curve and above an S-curve's convex part: a
                # plan they miss may meet the target on the true curves (`_roi_plans`), unless
                # no plan reaches it (they took 5.3 s of a 9.5 s 422 at 50 x 13 with shares).
                # They are found on the first cut: its plans are priced on the true curves
                # too, and the shares' LP on the finer one's envelopes (44,681 pieces at 20 x 4)
                # took 10.4 s of CPU where the first cut's (3,552) took 0.16 s, and reached
                # 2.579705 a unit where that reached 2.578950 (trial 19, roi20_t3).
                apart = None if past else _roi_apart(model, coarse or cells, started, apart_by(),
                                                     stop)
                if apart is not None:
                    return apart
                if not refused.conflicts:
                    named = _roi_conflicts(model, coarse or cells, deadline)
                    if named:
                        raise Infeasible(named) from None
                    # A 422 naming nothing tells no fix (capped 200 x 26 at a target of 500
                    # and 5 s under load: the naming's time was spent): no plan in time.
                    raise SolveTimeout("no plan meeting target_roi found, nor its conflict "
                                       "named, within the time limit") from None
            raise
        ceiling = None
        if problem.objective == "target_roi" and solution.solver.startswith("greedy"):
            # The frontier's plan (`roi_frontier`): bounded with the target's row loosened by
            # the curves' rises, which `_error` does not count.
            ceiling, reach = roi_frontier.ceiling(model, cells, solution)
            error = _under(model, cells, solution.spend, ceiling)
        elif problem.objective == "min_spend" and solution.solver.startswith("greedy"):
            # The frontier's plan (`spend_frontier`): bounded by F's price at it, which the
            # Lagrangian's rows dropped (floors, caps) leave far below (1.7 % at 200 x 26).
            error = spend_frontier.error(model, cells, solution, deadline)
        elif problem.objective == "min_spend":
            error = _spend_error(model, cells, float(np.sum(solution.spend)),
                                 deadline - time.perf_counter())
        else:
            error = _error(model, cells, solution)
        # Per cell, its share of the prices' bound, where that bound is the error.
        losses: Floats | None = None
        if error > TARGET_ERROR and problem.objective != "min_spend":
            # The curves' largest rises count wherever they are; the prices' bound counts
            # them only where the plan's prices put the optimum (`priced_error`).
            priced = model.priced_bound(cells, solution)
            if priced is not None and priced[0] < error:
                error, losses = priced
        if best is None or error < best[2]:
            best, roof = (cells, solution, error), ceiling
        if error <= TARGET_ERROR or not any(c.segments and c.segments.error for c in cells) \
                or time.perf_counter() >= deadline or (stop is not None and stop()):
            break
        if _roi_binds(model, solution):
            # Its answer has no bound (`_unbounded_where_roi_binds`), which a finer cut would
            # not give it, only a plan returning a little more: trial 19's 20 x 4 request with
            # a brand group over an S-curve at a target of 5 had a plan in 0.6 s, then the finer
            # cut's MILP took 12.9 s of the 15 s limit and found nothing.
            round_by = min(deadline, time.perf_counter() + max(
                ROUND_LEAST, ROUND_TIMES * (time.perf_counter() - round_started)))
        factor = max(0.5 * TARGET_ERROR / error, 1e-3)
        chosen = None if losses is None else _finer(model, cells, losses, error)
        # A finer cut takes at least as long a channel as this one: a round whose cut would end
        # past the deadline ends without a plan, and its cut heard the deadline late (1,500 x
        # 52 S-curves with capped weeks, loaded: a plan at 3.3 s of a 5 s limit, then a cut
        # stopped 0.6 s past the deadline, and the answer 0.2 s past the margin).
        share = 1.0 if chosen is None else len(chosen) / len(problem.channels)
        if time.perf_counter() + cutting * share > deadline:
            break
        if chosen is None:
            tolerance *= factor
        else:
            finer[chosen] *= factor
    assert best is not None
    cells, solution, error = best
    # A status is a promise: the plan within TARGET_ERROR of the true optimum, which `error`
    # bounds where the plan has a bound (its gap is in `error`). A solver's "optimal" for the
    # segments is less than that; a plan stopped at the limit with its bound within it, proven.
    proven = solution.gap is not None and error <= TARGET_ERROR + PROVEN_SLACK
    if (solution.status == "optimal") != proven:
        solution = replace(solution, status="optimal" if proven else "feasible")
    if problem.objective == "target_roi" and float(np.sum(solution.spend)) <= EPS < model.budget:
        # No plan that spends found on the pieces: one found on the true curves may still meet
        # the target (`_roi_plans`). Its distance from the most return is not known.
        rules, by = rules_but_roi(model, cells), apart_by()
        plans = _roi_plans(model, cells, rules, by, stop)
        apart = _roi_apart(model, cells, started, by, stop, plans, rules)
        if apart is not None:
            return apart
        if plans:
            solution = replace(solution, spend=plans[0], status="feasible", gap=None)
            error = math.inf
    first = allocation(model, cells, solution, error, time.perf_counter() - started,
                       stopped=stop is not None and stop())
    if problem.objective == "target_roi" and first.spend == 0 < model.available:
        # Spending nothing meets any target ROI, and answers none: the request asked for a
        # return.
        apart = _roi_apart(model, cells, started, apart_by(), stop)
        if apart is not None:
            return apart
        raise _roi_refused(model, cells, [], deadline, stop)
    if model.budget <= EPS and problem.objective != "min_spend":
        # Nothing to spend, so no cell has a curve to price: the next unit's worth is read off
        # the curves where it could go (the models priced it 0, or at a deal's value per unit,
        # which one unit cannot buy).
        first = replace(first, marginal_value_of_budget=ratio(first_unit_value(model)))
    answer = first
    # Each rounded plan tried: where none meets target_roi, the best names the target it meets.
    tried = [first]
    for _ in range(REPAIRS):
        short = _roi_short(model, cells, answer) if problem.objective == "target_roi" else \
            _return_short(model, cells, answer)
        if short is None:
            break
        # Rounded short of its target (its curves cut, the chords of an S-curve's convex part
        # above the curve; the returns rounded cell by cell): under target_roi a few cents
        # taken off where the next unit earns least, under min_spend whole units added where
        # it earns most. The budget's price is the first answer's (pricing again takes time).
        mended = _cut(model, cells, answer, short) if problem.objective == "target_roi" else \
            _add(model, cells, answer, short)
        if mended is None:
            break
        solution = replace(solution, spend=mended)
        answer = replace(allocation(model, cells, solution, error,
                                    time.perf_counter() - started, stopped=True),
                         marginal_value_of_budget=first.marginal_value_of_budget)
        tried.append(answer)
    if problem.objective == "min_spend" and answer is not first:
        # The units added raised the spend the bound is relative to; the least spend it proved
        # stands (`error` was the solver's plan's).
        least = float(np.sum(best[1].spend)) * (1 - error)
        spent = float(answer.spend) / model.unit
        answer = replace(answer, approximation_error=round(max(spent - least, 0.0) / spent, 8))
    if answer.status == "optimal" and answer.approximation_error > TARGET_ERROR + PROVEN_SLACK:
        # The rounding lost more return (under min_spend: the units added cost more) than the
        # bound had left to spare.
        answer = replace(answer, status="feasible")
    if problem.objective == "min_spend":
        if _return_short(model, cells, answer) is None:
            return answer
        return _most_return_cut(model, cells, started, deadline, stop)
    if _roi_short(model, cells, answer) is None:
        if roof is None:
            return _unbounded_where_roi_binds(model, answer)
        # The frontier's bound holds over every plan meeting the target: taken over the
        # rounded plan as answered (its cents cut where it fell short).
        error = _under(model, cells, _rounded_spend(model, cells, answer), roof)
        return replace(answer, approximation_error=round(error, 8),
                       status="optimal" if error <= TARGET_ERROR + PROVEN_SLACK else "feasible")
    rules, by = rules_but_roi(model, cells), apart_by()
    scaled = _scaled(model, cells, solution.spend, rules, started, by, stop)
    if scaled is not None:
        return scaled
    apart = _roi_apart(model, cells, started, by, stop, rules=rules)
    if apart is not None:
        return apart
    raise _roi_refused(model, cells, tried, deadline, stop)


# The conflicts' checks solve a request with a fix applied by this (`infeasibility.SOLVE`).
infeasibility.SOLVE = solve


def _roi_plans(model: ScaledProblem, cells: Cells, rules: Allows, by: float,
               stop: Stop | None) -> list[Floats]:
    """Plans every rule but target_roi allows (`rules`), found on the true curves apart from
    the solver's pieces, which lie below a concave curve's first units and above an S-curve's
    convex part: the best cell's whole units (`best_roi_plan`), the plan holding every group's
    share that returns most per unit (`share_roi_plan`), every channel at its floor
    (`floor_plan`), and the `min_if_used` channel whose `min` returns most per unit at it
    (`used_floor_plan`). Each is made only before the instant `by` and unstopped (they took up
    to 3 s at 53 x 13, past the limit), but for the first, the best cell's (0.08 s at 50 x 13):
    the rules' model took the 0.2 s left after trial 20's MILP, and no plan was made, where
    letting the shares' plan begin too took its LP 0.8 s past the instant."""
    makers: list[Callable[[], Floats | None]] = [
        lambda: best_roi_plan(model, cells), lambda: share_roi_plan(model, cells, by),
        lambda: floor_plan(model, cells), lambda: used_floor_plan(model, cells)]
    plans = []
    for n, make in enumerate(makers):
        if (n and time.perf_counter() >= by) or (stop is not None and stop()):
            break
        plan = make()
        # The best cell alone breaks a group's `min_share` that its rounding holds (the share
        # moved to the group's members, as `_scaled` rounds each scale): trial 20's 19.05 on a
        # concave curve, 2.86 of it onto brand's S-curve, the one plan made in the 0.2 s left.
        if plan is not None and float(plan.sum()) > 0 and \
                any(rules(spend) for spend in (plan, rounded_plan(model, cells, plan))):
            plans.append(plan)
    return plans


def _scaled(model: ScaledProblem, cells: Cells, spend: Floats, rules: Allows,
            started: float, by: float, stop: Stop | None) -> Allocation | None:
    """The plan `spend` (per cell, scaled) at the largest scale found that meets target_roi
    rounded, on the true curves, within every other rule (a deal stays bought whole):
    `feasible`, its distance from the most return unknown; None where no scale found does.
    Every curve's return grows with its spend and a concave one's return per unit falls, so
    the largest scale that meets the target returns most of the plan's scales: doublings up
    from a plan that meets it, halvings down from one that does not, then a bisection.
    Where the target binds, the pieces' chords above an S-curve's convex part promise that
    part a return its first units lack: trial 19's 20 x 4 request with a brand group at
    `min_share` 0.15 over an S-curve and a deal, at a target of 5, had a plan of 21,869.32
    returning 4.997377 a unit, which `_cut` cannot mend without breaking the share, and was
    answered 0.20 spent for 1.04 (`share_roi_plan`'s plan of three cells of a few cents, which
    scaled up is worth more: the plan of the shares' LP is the most per unit, not the most).
    Each scale tried is a rounding of the whole plan (up to SCALE_STEPS + SCALE_BISECTIONS):
    they end at the instant `by` or a stop, the largest found so far kept, and the bisection
    once its ends are less than a unit of spend apart."""
    target = float(model.problem.target_roi or 0)
    units = float(spend.sum()) * model.unit * 10 ** model.problem.decimals

    def late() -> bool:
        return time.perf_counter() >= by or (stop is not None and stop())

    def meets(scale: float) -> Floats | None:
        amounts = rounded_plan(model, cells, spend * scale)
        spent = float(amounts.sum())
        if spent <= 0 or float(model.true_returns(cells, amounts).sum()) < \
                target * spent * (1 - 1e-12) or \
                not rules(amounts):
            return None
        return amounts

    # The largest scale that meets the target lies in [low, high).
    low, plan = 1.0, meets(1.0)
    factor = 2.0 if plan is not None else 0.5
    for _ in range(SCALE_STEPS):
        scale = low * factor
        if units * scale < 1 or late():
            break
        found = meets(scale)
        if plan is not None and found is None:
            break
        low = scale
        if plan is None and found is not None:
            plan = found
            break
        plan = found
    if plan is None:
        return None
    high = 2 * low
    for _ in range(SCALE_BISECTIONS):
        if (high - low) * units < 1 or late():
            break
        middle = (low + high) / 2
        found = meets(middle)
        low, high, plan = (middle, high, found) if found is not None else (low, middle, plan)
    try:
        answer = allocation(model, cells, Solution(plan, "feasible", None, "HiGHS", None, 0.0),
                            math.inf, time.perf_counter() - started,
                            stopped=stop is not None and stop())
    except Infeasible:
        # No split of its cents holds a group's share (`assembly`): this plan is none, the
        # request may have another (a fuzzed share_roi_plan at 0.7 of spend by 3e-6 was
        # answered "lower the minimum share of group g by 0.000003", no fix applied).
        return None
    if answer.spend > 0 and _roi_short(model, cells, answer) is None:
        return _unbounded_where_roi_binds(model, answer)
    return None


def _roi_apart(model: ScaledProblem, cells: Cells, started: float, by: float,
               stop: Stop | None, plans: list[Floats] | None = None,
               rules: Allows | None = None) -> Allocation | None:
    """The first of `_roi_plans` (`plans` where made already) that meets target_roi at some
    scale, at the largest found (`_scaled`), made by the instant `by` and scaled by it or
    APART_LEAST seconds after they are made (a plan of cents scaled up is worth thousands);
    None where none does. `rules`: whether a plan keeps every rule but target_roi (`rules_but_roi`), where
    made already."""
    if plans is None and time.perf_counter() >= by:
        return None
    rules = rules_but_roi(model, cells) if rules is None else rules
    plans = _roi_plans(model, cells, rules, by, stop) if plans is None else plans
    by = max(by, time.perf_counter() + APART_LEAST)
    for plan in plans:
        answer = _scaled(model, cells, plan, rules, started, by, stop)
        if answer is not None:
            return answer
    return None


def _roi_refused(model: ScaledProblem, cells: Cells, tried: list[Allocation],
                 deadline: float, stop: Stop | None) -> Exception:
    """Why no `target_roi` plan is answered, where neither the solver's rounded plans `tried`
    (the first and each cut of it) nor `_roi_plans` meets the target on the true curves: no
    plan reaches it (`unreachable_roi`); else target_roi lowered to what the best of `tried`
    that spends returns per unit on the true curves, down to the ratios' places, which that
    plan then meets (a cut can lose more than it mends: an S-curve's best cell cut away named
    2.104357 where the first plan reached 5.776048); else the elastic model's changes; else
    target_roi lowered to what the plans of `unreachable_roi` reach (`found_none`).
    `SolveTimeout` only where the time ran out, or the solve was stopped, before any of these:
    "no plan … found within 10 s" was said of plans a cent short, or of none, in a fraction
    of a second."""
    unreachable = unreachable_roi(model, cells, deadline)
    if unreachable:
        return Infeasible(checked(model, unreachable))
    target = model.problem.target_roi
    assert target is not None
    spends = [_rounded_spend(model, cells, answer) for answer in tried if answer.spend > 0]
    if spends:
        roi = max(float(model.true_returns(cells, spend).sum()) / float(spend.sum())
                  for spend in spends)
        reached = Decimal(repr(roi)).quantize(RATIO_PLACES, rounding=ROUND_FLOOR)
        return Infeasible(checked(model, [Conflict(
            "target_roi", target - reached, f"lower target_roi to at most {reached}: the best "
            f"plan found, rounded to the cent, returns that much per unit spent")]))
    if stop is not None and stop():
        # Naming the elastic model's changes takes a second or more: a stop is heard first.
        return SolveTimeout("stopped before any plan was found")
    found = conflicts(model, cells, deadline) or \
        checked(model, unreachable_roi(model, cells, deadline, found_none=True))
    if found or time.perf_counter() < deadline:
        return Infeasible(found)
    return SolveTimeout(f"no plan meeting target_roi found within "
                        f"{model.problem.time_limit:g} s")


def _roi_conflicts(model: ScaledProblem, cells: Cells, deadline: float) -> list[Conflict]:
    """The conflicts of a `target_roi` request named on `cells` (its first cut), else its
    unreachable target (empty where neither is named), by NAMED_CHECKS checks before
    `deadline`; none once the answer's margin is spent (`infeasibility.given`)."""
    by = deadline - NAMED_CHECKS * infeasibility.CHECK_SECONDS
    named = conflicts(model, cells, by)
    if named or infeasibility.given(by) <= 0:
        return named
    return checked(model, unreachable_roi(model, cells, by, found_none=True))


def _under(model: ScaledProblem, cells: Cells, spend: Floats, ceiling: float) -> float:
    """How far `ceiling` (scaled) lies above the plan `spend`'s return on the true curves,
    relative to it."""
    true = float(model.true_returns(cells, spend).sum())
    return max(ceiling / true - 1, 0.0) if true > EPS else math.inf


def _roi_binds(model: ScaledProblem, solution: Solution) -> bool:
    """Whether the solver's `target_roi` plan returns on its pieces within ROI_BINDS of the
    target times its spend."""
    target = model.problem.target_roi
    spent = float(np.sum(solution.spend))
    return model.problem.objective == "target_roi" and target is not None and spent > EPS and \
        solution.model_return <= float(target) * spent * (1 + ROI_BINDS)


def _unbounded_where_roi_binds(model: ScaledProblem, answer: Allocation) -> Allocation:
    """`answer`, without a bound where its target ROI may bind. The curves' rises loosen the
    target's row as well as raise the return, so the true optimum may spend more than the
    model's row let this plan (one Hill curve at a target of 3: 0.14 % more return than an
    `optimal` answer whose bound said 2e-5, trial 18f), which the bound does not count."""
    target = model.problem.target_roi
    # A target of 0 never binds: no plan returns less than nothing.
    if target is None or target <= 0 or answer.spend <= 0:
        return answer
    slack = Decimal(repr(max(ROI_BINDS, 2 * answer.approximation_error)))
    if answer.expected_return > target * answer.spend * (1 + slack):
        return answer
    return replace(answer, status="feasible", approximation_error=math.inf)


def _roi_short(model: ScaledProblem, cells: Cells, answer: Allocation) -> float | None:
    """What the rounded `target_roi` plan's return on the true curves lacks of target_roi ×
    spend (scaled; None when it meets the target or the objective is another). The answer's
    returns are rounded to the cent cell by cell: 0.04 spent at 11.7 needs 0.468, and a true
    0.467624 was answered as 0.47, meeting it (trial 18e). Floats' noise (1e-12 of the need)
    does not count as short: a linear channel at exactly the target ROI meets it. (The
    answer's return, rounded cell by cell, may show less: 0.01 returning 0.2338 shows 0.23.)"""
    target = model.problem.target_roi
    if model.problem.objective != "target_roi" or target is None:
        return None
    return _short_of(model, cells, answer, target * answer.spend, shown=False)


def _return_short(model: ScaledProblem, cells: Cells, answer: Allocation) -> float | None:
    """What the rounded `min_spend` plan's return lacks of target_return, as `_roi_short`
    (trial 18e: 9 of 40 small requests with S-curves and deals returned up to 61.43 less)."""
    target = model.problem.target_return
    if model.problem.objective != "min_spend" or target is None:
        return None
    return _short_of(model, cells, answer, target)


def _short_of(model: ScaledProblem, cells: Cells, answer: Allocation, need: Decimal,
              shown: bool = True) -> float | None:
    """What the rounded plan's return lacks of `need` (money), scaled: on the true curves
    (beyond floats' noise, 1e-12 of it) or, if `shown`, as answered (its cells' returns
    rounded)."""
    earned = float(model.true_returns(cells, _rounded_spend(model, cells, answer)).sum())
    wanted = float(need) / model.unit
    short = wanted - earned
    if shown:
        short = max(short, float(need - answer.expected_return) / model.unit)
    return short if short > 1e-12 * wanted else None


def _add(model: ScaledProblem, cells: Cells, answer: Allocation, short: float) -> Floats | None:
    """The rounded plan of `answer` with whole units added, where the next unit earns most,
    until its return on the true curves makes up `short` (at most ADDS steps, `_add_units`);
    None where no cell can take a unit."""
    spend = _rounded_spend(model, cells, answer)
    wanted = float(model.problem.target_return or 0) / model.unit
    for step in range(ADDS):
        more = _add_units(model, cells, spend, short)
        if more is None:
            return None if step == 0 else spend
        spend = more
        short = wanted - float(model.true_returns(cells, spend).sum())
        if short <= 1e-12 * wanted:
            break
    return spend


def _most_return_cut(model: ScaledProblem, cells: Cells, started: float, deadline: float,
                     stop: Stop | None) -> Allocation:
    """The `min_spend` answer where its pieces found no plan meeting target_return to the cent:
    they lie below a concave curve, and rounding to the cent can lose one (trial 18f: a target
    1.80 below the most return refused with no change named; "lower target_return by
    123293.21", applied, a cent short). The request is solved for the most return in the time
    left; that plan, where it meets the target, is cut to it where its last units earn least
    (`_trim`), `feasible`. Else, where that plan is proven within 0.1 % of the most return or
    its bound is below the target, `Infeasible`: target_return lowered to what that plan
    returns (which it meets), beside the elastic model's other changes where there is time to
    name them by `deadline` (`infeasibility.conflicts`, the request's own where no plan meets
    its rules); `SolveTimeout` where the time ran out first."""
    problem = model.problem
    need = problem.target_return
    assert need is not None
    try:
        most, spend, reached = _most_return(model, cells, started, stop)
    except Infeasible:
        refused = conflicts(model, cells, deadline)
        if refused:
            raise Infeasible(refused) from None
        raise
    except SolveTimeout:
        if stop is not None and stop():
            raise
        raise SolveTimeout(f"no plan meeting target_return to the cent found within "
                           f"{problem.time_limit:g} s") from None
    if reached < need:
        if most.status != "optimal" and \
                float(most.expected_return) * (1 + most.approximation_error) >= float(need):
            # Stopped before its bound ruled the target out (trial 18g: at a 2 s limit,
            # "lower target_return by 44401.97" where the same request at 20 s has a plan).
            raise SolveTimeout(f"no plan meeting target_return to the cent found within "
                               f"{problem.time_limit:g} s")
        refused = conflicts(model, cells, deadline) if time.perf_counter() < deadline else []
        together = [c for c in refused if not c.alone]
        if all(c.constraint == "target_return" for c in together):
            # The target lowered alone, as far as the plan of most return needs (below).
            together = []
        alone = [c for c in refused if c.alone and c.constraint != "target_return"]
        raise Infeasible(_enough_together(model, together, started, stop) + alone
                         + [_lowered(need - reached, alone=True)])
    stopped = stop is not None and stop()
    left = problem.time_limit - (time.perf_counter() - started)
    # Trimmed to a unit above the target on the true curves, its cells' returns answered
    # rounded may show less: then to half a unit more per cell that spends, then not at all.
    margins = (1.0, 0.5 * int(np.count_nonzero(spend > EPS)))
    for plan in [_trim(model, cells, spend, margin) for margin in margins] + [spend]:
        spent = float(plan.sum())
        error = _spend_error(model, cells, spent, left - min(
            ASSEMBLY_SHARE * problem.time_limit + ASSEMBLY_FIXED, ASSEMBLY_CAP))
        # Not a solver's plan: no gap, and so never `optimal` (see `solve`).
        answer = allocation(model, cells, Solution(plan, "feasible", None, most.solver, None,
                                                   float(model.true_returns(cells, plan).sum())),
                            error, time.perf_counter() - started, stopped=stopped)
        if _return_short(model, cells, answer) is None:
            return answer
    raise AssertionError("the plan of most return met target_return before it was assembled")


def _most_return(model: ScaledProblem, cells: Cells | None, started: float,
                 stop: Stop | None) -> tuple[Allocation, Floats, Decimal]:
    """The request solved for the most return in what is left of its time limit since
    `started`: the answer, its plan per cell of `cells` (the request's cut curves, made here
    where None) and what it returns to the cent, the less of as answered and on the true
    curves (rounded down), which a target must not pass for the plan to meet it."""
    problem = model.problem
    most = solve(replace(problem, objective="max_return", target_return=None,
                         time_limit=problem.time_limit - (time.perf_counter() - started)),
                 stop=stop)
    if cells is None:
        cells = model.cells(FIRST_TOLERANCE)
    spend = _rounded_spend(model, cells, most)
    earned = Decimal(repr(float(model.true_returns(cells, spend).sum()) * model.unit))
    return most, spend, min(most.expected_return,
                            earned.quantize(quantum(problem.decimals), rounding=ROUND_FLOOR))


def _enough_together(model: ScaledProblem, together: list[Conflict], started: float,
                     stop: Stop | None) -> list[Conflict]:
    """The changes the elastic model names together, with target_return lowered as far as the
    plan of most return of the request so changed falls short of it, so that applied they
    are enough: the elastic model's pieces and the cents can leave them short (trial 18f `k5`:
    a channel's max and a period's cap raised and the target lowered, 1.98 short). As named
    where one is a change that cannot be applied (a group's share: `applied`) or no plan of
    the changed request was found in time."""
    if not together:
        return together
    problem = model.problem
    changed: Problem | None = problem
    for conflict in together:
        if conflict.constraint != "target_return" and changed is not None:
            changed = applied(changed, model.reserve, conflict)
    if changed is None:
        return together
    try:
        _, _, reached = _most_return(ScaledProblem(changed), None, started, stop)
    except (Infeasible, SolveTimeout):
        return together
    assert problem.target_return is not None
    lowered = [c.change for c in together if c.constraint == "target_return"]
    if problem.target_return - (lowered[0] if lowered else 0) <= reached:
        return together
    return [c for c in together if c.constraint != "target_return"] + \
        [_lowered(problem.target_return - reached, alone=False)]


def _lowered(change: Decimal, *, alone: bool) -> Conflict:
    return Conflict("target_return", change, ADVICE["target_return"].format(amount=change),
                    alone=alone)


def _trim(model: ScaledProblem, cells: Cells, spend: Floats, margin: float) -> Floats:
    """`spend` (whole units, scaled, returning at least target_return on the true curves) with
    whole units taken off where the last unit earns least, while it returns target_return and
    `margin` units more, every channel keeps its floor (a `min_if_used` one its `min`) and
    every group its share; at most ADDS steps, each trying the TRIM_TRIES cells that earn
    least. A deal stays whole."""
    problem = model.problem
    unit = 1.0 / (model.unit * 10 ** problem.decimals)
    floors = np.maximum(model.lower, [model.money(c.min) if c.min_if_used and c.min else 0.0
                                      for c in problem.channels])
    wanted = model.money(problem.target_return or Decimal(0)) + margin * unit
    for _ in range(ADDS):
        returns = model.true_returns(cells, spend)
        surplus = float(returns.sum()) - wanted
        lost = (returns - model.true_returns(cells, np.maximum(spend - unit, 0.0))) / unit
        channels = np.bincount(cells.channel, weights=spend, minlength=len(problem.channels))
        room = np.floor(np.minimum(spend, channels[cells.channel] - floors[cells.channel])
                        / unit + ROOM_NOISE)
        open_ = np.flatnonzero(~cells.is_deal & (room >= 1))
        for i in open_[np.argsort(lost[open_], kind="stable")][:TRIM_TRIES].tolist():
            units = int(min(room[i], surplus / max(float(lost[i]), EPS) / unit))
            while units >= 1:
                less = spend.copy()
                less[i] -= units * unit
                if float(model.true_returns(cells, less).sum()) >= wanted and \
                        _shares_hold(model, cells, less):
                    break
                units //= 2
            if units >= 1:
                spend = less
                break
        else:
            break
    return spend


def _add_units(model: ScaledProblem, cells: Cells, spend: Floats, short: float) -> Floats | None:
    """`spend` (whole units, scaled) with enough units added to the cell whose next unit earns
    most, where its cell, channel, period and the money have room and every group's share still
    holds, to make up `short` of return at its slope (at least a unit; the curve's bend may ask
    for more); None where no cell can take a unit. A `min_if_used` channel left unused stays
    so (a unit would not reach its floor); a deal is bought whole or not."""
    problem = model.problem
    unit = 1.0 / (model.unit * 10 ** problem.decimals)
    slopes = model.true_slopes(cells, spend)
    channels = np.bincount(cells.channel, weights=spend, minlength=len(problem.channels))
    periods = np.bincount(cells.period, weights=spend, minlength=len(model.periods))
    caps = np.array([math.inf if p.cap is None else model.money(p.cap) for p in model.periods])
    unused = np.array([c.min_if_used and (c.min or 0) > 0 for c in problem.channels]) \
        & (channels <= EPS)
    room = np.floor(np.minimum.reduce([
        cells.upper - spend, np.asarray(model.upper)[cells.channel] - channels[cells.channel],
        caps[cells.period] - periods[cells.period],
        np.full(len(cells), model.budget - float(spend.sum()))]) / unit + ROOM_NOISE)
    open_ = np.flatnonzero(~np.isnan(slopes) & (slopes > 0) & (room >= 1)
                           & ~unused[cells.channel])
    for i in open_[np.argsort(-slopes[open_], kind="stable")].tolist():
        more = spend.copy()
        # At least a unit: a concave Hill curve's slope at 0 is infinite.
        more[i] += min(max(math.ceil(short / slopes[i] / unit), 1), room[i]) * unit
        if _shares_hold(model, cells, more):
            return more
    return None


def _shares_hold(model: ScaledProblem, cells: Cells, spend: Floats) -> bool:
    """Whether every group's members hold their share of the plan `spend` (float noise aside)."""
    channels = np.bincount(cells.channel, weights=spend, minlength=len(model.problem.channels))
    total = float(channels.sum())
    for group in model.problem.groups:
        mine = float(channels[model.members(group)].sum())
        if group.min_share is not None and mine < float(group.min_share) * total - EPS:
            return False
        if group.max_share is not None and mine > float(group.max_share) * total + EPS:
            return False
    return True


def _rounded_spend(model: ScaledProblem, cells: Cells, answer: Allocation) -> Floats:
    """Per cell, the rounded plan of `answer` (scaled)."""
    unit = 1.0 / (model.unit * 10 ** model.problem.decimals)
    figures = answer.figures
    # Without periods a channel's one cell holds its amount (the grid has no columns).
    units = figures.cell_amounts[cells.channel, cells.period] if figures.periods else \
        figures.amounts[cells.channel]
    spend: Floats = units * unit
    return spend


def _cut(model: ScaledProblem, cells: Cells, answer: Allocation, short: float) -> Floats:
    """The rounded plan of `answer`, less whole units in the cells whose next unit earns least,
    where that is below the target ROI and its channel is above its floor, at most each cell's
    spend above its floor: in each, enough to make up what the plan lacks of the target at the
    cell's slope (each unit taken off lowers the target's need by the target and the return by
    about the slope), stepped again on the true curve at the new spend while it still lacks (at
    most CUT_STEPS times), never breaking a group's share; the next cell only where the plan
    still lacks, and again from the first where the pass made up some of it (at most
    CUT_PASSES times). On a concave stretch a step never takes too much; where the slope nears
    the target, by a peak of return per unit, each makes up about half of what is left:
    r4_fix of trial 18f, 5.057271 of an S-curve whose peak returns 5.0572718 a unit, was
    still short after the four cuts of as many answers, and answered no plan. Trial 18h (53
    channels × 13 weeks, three groups' max shares): one cell cut an answer left the plan short
    after four, each cut undone in part by the rounding keeping a share, and its best cell's 4
    cents were answered."""
    target = float(model.problem.target_roi or 0)
    unit = 1.0 / (model.unit * 10 ** model.problem.decimals)
    spend = _rounded_spend(model, cells, answer)
    lower = np.asarray(model.lower)
    by_channel = np.bincount(cells.channel, weights=spend, minlength=len(model.problem.channels))
    for _ in range(CUT_PASSES):
        lacked = short
        slopes = model.true_slopes(cells, spend)
        room = np.minimum(spend, by_channel[cells.channel] - lower[cells.channel])
        open_ = np.flatnonzero(~np.isnan(slopes) & (slopes < target) & (room >= unit * (1 - EPS)))
        for i in open_[np.argsort(slopes[open_], kind="stable")].tolist():
            one = Cells([cells[i]])
            c = cells.channel[i]
            # Cut to nothing, a plan spends nothing, which is never target_roi's answer; a
            # channel keeps its floor over the cells cut before.
            most = min(math.floor(min(spend[i], by_channel[c] - lower[c]) / unit + EPS),
                       math.floor(float(spend.sum()) / unit + EPS) - 1)
            if most < 1:
                continue
            # What the plan lacks with k units off cell i: the others' part of it stays
            # `short` less what cell i lacks now.
            alone = short - (target * spend[i] - float(model.true_returns(one, spend[i:i + 1])[0]))
            step, slope, lacks = 0, float(slopes[i]), short
            # The step that lacks least: below the cell's slope its units can earn past the
            # target.
            taken, least = 0, short
            for _ in range(CUT_STEPS):
                step = min(step + math.ceil(lacks / (target - slope) / unit), most)
                kept = np.array([spend[i] - step * unit])
                lacks = alone + target * kept[0] - float(model.true_returns(one, kept)[0])
                slope = float(model.true_slopes(one, kept)[0])
                if lacks < least:
                    taken, least = step, lacks
                if step == most or lacks <= 1e-12 * target * float(spend.sum()) or \
                        slope >= target:
                    break
            cut = spend.copy()
            cut[i] -= taken * unit
            while taken and not _shares_hold(model, cells, cut):
                # A group's share the cut breaks would be kept by the rounding, which moves
                # the money back where it earns least (trial 18h: to a points curve's first
                # piece).
                taken //= 2
                cut[i] = spend[i] - taken * unit
                least = alone + target * cut[i] - float(model.true_returns(one, cut[i:i + 1])[0])
            if taken and least < short:
                spend, short = cut, least
                by_channel[c] -= taken * unit
            if short <= 1e-12 * target * float(spend.sum()):
                return spend
        if short >= lacked:
            break
    return spend


def _concave(model: ScaledProblem, cells: Cells, deadline: float,
             start: period_prices.Start | None, stop: Stop | None,
             reach: float | None = None) -> tuple[Solution | None, period_prices.Start | None]:
    """The route of a concave problem with no deals or conditional floors: the greedy, with
    prices on the periods' caps and the groups' rows in an LP when there are any (starting from
    the last round's prices, `start`), or under target_roi or min_spend its frontier
    (`roi_frontier`, its steps from the last round's `reach`; `spend_frontier`); no solution
    for the MILP's route (any other problem, or one whose rows the priced greedy's LP could not meet)."""
    if roi_frontier.applies(model, cells):
        return roi_frontier.solve(model, cells, deadline, reach, start)
    if spend_frontier.applies(model, cells):
        return spend_frontier.solve(model, cells, deadline, start)
    if not greedy.concave(model, cells):
        return None, None
    if period_prices.applies(model):
        return period_prices.solve(model, cells, deadline, start, stop)
    return greedy.solve(model, cells), None


def _finer(model: ScaledProblem, cells: Cells, losses: Floats,
           error: float) -> npt.NDArray[np.intp] | None:
    """The channels whose curves the next round cuts finer, given the plan's `error` (the
    prices' bound) and each cell's share of it (`ScaledProblem.priced_bound`): the Hill
    channels holding most of it, by falling share, until the others hold at most LEFT_OVER of
    TARGET_ERROR; None where the Hill channels do not hold that much (every curve is cut finer,
    as before). A linear or points curve is its segments: cut finer it loses nothing.

    The bound gathers on the channels whose slopes near the plan's prices: cut finer
    everywhere, 1,000 near-linear channels x 52 weeks (`bench/shapes.py`'s `near_linear`)
    spent 0.7 s of CPU on a second cut whose loss three in four of them did not hold."""
    hill = np.array([isinstance(c.response, Hill) for c in model.problem.channels], dtype=bool)
    held = np.bincount(cells.channel, weights=np.maximum(losses, 0.0),
                       minlength=len(hill))
    total = float(held.sum())
    order = np.flatnonzero(hill)[np.argsort(-held[hill], kind="stable")]
    left = total - np.cumsum(held[order])
    # Of the bound, what the channels not cut finer may keep.
    keep = total * LEFT_OVER * TARGET_ERROR / error
    enough = np.flatnonzero(left <= keep)
    return None if not len(enough) else order[:enough[0] + 1]


def _error(model: ScaledProblem, cells: Cells, solution: Solution) -> float:
    """`approximation_error` of the plan; for a plan its solver left without a bound (a MILP
    stopped before its root), with the bound of the relaxation `_relaxed_gap` solves standing
    in for the missing gap: without one, the error would count only the curves' rises and
    claim a bound nothing proves (a plan 0.28 % short claimed 0.00043). Infinite where the
    plan's model returns nothing and the bound is above it (no relative bound is finite)."""
    if solution.gap is not None:
        return approximation_error(model, cells, solution)
    gap = _relaxed_gap(model, cells, solution)
    return math.inf if math.isinf(gap) else \
        approximation_error(model, cells, replace(solution, gap=gap))


def _spend_error(model: ScaledProblem, cells: Cells, spend: float, seconds: float) -> float:
    """`approximation_error` of a `min_spend` plan spending `spend` (scaled): how much less a
    plan whose return on the true curves reaches target_return could spend, relative to
    `spend`. A curve cell's true return is at most its pieces' plus its rise above them
    (weight · the segments' error), and its pieces' at most their concave envelope's, so such a
    plan returns at least target − Σ rises on the envelopes, and spends at least the least spend
    of that: the Lagrangian bound (`_Relaxation.least`: every row but the return floor and the
    cells' caps dropped, a deal channel bought once), or where that does not prove
    TARGET_ERROR, the envelope LP's optimum, every row kept and the binaries relaxed (given
    `seconds`). 0 for a plan of nothing: no plan spends less."""
    if spend <= EPS:
        return 0.0
    assert model.problem.target_return is not None
    target = model.money(model.problem.target_return) - roi_frontier.rises(cells)
    least = _Relaxation(cells).least(target)
    end = time.perf_counter() + seconds
    for exact, relax in ((frozenset[int](), True), (None, False)):
        if spend - least <= TARGET_ERROR * spend or time.perf_counter() >= end:
            break
        form = formulate(model, cells, exact=exact)
        form.row_lower[form.row_index("target_return")] = target
        run = run_highs(form, end - time.perf_counter(), relax=relax)
        if run.bound is not None:
            least = max(least, run.bound)
    return max(spend - least, 0.0) / spend


def _relaxed_gap(model: ScaledProblem, cells: Cells, solution: Solution) -> float:
    """How far the segments' optimum can lie from the plan's model objective, as the MILP's
    gap is read by `approximation_error` (the model return times 1 + gap bounds the model's
    best return, with the plan's spend for `max_profit`; for `min_spend`, the plan's spend
    over the least spend, less 1), from a Lagrangian relaxation that keeps only the budget
    row (the return floor for `min_spend`) and each cell's cap: every other row dropped, a
    deal bought in its best period alone, so the bound holds for every objective.

    Max objectives: no plan's model objective exceeds U(μ) = μ·B + Σ_cells max over x ≤ cap of
    (curve(x) − (μ + θ)·x) for any price μ ≥ 0 (θ = 1 for `max_profit`), the maximum at a knot
    of the curve's concave envelope; μ is bisected towards where the cells' chosen spend meets
    B, and the least U seen is the bound. `min_spend` of a target T: no plan reaching T spends
    less than (T − Σ max (curve(x) − p·x)) / p for any p > 0, bisected the same way.
    """
    relaxation = _Relaxation(cells)
    problem = model.problem
    spend = float(np.sum(solution.spend))
    if problem.objective == "min_spend":
        assert problem.target_return is not None
        least = relaxation.least(model.money(problem.target_return))
        return max(spend - least, 0.0) / spend if spend > EPS else 0.0
    threshold = 1.0 if problem.objective == "max_profit" else 0.0
    objective = solution.model_return - threshold * spend

    def bound(price: float) -> tuple[float, float]:
        most, spent, _ = relaxation.most(price + threshold)
        return price * model.budget + most, spent

    best, spent = bound(0.0)
    high = max(relaxation.steepest - threshold, EPS)
    low = high * LOWEST_PRICE
    if spent > model.budget:
        best = min(best, bound(high)[0], bound(low)[0])
        for _ in range(PRICE_BISECTIONS):
            price = math.sqrt(low * high)
            value, spent = bound(price)
            best = min(best, value)
            low, high = (price, high) if spent > model.budget else (low, price)
    lead = max(best - objective, 0.0)
    if solution.model_return <= EPS:
        return 0.0 if lead <= EPS else math.inf
    return lead / solution.model_return


class _Relaxation:
    """The cells as `_relaxed_gap` prices them: each curve cell's concave envelope (its knots,
    kept once per distinct segments) and each deal channel's cells (one bought at most)."""

    def __init__(self, cells: Cells):
        curve = np.flatnonzero(~cells.is_deal)
        made = np.fromiter((id(cells[i].segments) for i in curve.tolist()), dtype=np.int64,
                           count=len(curve))
        _, firsts, group = np.unique(made, return_index=True, return_inverse=True)
        xs: list[Floats] = []
        ys: list[Floats] = []
        for i in curve[firsts].tolist():
            segments = cells[i].segments
            assert segments is not None
            knots = np.concatenate([[0.0], np.cumsum(segments.lengths)])
            values = np.concatenate([[0.0], np.cumsum(segments.lengths * segments.slopes)])
            xs.append(knots[segments.hull])
            ys.append(values[segments.hull])
        # Each envelope's pieces, in order of falling slope (a concave envelope's own order,
        # up to float noise), by exact integer keys: a piece's rank (how many pieces of any
        # curve rise faster) after its curve's number. For a price, one sorted search counts a
        # curve's pieces rising faster, and the most curve(x) − price·x reaches is their sum of
        # (slope − price) · length: that sum of positive parts is never below the envelope's
        # peak, whatever noise does to the order.
        lengths = np.concatenate([np.diff(x) for x in xs]) if xs else np.zeros(0)
        slopes = np.concatenate([np.diff(y) for y in ys]) / lengths if xs else np.zeros(0)
        sizes = np.array([len(x) - 1 for x in xs], dtype=np.int64)
        self.slopes = np.sort(slopes)
        owner = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        self.span = len(slopes) + 1
        keys = owner * self.span + self._rank(slopes)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.spent = np.concatenate([[0.0], np.cumsum(lengths[order])])
        self.earned = np.concatenate([[0.0], np.cumsum((lengths * slopes)[order])])
        self.group = group.astype(np.int64)
        self.start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)[self.group]
        self.weight = cells.weight[curve]
        deals = np.flatnonzero(cells.is_deal)
        priced = [cell.deal for cell in cells if cell.deal is not None]
        self.cost: Floats = np.array([cost for cost, _ in priced], dtype=np.float64)
        self.value: Floats = np.array([value for _, value in priced], dtype=np.float64)
        # A deal priced past its cell's cap is not bought there.
        self.fits = self.cost <= cells.upper[deals] * (1 + 1e-9) + EPS
        channel = cells.channel[deals]
        # Each deal channel's run of cells (cells come channel by channel).
        self.runs = np.split(np.arange(len(deals)),
                             np.flatnonzero(channel[1:] != channel[:-1]) + 1) if len(deals) \
            else []
        # A price past every curve's first slope and every deal's value per unit buys nothing.
        self.steepest = max(float(np.max(slopes, initial=0.0)) *
                            float(np.max(self.weight, initial=0.0)),
                            float(np.max(np.divide(self.value, self.cost, out=np.zeros(
                                len(self.cost)), where=self.cost > 0), initial=0.0)), EPS)

    def _rank(self, slopes: Floats) -> npt.NDArray[np.int64]:
        """How many of the pieces rise faster than each of `slopes`."""
        rank: npt.NDArray[np.int64] = len(self.slopes) - np.searchsorted(
            self.slopes, slopes, side="right")
        return rank

    def least(self, target: float) -> float:
        """The least spend of any plan returning `target` on these cells' pieces: at least
        (target − Σ max (curve(x) − p·x)) / p for any price p > 0, bisected towards where the
        cells' chosen return meets the target."""
        low, high = self.steepest * LOWEST_PRICE, self.steepest
        least = 0.0
        for _ in range(PRICE_BISECTIONS):
            price = math.sqrt(low * high)
            most, _, earned = self.most(price)
            least = max(least, (target - most) / price)
            low, high = (price, high) if earned >= target else (low, price)
        return least

    def most(self, price: float) -> tuple[float, float, float]:
        """Σ over cells of the most curve(x) − price·x reaches (a deal channel's best cell, or
        nothing), and the spend and return where it is reached."""
        weight = self.weight
        with np.errstate(divide="ignore"):
            level = np.where(weight > 0, price / np.maximum(weight, EPS * EPS), np.inf)
        end = np.searchsorted(self.keys, self.group * self.span + self._rank(level))
        spend = self.spent[end] - self.spent[self.start]
        earn = weight * (self.earned[end] - self.earned[self.start])
        spent, earned = float(spend.sum()), float(earn.sum())
        most = earned - price * spent
        gains = np.where(self.fits, self.value - price * self.cost, -np.inf)
        for run in self.runs:
            top = int(run[np.argmax(gains[run])])
            if gains[top] > 0:
                most += float(gains[top])
                spent += float(self.cost[top])
                earned += float(self.value[top])
        return most, spent, earned
