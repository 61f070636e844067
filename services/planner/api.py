from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.planner import solving
from shared.internal_auth import Caller, require_roles
from shared.workers import WorkerPool

router = APIRouter(prefix="/api/v1/planner", tags=["planner"])


def _workers(request: Request) -> WorkerPool:
    return request.app.state.workers


WorkersDep = Annotated[WorkerPool, Depends(_workers)]
PlannerDep = Annotated[Caller, require_roles("admin", "planner")]


@router.post("/solve", response_model=solving.SchedulePublic)
def solve_schedule(request: Request, body: solving.SolveRequest, workers: WorkersDep,
                   caller: PlannerDep) -> solving.SchedulePublic:
    """Schedule tasks on resources without overload (a what-if: nothing is stored). A task no
    resource can do, a cycle of predecessors or a task longer than the horizon is a 422."""
    return solving.solve(problem=solving.to_problem(body), workers=workers,
                         grace_seconds=request.app.state.settings.solve_grace_seconds)
