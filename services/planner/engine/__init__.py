"""The scheduling engine: pure, no web or database library, hours in integer hundredths.

    problem = Problem(start=date(2026, 12, 7), horizon_days=30,
                      resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),),
                      tasks=(Task("brief", "copy", 12 * UNIT, deadline=date(2026, 12, 8)),))
    model = Model(problem)                      # Invalid if it cannot be scheduled as given
    choice = priority_rule.schedule(model)      # {"brief": ("ana", 0)}: the first answer
    schedule = assemble(model, choice, status="feasible", engine="priority rule", bound=None,
                        seconds=0, first_answer_seconds=0, best_answer_seconds=0)
    # brief: 8 h Mon 7th, 4 h Tue 8th, on time: schedule.weighted_lateness == 0

The two engines are reached by module: `priority_rule.schedule(model)` (the immediate first
answer) and `cp_sat.solve(problem)` (the optimiser). `cp_sat` is deliberately not imported
here: it loads OR-Tools, which bundles its own HiGHS and cannot share a process with
`highspy` (the budget optimizer), so it runs only in the planner's worker processes.
"""
from services.planner.engine import priority_rule
from services.planner.engine.assembly import assemble
from services.planner.engine.model import Model
from services.planner.engine.problem import (
    UNIT,
    Assignment,
    Choice,
    Invalid,
    Late,
    Problem,
    Resource,
    Schedule,
    Status,
    Task,
    Utilisation,
)

__all__ = ["UNIT", "Assignment", "Choice", "Invalid", "Late", "Model", "Problem", "Resource",
           "Schedule", "Status", "Task", "Utilisation", "assemble", "priority_rule"]
