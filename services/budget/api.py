from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.budget import service
from services.budget.optimization import OptimizationPublic, OptimizationRequest
from shared.workers import WorkerPool

router = APIRouter(prefix="/api/v1/budget", tags=["budget"])


def _workers(request: Request) -> WorkerPool:
    return request.app.state.workers


WorkersDep = Annotated[WorkerPool, Depends(_workers)]


@router.post("/optimize", response_model=OptimizationPublic)
def optimize_budget(request: Request, body: OptimizationRequest, workers: WorkersDep) -> OptimizationPublic:
    """Allocate a budget across channels for the best expected return, holding back the reserve
    (a what-if: nothing is stored). An impossible request is a 422 naming the conflict."""
    return service.optimize_budget(request=body, workers=workers,
                                   grace_seconds=request.app.state.settings.solve_grace_seconds)
