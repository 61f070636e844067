"""One OpenAPI document for the whole API: the gateway's own routes plus every service's.

Each service documents what its own code answers (shared/openapi.py); the merge adds what the
gateway's code answers on every proxied route (found the same way, from `Proxy.__call__`):
401 without a valid key, 403 for a role, 413, 429, 503 and 504. Operation ids stay as the
services name them (`create_campaign`) unless two services use one name; schemas of one name
stay one schema unless two services define it differently. Either clash is resolved by
prefixing the service's name, so the document always loads in a generator.
"""
import asyncio
import copy
import re
from functools import cache
from typing import Any

import aiohttp

from gateway.proxy import Proxy
from shared.errors import NotFound, Problem
from shared.openapi import FIELD_ERROR_SCHEMA, PROBLEM_SCHEMA, add_problems, reach

SECURITY_SCHEME = {"apiKey": {"type": "http", "scheme": "bearer",
                              "description": "A Marketplan API key: `Authorization: Bearer mp_…`"}}
SCHEMA_REF = "#/components/schemas/"


class MergeConflict(ValueError):
    """Two services define the same path."""


@cache
def gateway_problems() -> tuple[frozenset[type[Problem]], frozenset[type[Problem]]]:
    """The problems the proxy can answer on any route, and those only on a route with a body.

    `NotFound` is left out: the proxy raises it only for paths no service serves, which are
    not in the document."""
    problems = reach(Proxy.__call__)[1] - {NotFound}
    with_body = frozenset(p for p in problems if p.status == 413)
    return problems - with_body, with_body


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    if not isinstance(node, dict):
        return node
    renamed = {key: _rename_refs(value, renames) for key, value in node.items()}
    ref = renamed.get("$ref")
    if isinstance(ref, str) and ref.startswith(SCHEMA_REF) and ref[len(SCHEMA_REF):] in renames:
        renamed["$ref"] = SCHEMA_REF + renames[ref[len(SCHEMA_REF):]]
    return renamed


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name))


def _distinct_schemas(docs: dict[str, dict]) -> dict[str, dict]:
    """Rename, per service, each schema name that two services define differently (and, in
    turn, every schema that refers to a renamed one) to `<Service><Name>`."""
    docs = copy.deepcopy(docs)
    while True:
        seen: dict[str, list[tuple[str, Any]]] = {}
        for service, doc in docs.items():
            for name, schema in doc.get("components", {}).get("schemas", {}).items():
                seen.setdefault(name, []).append((service, schema))
        clashes = {name for name, defs in seen.items()
                   if any(schema != defs[0][1] for _, schema in defs)}
        if not clashes:
            return docs
        for service, doc in docs.items():
            schemas = doc.get("components", {}).get("schemas", {})
            renames = {name: _pascal(service) + name for name in clashes if name in schemas}
            if renames:
                # Generators name their models by a schema's title: it follows the new name.
                doc["components"]["schemas"] = {
                    renames.get(k, k): v | ({"title": renames[k]} if k in renames else {})
                    for k, v in schemas.items()}
                docs[service] = _rename_refs(doc, renames)


def merge(gateway_doc: dict, service_docs: dict[str, dict]) -> dict:
    """Merge service documents into the gateway's; identical shared schemas appear once."""
    merged = copy.deepcopy(gateway_doc)
    paths = merged.setdefault("paths", {})
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    service_docs = _distinct_schemas(service_docs)
    counts: dict[str, int] = {}
    for doc in service_docs.values():
        for path, item in doc.get("paths", {}).items():
            if path.startswith("/api/"):
                for operation in item.values():
                    counts[operation["operationId"]] = counts.get(operation["operationId"], 0) + 1
    everywhere, with_body = gateway_problems()
    for name, doc in sorted(service_docs.items()):
        for path, item in doc.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue  # a service's health routes are not part of the public API
            if path in paths:
                raise MergeConflict(f"path {path} is defined twice ({name})")
            for operation in item.values():
                if counts[operation["operationId"]] > 1:
                    operation["operationId"] = f"{name}_{operation['operationId']}"
                operation.setdefault("security", [{"apiKey": []}])
                add_problems(operation, everywhere | (with_body if "requestBody" in operation
                                                      else frozenset()))
            paths[path] = item
        schemas.update(doc.get("components", {}).get("schemas", {}))
    schemas |= {"Problem": PROBLEM_SCHEMA, "FieldError": FIELD_ERROR_SCHEMA}
    merged["components"]["securitySchemes"] = SECURITY_SCHEME
    return merged


# A service builds its document on the first request for it (then keeps it): on a busy
# machine that takes seconds, and a document without a service is worse than a slow one.
FETCH_SECONDS = 30


async def fetch_service_docs(sessions: dict[str, aiohttp.ClientSession],
                             upstreams: dict[str, str],
                             headers: dict[str, str]) -> tuple[dict[str, dict], list[str]]:
    """Fetch each service's document; return those that answered and the names that did not."""

    async def fetch(name: str) -> dict | None:
        try:
            async with sessions[name].get(
                    upstreams[name] + "/openapi.json", headers=headers,
                    timeout=aiohttp.ClientTimeout(total=FETCH_SECONDS)) as response:
                return await response.json() if response.status == 200 else None
        except (TimeoutError, aiohttp.ClientError):
            return None

    names = sorted(upstreams)
    docs = await asyncio.gather(*(fetch(name) for name in names))
    return ({n: d for n, d in zip(names, docs) if d is not None},
            [n for n, d in zip(names, docs) if d is None])
