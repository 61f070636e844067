"""RFC 9457 problem details: the one error shape of every Marketplan process."""
import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.requests import REQUEST_ID_HEADER, current_request_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:marketplan:problem:"

logger = logging.getLogger("marketplan.errors")


class Problem(Exception):
    """A domain error that renders as `application/problem+json`; subclasses fix the status."""

    status = 500
    slug = "internal-error"
    title = "Internal server error"
    # Response headers this problem may carry, for the OpenAPI document (shared/openapi.py).
    documented_headers: tuple[str, ...] = ()

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return problem_body(self.status, self.title, self.detail, slug=self.slug, **self.extra)


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed for this role"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Resource not found"


class NotAcceptable(Problem):
    status, slug, title = 406, "not-acceptable", "No acceptable representation"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"
    documented_headers = ("Accept",)


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict with the current state"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "Stale version"
    documented_headers = ("ETag",)


class UnprocessableContent(Problem):
    status, slug, title = 422, "unprocessable-content", "Request cannot be processed"


class InvalidRequest(UnprocessableContent):
    slug, title = "validation-error", "Invalid request"


def invalid_fields(errors: list[tuple[str, str]], where: str = "body") -> InvalidRequest:
    """An InvalidRequest listing every (field, what is wrong and how to fix it) at once."""
    return InvalidRequest(
        f"The request has {len(errors)} invalid field(s): "
        + "; ".join(f"{field}: {detail}" for field, detail in errors) + ".",
        errors=[{"in": where, "field": field, "detail": detail, "type": "value_error"}
                for field, detail in errors])


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"
    documented_headers = ("Retry-After",)
    # A restarted service is back within seconds (`marketplan up` restarts with backoff);
    # clients and proxies that honour Retry-After then try again instead of giving up.
    RETRY_AFTER_SECONDS = 5

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail, headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)}
                         | (headers or {}), **extra)


class GatewayTimeout(Problem):
    status, slug, title = 504, "upstream-timeout", "Upstream timed out"


def problem_body(status: int, title: str, detail: str, *, slug: str, **extra: Any) -> dict:
    return {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status,
            "detail": detail, **extra}


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status, headers=problem.headers,
                        media_type=PROBLEM_MEDIA_TYPE)


# pydantic prefixes a validator's ValueError with "Value error, " and writes a Decimal bound
# as its repr; a client reads the rule alone, and the bound as the number it would send.
_VALUE_ERROR = re.compile(r"^Value error, ")
_DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        where, *path = error["loc"] or ("body",)
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        detail = _DECIMAL_REPR.sub(r"\1", _VALUE_ERROR.sub("", error["msg"]))
        errors.append({"in": str(where), "field": field, "detail": detail,
                       "type": error["type"]})
    return errors


async def _handle_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _handle_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    names = ", ".join(f"{e['in']} {e['field'] or '(whole)'}: {e['detail']}" for e in errors)
    return problem_response(InvalidRequest(
        f"The request has {len(errors)} invalid field(s): {names}. "
        "Correct them and send the request again.",
        errors=errors,
    ))


# What FastAPI raises (as a 400) for a body it cannot even decode, e.g. bytes that are not
# UTF-8; a body that is text but not JSON is already a 422 validation error.
_UNDECODABLE_BODY = "There was an error parsing the body"


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNDECODABLE_BODY:
        # The same answer as any other unreadable body: a 422 that names the body, as every
        # route with a body documents.
        return problem_response(InvalidRequest(
            "The request body is not JSON text: send a UTF-8 JSON document.",
            errors=[{"in": "body", "field": "", "detail": "not UTF-8 JSON text",
                     "type": "json_invalid"}]))
    if exc.status_code == 404 and exc.detail == "Not Found":
        detail = f"No resource at {request.url.path}. The API is described at /docs."
    elif exc.status_code == 405:
        detail = f"{request.method} is not supported on {request.url.path}."
    else:
        detail = str(exc.detail)
    body = problem_body(exc.status_code, _reason(exc.status_code), detail,
                        slug=_reason(exc.status_code).lower().replace(" ", "-"))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers,
                        media_type=PROBLEM_MEDIA_TYPE)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    request_id = current_request_id()
    body = problem_body(500, Problem.title, "An unexpected error occurred. It has been logged; "
                        "quote the request_id when reporting it.", slug=Problem.slug,
                        request_id=request_id)
    # This response is made outside the request-id middleware, so it sets the header itself.
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return JSONResponse(body, status_code=500, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of `app` as RFC 9457 problem+json."""
    app.add_exception_handler(Problem, _handle_problem)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_unexpected)
