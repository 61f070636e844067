"""Schemathesis hooks for tests/fuzz/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

`before_call` gives each coverage case a fresh `Idempotency-Key` unless the case is about that
header. Schemathesis fills the optional header with its boundary value '0' in every POST it
sends, so all but the first body with a given key met "already used" (or the stored answer) and
never reached the store: 964 of ~6,100 calls proved nothing.

`filter_case` sends each negative coverage case aimed at a body field or a query parameter once
per service and field schema, not once per operation: once a case has been refused by
validation (its validation-error problem, seen by `after_call`), the same wrong value for a
field of the same schema, at the same place in a body of the same service, is not sent again.
The services' validation refuses it by the field's type alone: their models have no
model-level `before` validators, the only `before`/`wrap` field validators are the shared
types' own (shared/types.py), and one handler renders every 422 (shared/errors.py). Only a
refusal counts: where a route's own checks answer first (a 404 for an unknown id) or the model
accepts the value after all (a number for a Money field, which the route receives as the same
typed value a positive case sends), the case is sent for every operation. Positive cases,
header and path cases (the gateway's authorization depends on the path) and undocumented
methods are all kept.
"""
import json
import threading
import uuid
from collections import Counter
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario

IDEMPOTENCY_KEY = "Idempotency-Key"
# shared/errors.py: the problem type, and how its handler of FastAPI's RequestValidationError
# (raised before the route runs) ends the detail; a use case's own `invalid_fields` does not.
# Should the words change, nothing counts as refused and every case is sent again.
VALIDATION_PROBLEM = "urn:marketplan:problem:validation-error"
REFUSED_BEFORE_THE_ROUTE = "Correct them and send the request again."
# Keywords that name or explain a schema without changing what it accepts.
_PROSE = frozenset({"title", "description", "examples", "example"})
# Bounds a validator checks only once a value has the field's type: a value of another type is
# refused the same way whatever they are.
_BOUNDS = frozenset({"minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
                     "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "default"})

_lock = threading.Lock()
# Cases so far per (operation, location, parameter, schema pointer): the coverage phase derives
# the k-th case of a pointer from the field's schema alone, so k names the value it sends.
_ordinals: Counter[tuple] = Counter()
_classes: dict[str, tuple] = {}   # by case id: the class of the cases filtered in
_refused: set[tuple] = set()       # classes a service's validation refused


@schemathesis.hook
def before_call(context, case, kwargs):
    data = _coverage_data(case)
    if data is None or not case.headers or IDEMPOTENCY_KEY not in case.headers:
        return
    if data.parameter_location == ParameterLocation.HEADER and data.parameter == IDEMPOTENCY_KEY:
        return
    case.headers[IDEMPOTENCY_KEY] = uuid.uuid4().hex


@schemathesis.hook
def filter_case(context, case) -> bool:
    data = _coverage_data(case)
    if (data is None or case.meta.generation.mode != GenerationMode.NEGATIVE or data.location is None
            or data.parameter_location not in (ParameterLocation.BODY, ParameterLocation.QUERY)):
        return True
    operation = case.operation
    place = (f"{operation.method} {operation.path}", data.parameter_location, data.parameter,
             data.location)
    field, shape = _field_schema(operation, data, data.scenario == CoverageScenario.INCORRECT_TYPE)
    with _lock:
        _ordinals[place] += 1
        kind = ("/".join(operation.path.split("/")[:4]), data.parameter_location, data.scenario,
                field, shape, _ordinals[place])
        if kind in _refused:
            return False
        _classes[case.id] = kind
        return True


@schemathesis.hook
def after_call(context, case, response) -> None:
    with _lock:
        kind = _classes.pop(case.id, None)
    if kind is not None and response.status_code == 422 and _refused_by_validation(response.content):
        with _lock:
            _refused.add(kind)


def _refused_by_validation(content: bytes) -> bool:
    """Whether the answer is the framework's refusal, made before any route code ran (not a
    use case's own 422 of the same problem type)."""
    try:
        problem = json.loads(content)
        return problem.get("type") == VALIDATION_PROBLEM and \
            problem.get("detail", "").endswith(REFUSED_BEFORE_THE_ROUTE)
    except (ValueError, AttributeError):
        return False


def _coverage_data(case) -> CoveragePhaseData | None:
    data = case.meta.phase.data if case.meta is not None else None
    return data if isinstance(data, CoveragePhaseData) else None


def _field_schema(operation, data: CoveragePhaseData, type_only: bool) -> tuple[str, str]:
    """The schema of the field the case breaks (canonical JSON, prose left out) and the case's
    pointer with the property names left out (`/properties/*/items/properties/*/anyOf/0/type`):
    the shape of the error's location, which the problem's `errors` are rendered from."""
    raw = operation.schema.raw_schema
    definition = operation.definition.raw
    if data.parameter_location == ParameterLocation.QUERY:
        node = next(p["schema"] for p in definition.get("parameters", [])
                    if p.get("in") == "query" and p.get("name") == data.parameter)
    else:
        node = definition["requestBody"]["content"][data.parameter]["schema"]
    node = field = _resolved(raw, node)
    shape = []
    parts = [part for part in data.location.split("/") if part]
    index = 0
    while index < len(parts):
        part = parts[index]
        if part == "properties" and index + 1 < len(parts):
            node = field = _child(raw, _child(raw, node, part), parts[index + 1])
            if field is None:  # not the document's own schema: no other field is known equal
                return data.location, ""
            shape.append("properties/*")
            index += 2
        elif part == "allOf" and isinstance(node, dict) and "allOf" not in node:
            # Schemathesis points through a `$ref` as `allOf/0`, and `allOf/1` holds the
            # discriminator's value it adds; `node` is the `$ref`'s target already.
            shape.append(f"allOf/{parts[index + 1]}")
            index += 2
        else:
            # Past the field's own schema the pointer may name a keyword schemathesis added
            # (`enum` from a discriminator): the field and the shape still say what is broken.
            node = _child(raw, node, part)
            if part in ("items", "additionalProperties"):
                field = node
            shape.append(part)
            index += 1
    left_out = _PROSE | _BOUNDS if type_only else _PROSE
    return json.dumps(_without(field, left_out), sort_keys=True), "/".join(shape)


def _child(raw: dict, node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return _resolved(raw, node.get(part))
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return _resolved(raw, node[int(part)])
    return None


def _resolved(raw: dict, node: Any) -> Any:
    """`node` with its local `$ref` (`#/components/schemas/X`) followed."""
    while isinstance(node, dict) and "$ref" in node:
        target = raw
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _without(node: Any, keywords: frozenset[str]) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, keywords) for k, v in node.items() if k not in keywords}
    if isinstance(node, list):
        return [_without(v, keywords) for v in node]
    return node
