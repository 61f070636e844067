import pytest
from openapi_spec_validator import validate

from gateway.openapi import MergeConflict, merge


def test_merged_document_is_valid_and_covers_every_service(gateway):
    document = gateway.get("/openapi.json").json()
    validate(document)
    for service in ("calendar", "budget", "planner"):
        assert f"/api/v1/{service}/status" in document["paths"]
    assert "/healthz" in document["paths"] and "/readyz" in document["paths"]
    operation_ids = [op["operationId"] for item in document["paths"].values()
                     for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/budget/status"]["get"]["security"] == [{"apiKey": []}]


def test_docs_page_points_at_the_merged_document(gateway):
    response = gateway.get("/docs")
    assert response.status_code == 200 and "/openapi.json" in response.text


def _doc(path, operation_id, schemas):
    return {"paths": {path: {"get": {"operationId": operation_id}}},
            "components": {"schemas": schemas}}


def test_identical_shared_schemas_merge_into_one():
    merged = merge({"paths": {}}, {"a": _doc("/api/v1/a/x", "a_x", {"S": {"type": "string"}}),
                                   "b": _doc("/api/v1/b/x", "b_x", {"S": {"type": "string"}})})
    assert merged["components"]["schemas"] == {"S": {"type": "string"}}


@pytest.mark.parametrize("second, message", [
    (_doc("/api/v1/b/x", "b_x", {"S": {"type": "integer"}}), "schema S"),
    (_doc("/api/v1/b/x", "a_x", {}), "operationId a_x"),
    (_doc("/api/v1/a/x", "b_x", {}), "path /api/v1/a/x"),
])
def test_conflicts_between_services_are_refused(second, message):
    with pytest.raises(MergeConflict, match=message):
        merge({"paths": {}}, {"a": _doc("/api/v1/a/x", "a_x", {"S": {"type": "string"}}),
                              "b": second})
