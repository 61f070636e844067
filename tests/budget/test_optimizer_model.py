"""The optimizer's model file: the same request writes the same LP file in every process; a
model HiGHS refuses is an error."""
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import highspy
import numpy as np
import pytest

from services.budget.optimizer import Channel, Deal, Hill, Linear, Problem, TooSteep
from services.budget.optimizer.backends import new_highs, pass_model
from services.budget.optimizer.formulation import constraint_name, formulate
from services.budget.optimizer.scaled import ScaledProblem

ROOT = Path(__file__).resolve().parents[2]
# Channel and group names whose characters the solver cannot take, so the constraint names
# need their digest; before, that digest came from hash(), which PYTHONHASHSEED changes.
WRITE_LP = """
import sys
from decimal import Decimal as D
from services.budget.optimizer import Channel, Deal, Group, Hill, Linear, Period, Problem
from services.budget.optimizer.formulation import formulate, to_pulp
from services.budget.optimizer.scaled import ScaledProblem

problem = Problem(total=D("1000000"), decimals=2, channels=(
    Channel("tv spot", Hill(D("900000"), D("250000"), D("2.2")), min=D("50000")),
    Channel("tv-spot", Linear(D("1.4")), max=D("300000")),
    Channel("kol:a", Deal(D("80000"), D("240000")))),
    groups=(Group("brand/tv", ("tv spot", "kol:a"), min_share=D("0.2")),),
    periods=(Period("2027-Q1", cap=D("600000")), Period("2027-Q2", weight=D("1.3"))))
model = ScaledProblem(problem)
prob, _ = to_pulp(formulate(model, model.cells(4e-4)))
prob.writeLP(sys.argv[1])
"""


def test_the_same_problem_writes_the_same_lp_file_in_every_process(tmp_path):
    files = []
    for seed in ("1", "2"):
        path = tmp_path / f"model-{seed}.lp"
        subprocess.run([sys.executable, "-c", WRITE_LP, str(path)], check=True, cwd=ROOT,
                       env={"PYTHONHASHSEED": seed, "PATH": ""})
        files.append(path.read_text())
    assert files[0] == files[1]
    assert constraint_name("min:tv spot") in files[0]
    assert constraint_name("min:tv spot") != constraint_name("min:tv_spot")


def test_a_constraint_name_is_the_same_on_every_machine():
    # Solver-safe characters, then a digest (blake2s, 4 bytes) of the exact original name.
    assert constraint_name("min:tv spot") == "c_min_tv_spot_d6dffc67"


def test_a_model_highs_refuses_is_an_error_not_an_empty_plan():
    # Trial 18e: passModel's kError went unchecked, and the empty model HiGHS then held was
    # read as solved: a plan of no columns.
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = 1, 1
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = np.array([-1.0]), np.zeros(1), np.ones(1)
    lp.row_lower_, lp.row_upper_ = np.zeros(1), np.ones(1)
    lp.a_matrix_.start_ = np.array([0, 1], dtype=np.int32)
    lp.a_matrix_.index_ = np.array([0], dtype=np.int32)
    lp.a_matrix_.value_ = np.array([1e16])
    with pytest.raises(TooSteep, match="past the solver's limit"):
        pass_model(new_highs(), lp)


def test_the_columns_are_named_by_cell_in_order() -> None:
    # Each cell's segments (s_cell_j), a gated curve's gates after them (z_cell_j), a deal's
    # column, then each "min if used" channel's binary, and the elastic model's slacks last:
    # the names PuLP's model and its LP file carry, made only when asked.
    problem = Problem(total=D("1000000"), decimals=2, channels=(
        Channel("s", Hill(D("900000"), D("250000"), D("2.2"))),
        Channel("kol", Deal(D("80000"), D("240000"))),
        Channel("floor", Linear(D("1.4")), min=D("50000"), min_if_used=True)))
    model = ScaledProblem(problem)
    cells = model.cells(4e-4)
    form = formulate(model, cells, elastic=True)
    hill, line = cells[0].segments, cells[2].segments
    assert hill is not None and hill.gated and line is not None
    assert form.col_names == [
        *(f"s_0_{j}" for j in range(len(hill.lengths))), *(f"z_0_{j}" for j in range(hill.gated)),
        "deal_1", *(f"s_2_{j}" for j in range(len(line.lengths))), "used_2",
        *(f"slack_{k}" for k in range(len(form.slacks)))]
    assert len(form.col_names) == len(form.cost) and form.slacks
