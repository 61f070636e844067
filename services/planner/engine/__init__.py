"""The scheduling engine: pure, no web or database library, hours in integer hundredths.

    problem = Problem(start=date(2026, 12, 7), horizon_days=30,
                      resources=(Resource("ana", frozenset({"copy"}), 8 * UNIT),),
                      tasks=(Task("brief", "copy", 12 * UNIT, deadline=date(2026, 12, 8)),))
    model = Model(problem)                      # Invalid if it cannot be scheduled as given
    plan = priority_rule.schedule(model)        # {"brief": Work("ana", ((0, 800), (1, 400)))}
    schedule = assemble(model, plan, status="feasible", engine="priority rule",
                        bound=lower_bound(model), seconds=0, first_answer_seconds=0,
                        best_answer_seconds=0)
    # brief: 8 h Mon 7th, 4 h Tue 8th, on time: schedule.weighted_lateness == 0

The two engines are reached by module: `priority_rule.schedule(model)` (the immediate first
answer) and `cp_sat.solve(problem, progress=…, stop=…)` (the optimiser, within
`problem.time_limit` for the whole call). `cp_sat` is deliberately not imported
here: it loads OR-Tools, which bundles its own HiGHS and cannot share a process with
`highspy` (the budget optimizer), so it runs only in the planner's worker processes.
`stability` holds the re-plan promise's rule (which tasks a change left alone, which of them
moved); `neighbourhood` the tasks a re-plan's first search may move.
"""
from services.planner.engine import neighbourhood, priority_rule, stability
from services.planner.engine.assembly import assemble
from services.planner.engine.bounds import lower_bound
from services.planner.engine.model import Model
from services.planner.engine.problem import (
    UNIT,
    Assignment,
    Invalid,
    Late,
    Plan,
    Previous,
    Problem,
    Progress,
    Resource,
    Schedule,
    Status,
    Task,
    Utilisation,
    Work,
)

__all__ = ["UNIT", "Assignment", "Invalid", "Late", "Model", "Plan", "Previous", "Problem",
           "Progress", "Resource", "Schedule", "Status", "Task", "Utilisation", "Work", "assemble",
           "lower_bound", "neighbourhood", "priority_rule", "stability"]
