"""`min_spend` where its pieces miss the target: a plan exists whenever the plan of most return
meets it, and a refused one names changes that work when applied (trial 18f)."""
from dataclasses import replace
from decimal import Decimal as D

import pytest

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
    infeasibility,
    solve,
    solver,
)
from services.budget.optimizer.curves import hill


def problem(*channels, total, **kwargs) -> Problem:
    return Problem(total=D(total), decimals=2, channels=channels, reserve=Reserve(), **kwargs)


def k5(target: str) -> Problem:
    # a: 2 a unit up to 40,000; b: an S-curve whose share of spend is at most 0.5, so b spends
    # at most what a does. Most return: both at 40,000, b split evenly over the two periods
    # (past its inflection, 23,811, the curve is concave there): 80,000 + R(40,000) =
    # 80,000 + 100,000 · 40³ / (40³ + 30³) = 150,329.67.
    return problem(Channel("a", Linear(D(2)), max=D(40_000)),
                   Channel("b", Hill(D(100_000), D(30_000), D(3))),
                   total="100000", objective="min_spend", target_return=D(target),
                   groups=(Group("g", ("b",), max_share=D("0.5")),),
                   periods=(Period("p1", cap=D(30_000)), Period("p2", cap=D(60_000))))


def k5_return(result) -> float:
    # Each period's curve is 0.5 · R(x / 0.5), worked out here on the true curve.
    a, b = result.allocations
    return 2 * float(a.amount) + sum(0.5 * float(hill(2 * float(p.amount), 100_000.0,
                                                       30_000.0, 3.0)) for p in b.periods)


@pytest.mark.parametrize("target", ["150316.94", "150320", "150324.43"])
def test_a_target_the_most_return_meets_is_answered_with_a_plan(target):
    # Trial 18f (`k5_a3`, `k5_150320`, `k5v_same`): refused with no change named, or with the
    # target called 2.16 too high, where the plan of most return meets it by 5 to 12.
    result = solve(k5(target))
    a, b = result.allocations
    assert result.expected_return >= D(target)
    assert k5_return(result) >= float(target)
    assert a.amount <= 40_000 and b.amount <= D("0.5") * result.spend
    for p, cap in zip(range(2), (30_000, 60_000)):
        assert a.periods[p].amount + b.periods[p].amount <= cap
    # Cut from the plan of most return (80,000) where its last units earn least.
    assert result.spend < 80_000
    assert 0 <= result.approximation_error <= 0.001


def test_a_target_just_under_the_most_return_with_floors_and_a_share_is_answered():
    # Trial 18f (`q6_a0`): 1.80 under the most return (108,391.88, all 60,738.30 spent), the
    # pieces of c4's curve fell short of it and the answer was a 422 with no conflict.
    channels = (Channel("c0", Linear(D("1.80")), min=D("3508.19"), min_if_used=True),
                Channel("c1", Linear(D("0.51")), min=D("1306.04"), max=D("3230.75")),
                Channel("c2", Linear(D("0.57")), max=D("117048.51")),
                Channel("c3", Linear(D("2.05")), min=D("46060.45")),
                Channel("c4", Hill(D("18669.16"), D("13355.58"), D(1)), min=D("10995.16"),
                        max=D("14969.63")))
    result = solve(problem(*channels, total="60738.30", objective="min_spend",
                           target_return=D("108390.08"), time_limit=10,
                           groups=(Group("g", ("c0", "c4", "c1"), max_share=D("0.37")),)))
    amount = {a.channel: float(a.amount) for a in result.allocations}
    earned = 1.8 * amount["c0"] + 0.51 * amount["c1"] + 0.57 * amount["c2"] + \
        2.05 * amount["c3"] + 18669.16 * amount["c4"] / (amount["c4"] + 13355.58)
    assert earned >= 108390.08 and result.expected_return >= D("108390.08")
    assert amount["c0"] in (0, 3508.19) or amount["c0"] >= 3508.19
    assert 1306.04 <= amount["c1"] <= 3230.75 and amount["c3"] >= 46060.45
    assert 10995.16 <= amount["c4"] <= 14969.63
    assert amount["c0"] + amount["c4"] + amount["c1"] <= 0.37 * float(result.spend) + 1e-9
    assert result.spend < D("60738.30")


def test_a_plan_with_a_cent_of_room_left_is_found():
    # Trial 18f (`c3fixB`, the named fix of `c3` applied): 33,333.34 of a and the deal meet
    # 500,000 to the cent with every cent of the money and of p1 spent; the rounded plan was
    # a cent short and the cent of room read as 0.99999999864 of a cent, so the answer was
    # "no plan within 30 s" after 0.03 s.
    result = solve(problem(Channel("a", Linear(D(3)), max=D(50_000)),
                           Channel("d", Deal(D(150_000), D(400_000))),
                           total="183333.34", objective="min_spend", target_return=D(500_000),
                           periods=(Period("p1", cap=D("153333.34")),
                                    Period("p2", cap=D(30_000)))))
    assert result.expected_return == D("500000.02")
    assert [a.amount for a in result.allocations] == [D("33333.34"), D("150000.00")]


def q0(target: str) -> Problem:
    # Two points curves under two period caps (38,393.44 in all) and a group's min share: the
    # most return is 69,937.02 on whole cents (69,937.025 with fractions of a cent).
    return problem(
        Channel("c0", Points(((D(0), D(0)), (D("4354.81"), D("8709.62")),
                              (D("8709.62"), D("10887.02"))))),
        Channel("c1", Points(((D(0), D(0)), (D("58646.16"), D("117292.32")),
                              (D("117292.32"), D("146615.40"))))),
        total="52609.85", objective="min_spend", target_return=D(target), time_limit=10,
        periods=(Period("p1", cap=D("21529.48")),
                 Period("p2", weight=D("1.3"), cap=D("16863.96"))),
        groups=(Group("g", ("c0",), min_share=D("0.35")),))


@pytest.mark.parametrize("target", ["193230.24", "69937.03"])
def test_a_lowered_target_named_alone_is_enough_when_applied(target):
    # Trial 18f (`q0`, then `q0_a4`): "lower target_return by 123293.21", applied, left a
    # target of 69,937.03 that no plan in whole cents meets, answered "no plan within 10 s"
    # after 0.01 s. The change is named from the plan of most return, which meets it.
    request = q0(target)
    with pytest.raises(Infeasible) as refused:
        solve(request)
    alone = [c for c in refused.value.conflicts if c.alone]
    assert [c.constraint for c in alone] == ["target_return"]
    assert alone[0].change == D(target) - D("69937.02")
    lowered = replace(request, target_return=request.target_return - alone[0].change)
    result = solve(lowered)
    assert result.expected_return >= lowered.target_return


def test_a_return_floor_refused_by_its_pieces_names_a_change():
    # Trial 18f (`t3_a0`): p's hard min makes every plan spend; no plan returns 100 a unit
    # (p's best is 600 on 150: 4), and the pieces' refusal came with no change named.
    request = problem(Channel("ts", Hill(D(30_000), D(4_000), D("0.1")), min=D(5_000),
                              min_if_used=True),
                      Channel("p", Points(((D(0), D(0)), (D(50), D(10)), (D(150), D(600)),
                                           (D(300), D(700)))), min=D(50)),
                      total="1000000", objective="target_roi", target_roi=D(100))
    with pytest.raises(Infeasible) as refused:
        solve(request)
    [named] = refused.value.conflicts
    assert named.constraint == "target_roi"
    result = solve(replace(request, target_roi=request.target_roi - named.change))
    assert result.expected_return >= (request.target_roi - named.change) * result.spend > 0


def test_changes_named_together_are_enough_when_applied():
    # Trial 18f (`k5`, a target of 250,000): a's max raised by 11,525.46, p2's cap by 10,000
    # and the target lowered by 66,111.00, all applied, still fell 1.98 short: the elastic
    # model's pieces. The target's part is named from the plan of most return of the request
    # so changed.
    request = k5("250000")
    with pytest.raises(Infeasible) as refused:
        solve(request)
    together = {c.constraint: c.change for c in refused.value.conflicts if not c.alone}
    assert set(together) == {"max:a", "period_cap:p2", "target_return"}
    a, b = request.channels
    p1, p2 = request.periods
    changed = replace(request, channels=(replace(a, max=a.max + together["max:a"]), b),
                      periods=(p1, replace(p2, cap=p2.cap + together["period_cap:p2"])),
                      target_return=request.target_return - together["target_return"])
    result = solve(changed)
    assert result.expected_return >= changed.target_return


def test_a_target_is_called_unreachable_only_where_the_plan_of_most_return_rules_it_out():
    # Trial 18g: at a 2 s limit a min_spend target 1.00 under a plan of most return the system
    # had answered was refused "lower target_return by 44401.97": the plan of most return had
    # been stopped early, far from its bound. Stopped at each point of its solve in turn, the
    # answer is a plan, no plan found (SolveTimeout), or a lowering within the 0.1 % that a
    # proven plan of most return may leave (the most is 150,329.67: `k5`).
    asks = [0]

    def count() -> bool:
        asks[0] += 1
        return False

    solve(k5("150320"), stop=count)
    named, ends = [], set()
    for calls in range(0, asks[0] + 1, 4):
        heard = iter(range(calls + 1))
        try:
            solve(k5("150320"), stop=lambda heard=heard: next(heard, None) is None)
            ends.add("plan")
        except Infeasible as refused:
            named += [c.change for c in refused.conflicts if c.constraint == "target_return"]
        except SolveTimeout:
            ends.add("none")
    assert ends == {"plan", "none"}   # stops before and after the plan of most return
    assert all(change <= D("150329.67") * D("0.001") for change in named)


def test_a_plan_cut_from_the_plan_of_most_return_has_a_marginal_value():
    # k5 at a total of 80,000, which the plan of most return spends whole: its pieces miss
    # 150,320 and that plan is cut to 79,993.96. The least spend meeting the target does not
    # fall with more money (a plan within 80,000 is within more, and one past it spends more),
    # so one more unit is worth 0 to min_spend; it was null. Solved again with the total
    # raised, the plan spends the same: (spend(B + d) - spend(B)) / d is 0 at d = 1 and 100.
    request = replace(k5("150320"), total=D(80_000))
    result = solve(request)
    assert result.status == "feasible" and result.spend == D("79993.96")
    assert result.marginal_value_of_budget == 0
    for more in (1, 100):
        again = solve(replace(request, total=request.total + more))
        assert (again.spend - result.spend) / more == result.marginal_value_of_budget


def test_the_target_lowered_alone_is_not_sought_twice(monkeypatch):
    # Under min_spend the target lowered alone is named from the plan of most return, to the
    # cent; the elastic model's own search for it (its solves and the checks of what it
    # found) was dropped after it had run: 4-6 s of a 12 x 4 request's refusal, past its
    # time limit of 8 s (trial 18g, t6m). The other rules are still each tried alone.
    tried = []
    alone = infeasibility._alone

    def spy(model, rule, elastic, deadline):
        tried.append(rule)
        return alone(model, rule, elastic, deadline)

    monkeypatch.setattr(infeasibility, "_alone", spy)
    with pytest.raises(Infeasible) as refused:
        solve(k5("250000"))
    assert "target_return" not in tried and {"max:a", "period_cap:p2"} <= set(tried)
    assert [c.change for c in refused.value.conflicts if c.alone] == [D("99670.57")]


def test_a_min_spend_milp_without_a_plan_in_time_answers_the_plan_of_most_return_cut(
        monkeypatch):
    # A target at the most return (as a named change sets it) asks the gated MILP for the
    # optimum itself: trial 18i's 40 × 6 found no plan in 8 s, where max_return is proven in
    # 0.29 s. The MILP out of time without a plan (made so here), the plan of most return is
    # solved for in the time left and cut to the target.
    problem = Problem(total=D(300_000), decimals=2, channels=(
        Channel("video", Hill(D(400_000), D(90_000), D("2.5"))),
        Channel("search", Hill(D(150_000), D(40_000), D("0.8"))),
        Channel("kol", Deal(D(60_000), D(130_000)))),
        periods=(Period("p1"), Period("p2", weight=D("1.3"))))
    most = solve(problem)
    milp = solver.solve_milp

    def out_of_time(model, *args, **kwargs):
        if model.problem.objective == "min_spend":
            raise SolveTimeout("no plan found within 10 s")
        return milp(model, *args, **kwargs)
    monkeypatch.setattr(solver, "solve_milp", out_of_time)
    target = most.expected_return - D(1000)
    answer = solve(replace(problem, objective="min_spend", target_return=target, time_limit=10))
    assert answer.status == "feasible" and answer.expected_return >= target
    assert answer.spend <= most.spend
