"""Optimistic concurrency and conditional reads: `ETag`, `If-Match` (412) and
`If-None-Match` (304), for every versioned resource of every service."""
import hashlib
import json
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from starlette.responses import JSONResponse

from shared.errors import PreconditionFailed, Problem


class PreconditionRequired(Problem):
    status, slug, title = 428, "precondition-required", "If-Match required"


def version_etag(version: int) -> str:
    return f'"{version}"'


def body_etag(body: Any) -> str:
    """A strong ETag for a representation that has no version number (e.g. a computed view)."""
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"))
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def require_if_match(header: str | None, version: int, *, what: str) -> None:
    """Raise 428 without `If-Match`, 412 if it does not name the current `version`.

    Updates must name the version they were made from, so that of two concurrent writers the
    second is told instead of silently overwriting the first.
    """
    if header is None:
        raise PreconditionRequired(
            f"Send `If-Match` with the ETag of the {what} you changed (GET it first), so that "
            "a concurrent change is not overwritten.")
    tags = {tag.strip() for tag in header.split(",")}
    if "*" not in tags and version_etag(version) not in tags:
        raise PreconditionFailed(
            f"The {what} changed since you read it (it is now at version {version}). GET it "
            "again, re-apply your change and send it with the new ETag.",
            headers={"ETag": version_etag(version)}, current_version=version)


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag`, so a read answers 304 (RFC 9110 13.1.2: compared
    weakly; `*` names any)."""
    tags = {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")}
    return etag in tags or "*" in tags


def conditional_json(request: Request, body: Any, etag: str) -> Response:
    """Answer `body` with its `etag`, or 304 Not Modified if the caller already has it."""
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(jsonable_encoder(body), headers={"ETag": etag})
