"""The other services as the planner's composed answers (the campaign overview,
plan-a-campaign) call them: several calls at once, and their refusals relayed as problems."""
import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from shared.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    Problem,
    UnprocessableContent,
)

T = TypeVar("T")



class BadGateway(Problem):
    status, slug, title = 502, "bad-gateway", "Another service failed"


# Refusals relayed with their own status: they describe the caller's request (unknown id,
# conflict, invalid value). Anything else (401 between services, 5xx) is this system's fault.
RELAYED: dict[int, type[Problem]] = {400: BadRequest, 404: NotFound, 409: Conflict,
                                     412: PreconditionFailed, 422: UnprocessableContent}


def start(executor: ThreadPoolExecutor, call: Callable[[], T]) -> Future[T]:
    """Run `call` in `executor` within this request's context: the signed service calls read
    the caller's identity and the request id from it."""
    return executor.submit(contextvars.copy_context().run, call)


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem+json body of a refusal, or an empty dict when it has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def refused(*, service: str, what: str, response: httpx.Response, **extra: Any) -> Problem:
    """Another service's refusal of a call made for this request, as this request's problem:
    its status where it is about the request, its detail and field errors, prefixed by what
    the call was for."""
    body = problem_of(response)
    detail = body.get("detail") or f"it answered {response.status_code}"
    errors = body.get("errors")
    if isinstance(errors, list):
        extra["errors"] = errors
    kind = RELAYED.get(response.status_code, BadGateway)
    return kind(f"{what}: the {service} service refused it: {detail}", service=service,
                service_status=response.status_code, **extra)
