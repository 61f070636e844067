"""The answer's way out of a worker and into JSON: arrays across the process boundary, a
public shape made without validation that still writes exactly what a validated one would."""
import pickle
from decimal import Decimal as D

from services.budget.optimizer import Channel, Deal, Hill, Linear, Period, Problem, Reserve, solve
from services.budget.whatif import OptimizationPublic, to_public


def plan() -> Problem:
    # Periods with a zero cap (a cell that is not there), a deal, a capped linear channel.
    return Problem(total=D("1000000.05"), decimals=2, reserve=Reserve(percent=D(10)),
                   channels=(Channel("search", Linear(D("1.7")), max=D(200_000)),
                             Channel("video", Hill(D(900_000), D(250_000), D("0.8"))),
                             Channel("kol", Deal(D(80_000), D(240_000)))),
                   periods=(Period("w1", weight=D("1.2")), Period("w2", cap=D(0)),
                            Period("w3", weight=D("0.9"))))


def test_an_answer_crosses_a_process_boundary_intact():
    allocation = solve(plan())
    copy = pickle.loads(pickle.dumps(allocation, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == allocation
    assert copy.allocations == allocation.allocations
    assert [p.amount for p in copy.allocations[0].periods] == \
        [p.amount for p in allocation.allocations[0].periods]


def test_an_answers_objects_add_up_to_its_totals():
    allocation = solve(plan())
    assert sum(a.amount for a in allocation.allocations) == allocation.spend
    assert sum(a.expected_return for a in allocation.allocations) == allocation.expected_return
    for channel in allocation.allocations:
        assert [p.period for p in channel.periods] == ["w1", "w2", "w3"]
        assert sum(p.amount for p in channel.periods) == channel.amount
        assert channel.periods[1].amount == D("0.00")
    assert allocation.spend + allocation.unspent + allocation.reserve == allocation.total


def test_the_public_answer_writes_what_a_validated_one_writes():
    allocation = solve(plan())
    public = to_public(allocation, "USD")
    # The same answer made field by field from the optimizer's objects, validated.
    validated = OptimizationPublic(
        status=allocation.status, currency="USD", total=allocation.total,
        reserve=allocation.reserve, spend=allocation.spend, unspent=allocation.unspent,
        expected_return=allocation.expected_return,
        marginal_value_of_budget=allocation.marginal_value_of_budget,
        allocations=[{"channel": a.channel, "amount": a.amount,
                      "expected_return": a.expected_return, "marginal_roi": a.marginal_roi,
                      "binding": list(a.binding),
                      "periods": [{"period": p.period, "amount": p.amount,
                                   "expected_return": p.expected_return} for p in a.periods]}
                     for a in allocation.allocations],
        binding_constraints=list(allocation.binding_constraints),
        approximation_error=allocation.approximation_error, gap=allocation.gap,
        solver={"name": allocation.solver, "seconds": allocation.seconds})
    assert public.model_dump_json() == validated.model_dump_json()
    assert public.model_dump(mode="json") == validated.model_dump(mode="json")
    assert '"amount":"0.00"' in public.model_dump_json()
