"""The OpenAPI document as generated clients read it, derived from the code that answers.

A route's problem answers are found by walking the project's own code reachable from the route
(its endpoint and dependencies, through the functions and methods they call) and collecting
every `Problem` subclass that code constructs: `require_roles` gives 403, the idempotency
dependency 422, `require_if_match` 412 and 428, a use case's `NotFound` 404. Nothing is listed
by hand per route, so the document changes when the code does. The same walk finds the headers
a route answers with (`ETag` where it reaches `version_etag`, 304 where `conditional_json`).

The walk is deliberately narrow: it follows a call only where the callee is certain (a name,
`module.function`, `self.method`, a method of a parameter or local whose class is known), so
a route is never documented with an answer it cannot give.
"""
import ast
import builtins
import functools
import inspect
import textwrap
import threading
import types
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from shared.errors import (
    PROBLEM_MEDIA_TYPE,
    InvalidRequest,
    NotAcceptable,
    NotFound,
    Problem,
    UnsupportedMediaType,
)
from shared.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER
from shared.pagination import Page
from shared.versioning import conditional_json, require_if_match, version_etag

PROJECT_PACKAGES = ("shared", "services", "gateway")
# A decimal as JSON text: what every Decimal field of the API accepts and answers.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"

FIELD_ERROR_SCHEMA = {
    "type": "object", "title": "FieldError",
    "required": ["in", "field", "detail", "type"],
    "properties": {
        "in": {"type": "string", "description": "Where the value is: body, query, path, header."},
        "field": {"type": "string", "description": "The field's path, e.g. `rows[3].spend`; "
                                                   "empty for the whole part."},
        "detail": {"type": "string", "description": "What is wrong and how to fix it."},
        "type": {"type": "string", "description": "A machine-readable error kind."},
    },
}
PROBLEM_SCHEMA = {
    "type": "object", "title": "Problem",
    "description": "An RFC 9457 problem (`application/problem+json`). Some problems add "
                   "members of their own (e.g. `conflicts`, `remaining`, `current_version`).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URN naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong and how to fix it."},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"},
                   "description": "Every invalid field, for validation problems."},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}
HEADERS = {
    "ETag": {"description": "The representation's version; send it as `If-Match` to change "
                            "it, or as `If-None-Match` to read it only when it changed.",
             "schema": {"type": "string"}},
    "Location": {"description": "The path of the created resource.",
                 "schema": {"type": "string"}},
    REPLAYED_HEADER: {"description": "`true` when this is the stored answer to a replayed "
                                     "`Idempotency-Key`.", "schema": {"type": "string"}},
    "Link": {"description": "RFC 8288 `rel=\"next\"` link to the next page, when there is one.",
             "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before trying again.",
                    "schema": {"type": "string"}},
    "Allow": {"description": "The methods this path supports.", "schema": {"type": "string"}},
    "Accept": {"description": "The media type the route takes its body as.",
               "schema": {"type": "string"}},
}
# CPython 3.11's parser keeps recursion state that two threads parsing at once can corrupt
# ("AST constructor recursion depth mismatch"); tests run several apps in one process.
_PARSE_LOCK = threading.Lock()
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                 "description": "An ETag you hold: 304 Not Modified if it is still current.",
                 "schema": {"type": "string"}}


# ---- the walk ------------------------------------------------------------------------------

def _is_project(obj: Any) -> bool:
    module = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    return (module or "").split(".")[0] in PROJECT_PACKAGES


def _namespace(func: Callable) -> dict[str, Any]:
    names = dict(vars(builtins)) | func.__globals__
    if func.__closure__:
        names |= {name: cell.cell_contents for name, cell in
                  zip(func.__code__.co_freevars, func.__closure__) if _has_contents(cell)}
    return names


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _owner(func: Callable) -> type | None:
    """The class a method is defined on (module-level classes only)."""
    qualname = func.__qualname__.split(".")
    if len(qualname) < 2 or "<locals>" in qualname:
        return None
    owner = func.__globals__.get(qualname[0])
    for part in qualname[1:-1]:
        owner = getattr(owner, part, None)
    return owner if isinstance(owner, type) else None


def _annotated_classes(func: Callable) -> dict[str, type]:
    """Parameter name → project class, from the function's annotations."""
    try:
        hints = typing.get_type_hints(func, include_extras=False)
    except Exception:
        return {}
    return {name: hint for name, hint in hints.items()
            if isinstance(hint, type) and _is_project(hint)}


def _attribute_classes(owner: type) -> dict[str, type]:
    """`self.x` → class, where `__init__` stores an annotated parameter of the same name."""
    init = owner.__dict__.get("__init__")
    return _annotated_classes(init) if inspect.isfunction(init) else {}


def _method(cls: type, name: str) -> Callable | None:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            found = klass.__dict__[name]
            found = getattr(found, "__func__", found)  # staticmethod/classmethod
            return found if inspect.isfunction(found) and _is_project(found) else None
    return None


def _callees(func: Callable) -> tuple[set[Callable], set[type[Problem]]]:
    """The project functions `func` calls for certain, and the problems it constructs."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        with _PARSE_LOCK:
            tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return set(), set()
    names = _namespace(func)
    owner = _owner(func)
    typed = _annotated_classes(func)
    self_attributes = _attribute_classes(owner) if owner else {}
    for node in ast.walk(tree):  # locals made by calling a project class: `x = Cls(...)`
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)):
            made = names.get(node.value.func.id)
            if isinstance(made, type) and _is_project(made):
                typed[node.targets[0].id] = made

    def resolve(target: ast.expr) -> Any:
        if isinstance(target, ast.Name):
            return names.get(target.id)
        if not isinstance(target, ast.Attribute):
            return None
        base = target.value
        if isinstance(base, ast.Name):
            if base.id in ("self", "cls") and owner is not None:
                return _method(owner, target.attr)
            if base.id in typed:
                return _method(typed[base.id], target.attr)
            value = names.get(base.id)
            if isinstance(value, types.ModuleType) and _is_project(value):
                return getattr(value, target.attr, None)
            if isinstance(value, type) and _is_project(value):
                return _method(value, target.attr)
        if (isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name)
                and base.value.id == "self" and base.attr in self_attributes):
            return _method(self_attributes[base.attr], target.attr)
        return None

    calls: set[Callable] = set()
    problems: set[type[Problem]] = set()
    for node in ast.walk(tree):
        target = node.func if isinstance(node, ast.Call) else (
            node.exc if isinstance(node, ast.Raise) else None)
        if target is None:
            continue
        found = resolve(target)
        if isinstance(found, type) and issubclass(found, Problem):
            problems.add(found)
        elif isinstance(found, type) and _is_project(found):
            init = found.__dict__.get("__init__")
            if inspect.isfunction(init):
                calls.add(init)
        elif inspect.isfunction(found) and _is_project(found):
            calls.add(found)
    return calls, problems


@functools.cache
def reach(func: Callable) -> tuple[frozenset[Callable], frozenset[type[Problem]]]:
    """Every project function reachable from `func` (itself included) and every problem
    they construct."""
    seen: set[Callable] = set()
    problems: set[type[Problem]] = set()
    todo = [inspect.unwrap(func)]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        calls, raised = _callees(current)
        problems |= raised
        todo.extend(calls - seen)
    return frozenset(seen), frozenset(problems)


def _dependants(dependant: Dependant) -> Iterable[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


# ---- what a route answers ------------------------------------------------------------------

class RouteFacts:
    """What the code of one route can answer, as the document and the runtime need it.

    `route` is the route as the app serves it (FastAPI's `RouteContext`: the included path,
    the app's dependencies and the route's own)."""

    def __init__(self, route: RouteContext):
        self.route = route
        self.path: str = route.path_format or ""
        self.methods = frozenset(route.methods or ())
        dependants = list(_dependants(route.dependant))
        functions: set[Callable] = set()
        problems: set[type[Problem]] = set()
        for dependant in dependants:
            if dependant.call is not None:
                reached, raised = reach(dependant.call)
                functions |= reached
                problems |= raised
        self.query_names = frozenset(
            field.alias for d in dependants for field in d.query_params)
        headers = {field.alias.lower() for d in dependants for field in d.header_params}
        self.idempotent = IDEMPOTENCY_HEADER.lower() in headers
        if "if-match" in headers:
            problems |= reach(require_if_match)[1]
        self.conditional = conditional_json in functions
        self.versioned = self.conditional or version_etag in functions
        if any(d.path_params for d in dependants):
            problems.add(NotFound)
        if any(d.query_params or d.header_params or d.body_params or d.path_params
               for d in dependants):
            problems.add(InvalidRequest)
        self.takes_json = any(d.body_params for d in dependants)
        if self.takes_json:
            problems.add(UnsupportedMediaType)
        problems.add(NotAcceptable)
        self.problems = problems
        model = route.response_model
        self.paged = isinstance(model, type) and issubclass(model, Page)
        self.media_types = _media_types(route)
        # The GET route that serves what a 201 of this route created (`Location`); set by
        # `route_facts`, which sees every route.
        self.created: RouteFacts | None = None


def _media_types(route: RouteContext) -> frozenset[str]:
    """The media types a route answers with on success."""
    declared = {media for answer in route.responses.values()
                for media in answer.get("content", {})}
    return frozenset(declared or {"application/json"})


def route_facts(app: FastAPI) -> dict[int, RouteFacts]:
    """Facts for every API route of `app` (made once, when the app is built), by the id of
    the route a request's `scope["route"]` holds (routes are not hashable)."""
    facts = {id(context.original_route): RouteFacts(context)
             for context in iter_route_contexts(app.routes)
             if isinstance(context.original_route, APIRoute)
             and (context.path_format or "").startswith("/api/")}
    for route_facts_ in facts.values():
        if route_facts_.route.status_code == 201:
            route_facts_.created = _created_location(route_facts_.path, facts)
    return facts


# ---- the document --------------------------------------------------------------------------

def _problem_answer(problems: list[type[Problem]]) -> dict:
    titles = sorted({p.title for p in problems})
    answer: dict[str, Any] = {"description": "; ".join(titles), "content": {
        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    headers = {name for p in problems for name in p.documented_headers}
    if headers:
        answer["headers"] = {name: HEADERS[name] for name in sorted(headers)}
    return answer


def add_problems(operation: dict, problems: Iterable[type[Problem]]) -> None:
    """Document `problems` as the operation's problem+json answers, one entry per status."""
    by_status: dict[int, list[type[Problem]]] = {}
    for problem in problems:
        by_status.setdefault(problem.status, []).append(problem)
    responses = operation.setdefault("responses", {})
    for status, grouped in sorted(by_status.items()):
        responses[str(status)] = _problem_answer(grouped)


def _created_location(path: str, facts: dict[int, "RouteFacts"]) -> "RouteFacts | None":
    """The GET route a 201 to `path` names in `Location` (`<path>/{id}`), if there is one."""
    return next((f for f in facts.values() if "GET" in f.methods
                 and f.path.startswith(path + "/{") and f.path.endswith("}")
                 and f.path.count("/") == path.count("/") + 1), None)


def document_route(operation: dict, facts: RouteFacts, all_facts: dict[int, RouteFacts]
                   ) -> None:
    """Add a route's problem answers, headers and conditional reads to its operation."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's HTTPValidationError: replaced by the Problem
    add_problems(operation, facts.problems)
    route = facts.route
    success = str(route.status_code or 200)
    headers = responses.setdefault(success, {"description": "Success"}).setdefault("headers", {})
    if facts.versioned:
        headers["ETag"] = HEADERS["ETag"]
    if facts.paged:
        headers["Link"] = HEADERS["Link"]
    if facts.idempotent:
        headers[REPLAYED_HEADER] = HEADERS[REPLAYED_HEADER]
    if facts.created is not None:
        headers["Location"] = HEADERS["Location"]
        if facts.created.versioned:
            headers["ETag"] = HEADERS["ETag"]
    if not headers:
        del responses[success]["headers"]
    if facts.conditional:
        responses["304"] = {"description": "Not modified: the `If-None-Match` ETag is current.",
                            "headers": {"ETag": HEADERS["ETag"]}}
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == "If-None-Match" for p in parameters):
            parameters.append(IF_NONE_MATCH)


_DECIMAL_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt",
                   "exclusiveMaximum": "lt"}


def _decimal_strings(node: Any) -> Any:
    """Type every Decimal (pydantic: number or string) as a decimal string with a pattern:
    clients send and read money as text, so no amount passes through a float."""
    if isinstance(node, list):
        return [_decimal_strings(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _decimal_strings(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list):
        numbers = [o for o in options if o.get("type") == "number"]
        strings = [o for o in options if o == {"type": "string"}]
        if len(numbers) == 1 and len(strings) == 1:
            decimal = {"type": "string", "pattern": DECIMAL_PATTERN, "format": "decimal"}
            # A field's own bounds (beta's gt=0) sit on the number option: kept, named as the
            # type's bounds already are (ge/le), the stricter where both bound the same side.
            for keyword, name in _DECIMAL_BOUNDS.items():
                if keyword in numbers[0]:
                    bound = numbers[0][keyword]
                    if name in node:
                        tighter = max if name in ("ge", "gt") else min
                        bound = tighter(node[name], bound, key=lambda b: Decimal(str(b)))
                    decimal[name] = bound
            rest = [o for o in options if o is not numbers[0] and o is not strings[0]]
            if rest:
                node["anyOf"] = [decimal, *rest]
            else:
                del node["anyOf"]
                node |= decimal
    return node


def build_document(app: FastAPI, facts: dict[int, RouteFacts]) -> dict:
    """The app's OpenAPI document: one schema per name, problems and headers from the code."""
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes, separate_input_output_schemas=False)
    for route_facts_ in facts.values():
        item = document["paths"].get(route_facts_.path, {})
        for method in route_facts_.methods:
            if method.lower() in item:
                document_route(item[method.lower()], route_facts_, facts)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas |= {"Problem": PROBLEM_SCHEMA, "FieldError": FIELD_ERROR_SCHEMA}
    return _decimal_strings(document)


def install_openapi(app: FastAPI, facts: dict[int, RouteFacts]) -> None:
    """Make `app.openapi()` the derived document, built on first use."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, facts)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
