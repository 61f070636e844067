"""The optimizer's model file: the same request writes the same LP file in every process."""
import subprocess
import sys
from pathlib import Path

from services.budget.optimizer.formulation import constraint_name

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
