"""One OpenAPI document for the whole API: the gateway's own routes plus every service's."""
import asyncio
import copy

import aiohttp

SECURITY_SCHEME = {"apiKey": {"type": "http", "scheme": "bearer",
                              "description": "A Marketplan API key: `Authorization: Bearer mp_…`"}}


class MergeConflict(ValueError):
    """Two services define the same path, operation id or a different schema of one name."""


def merge(gateway_doc: dict, service_docs: dict[str, dict]) -> dict:
    """Merge service documents into the gateway's; identical shared schemas appear once."""
    merged = copy.deepcopy(gateway_doc)
    paths = merged.setdefault("paths", {})
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    operation_ids = {op["operationId"] for item in paths.values() for op in item.values()
                     if isinstance(op, dict) and "operationId" in op}
    for name, doc in sorted(service_docs.items()):
        for path, item in doc.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue  # a service's health routes are not part of the public API
            if path in paths:
                raise MergeConflict(f"path {path} is defined twice ({name})")
            for operation in item.values():
                operation_id = operation.get("operationId")
                if operation_id in operation_ids:
                    raise MergeConflict(f"operationId {operation_id} is not unique ({name})")
                operation_ids.add(operation_id)
                operation.setdefault("security", [{"apiKey": []}])
            paths[path] = item
        for schema_name, schema in doc.get("components", {}).get("schemas", {}).items():
            if schemas.setdefault(schema_name, schema) != schema:
                raise MergeConflict(f"schema {schema_name} differs between services ({name})")
    merged["components"]["securitySchemes"] = SECURITY_SCHEME
    return merged


async def fetch_service_docs(sessions: dict[str, aiohttp.ClientSession],
                             upstreams: dict[str, str],
                             headers: dict[str, str]) -> tuple[dict[str, dict], list[str]]:
    """Fetch each service's document; return those that answered and the names that did not."""

    async def fetch(name: str) -> dict | None:
        try:
            async with sessions[name].get(upstreams[name] + "/openapi.json", headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=5)) as response:
                return await response.json() if response.status == 200 else None
        except (TimeoutError, aiohttp.ClientError):
            return None

    names = sorted(upstreams)
    docs = await asyncio.gather(*(fetch(name) for name in names))
    return ({n: d for n, d in zip(names, docs) if d is not None},
            [n for n, d in zip(names, docs) if d is None])
