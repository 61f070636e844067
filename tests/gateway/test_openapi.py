import pytest
from openapi_spec_validator import validate

from gateway.openapi import MergeConflict, merge

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def document(gateway):
    return gateway.get("/openapi.json").json()


def _operations(document):
    return {(method.upper(), path): op for path, item in document["paths"].items()
            for method, op in item.items()}


def test_merged_document_is_valid_and_covers_every_service(document):
    validate(document)
    for service in ("calendar", "budget", "planner"):
        assert f"/api/v1/{service}/status" in document["paths"]
    assert "/healthz" in document["paths"] and "/readyz" in document["paths"]
    operation_ids = [op["operationId"] for op in _operations(document).values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/budget/status"]["get"]["security"] == [{"apiKey": []}]


def test_one_schema_per_name_and_problems_instead_of_fastapis_validation_error(document):
    schemas = document["components"]["schemas"]
    assert not [name for name in schemas if name.endswith(("-Input", "-Output"))]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail"]
    assert set(schemas["FieldError"]["properties"]) == {"in", "field", "detail", "type"}
    for (method, path), operation in _operations(document).items():
        for status, answer in operation["responses"].items():
            if status.startswith(("4", "5")):
                content = answer["content"]
                assert content == {"application/problem+json": {"schema": PROBLEM}}, \
                    (method, path, status)


def test_operation_ids_read_as_the_route_functions(document):
    operations = _operations(document)
    assert operations["POST", "/api/v1/calendar/campaigns"]["operationId"] == "create_campaign"
    assert operations["GET", "/api/v1/calendar/calendar"]["operationId"] == "read_calendar"
    assert operations["GET", "/api/v1/budget/status"]["operationId"] == "read_budget_status"


def test_problem_answers_come_from_the_code_of_each_route(document):
    operations = _operations(document)

    def statuses(method, path):
        return {int(s) for s in operations[method, path]["responses"] if s[0] in "45"}

    # Every proxied route: the gateway's key check, limits and upstream failures.
    gateway_side = {401, 403, 429, 503, 504}
    for operation in operations.values():
        if operation.get("security"):
            assert gateway_side <= {int(s) for s in operation["responses"]}
    # A create: the role check (403) and the idempotency dependency (422) of the service, 413
    # for its body at the gateway; no path id, so no 404.
    create = statuses("POST", "/api/v1/calendar/campaigns")
    assert {403, 413, 422} <= create and 404 not in create
    # A PATCH with If-Match: 412 and 428 from require_if_match, 404 from the path id.
    assert {404, 412, 428} <= statuses("PATCH", "/api/v1/budget/budgets/{budget_id}")
    # The status machine raises Conflict; a plain read has no 409 and no 412.
    assert 409 in statuses("POST", "/api/v1/calendar/campaigns/{campaign_id}/status")
    read = statuses("GET", "/api/v1/budget/budgets/{budget_id}")
    assert 409 not in read and 412 not in read and 413 not in read


def test_headers_are_documented_where_they_apply(document):
    operations = _operations(document)
    create = operations["POST", "/api/v1/budget/budgets"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header"
               for p in create["parameters"])
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(create["responses"]["201"]["headers"])
    read = operations["GET", "/api/v1/budget/budgets/{budget_id}"]
    assert any(p["name"] == "If-None-Match" for p in read["parameters"])
    assert "ETag" in read["responses"]["200"]["headers"] and "304" in read["responses"]
    patch = operations["PATCH", "/api/v1/budget/budgets/{budget_id}"]
    assert any(p["name"].lower() == "if-match" for p in patch["parameters"])
    assert "ETag" in patch["responses"]["412"]["headers"]
    assert "Link" in operations["GET", "/api/v1/budget/budgets"]["responses"]["200"]["headers"]
    assert "Retry-After" in create["responses"]["503"]["headers"]
    assert "Retry-After" in create["responses"]["429"]["headers"]


def test_money_is_a_decimal_string(document):
    schemas = document["components"]["schemas"]
    total = schemas["BudgetCreate"]["properties"]["total"]
    assert total["type"] == "string" and total["pattern"] == r"^-?[0-9]+(\.[0-9]+)?$"
    assert "anyOf" not in total


def test_a_decimal_fields_own_bounds_stay_in_the_document(document):
    # A Hill curve's beta is an Amount (0 to the amount limit) that must also be above 0:
    # its own bound sat on the number option the decimal string replaces, and was lost.
    beta = document["components"]["schemas"]["HillResponse"]["properties"]["beta"]
    assert (beta["type"], beta["ge"], beta["gt"]) == ("string", 0, 0)


def test_docs_page_loads_swagger_ui_from_this_origin(gateway):
    page = gateway.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert "cdn" not in page.text and "/docs/assets/swagger-ui-bundle.js" in page.text
    script = gateway.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert gateway.get("/docs/assets/swagger-ui.css").status_code == 200


def _doc(path, operation_id, schemas, ref=None):
    operation = {"operationId": operation_id, "responses": {}}
    if ref:
        operation["responses"]["200"] = {"content": {"application/json": {"schema": {
            "$ref": f"#/components/schemas/{ref}"}}}}
    return {"paths": {path: {"get": operation}}, "components": {"schemas": schemas}}


def test_identical_shared_schemas_merge_into_one():
    merged = merge({"paths": {}}, {"a": _doc("/api/v1/a/x", "a_x", {"S": {"type": "string"}}),
                                   "b": _doc("/api/v1/b/x", "b_x", {"S": {"type": "string"}})})
    assert merged["components"]["schemas"]["S"] == {"type": "string"}


def test_clashing_names_are_prefixed_with_their_service():
    # Two services' `S` differ, and `Page` refers to `S`: both are renamed in each service,
    # with every reference; the shared operation id `read_x` is renamed the same way.
    a = _doc("/api/v1/a/x", "read_x", {"S": {"type": "string"},
                                        "Page": {"items": {"$ref": "#/components/schemas/S"}}},
             ref="Page")
    b = _doc("/api/v1/b/x", "read_x", {"S": {"type": "integer"},
                                        "Page": {"items": {"$ref": "#/components/schemas/S"}}},
             ref="Page")
    merged = merge({"paths": {}}, {"a": a, "b": b})
    schemas = merged["components"]["schemas"]
    # Generators name models by title, so the title follows the new name.
    assert schemas["AS"] == {"type": "string", "title": "AS"}
    assert schemas["BS"] == {"type": "integer", "title": "BS"}
    assert schemas["BPage"] == {"items": {"$ref": "#/components/schemas/BS"}, "title": "BPage"}
    assert "S" not in schemas and "Page" not in schemas
    get_b = merged["paths"]["/api/v1/b/x"]["get"]
    assert get_b["operationId"] == "b_read_x"
    assert get_b["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BPage"}


def test_a_path_defined_twice_is_refused():
    with pytest.raises(MergeConflict, match="path /api/v1/a/x"):
        merge({"paths": {}}, {"a": _doc("/api/v1/a/x", "a_x", {}),
                              "b": _doc("/api/v1/a/x", "b_x", {})})
