"""HTTP habits clients rely on, through the gateway to the real services."""
import json
import uuid

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from tests.gateway.conftest import bearer, gateway_settings


def _budget(name: str = "Q1") -> dict:
    return {"name": name, "department": "brand", "currency": "EUR",
            "start_date": "2027-01-01", "end_date": "2027-03-31", "total": "90000.00",
            "reserve": {"percent": "10"}}


@pytest.fixture(scope="module")
def admin(keys):
    return bearer(keys["admin"])


def test_a_trailing_slash_redirects_to_the_gateways_own_path(gateway, admin):
    answer = gateway.get("/api/v1/budget/budgets/?limit=2", headers=admin,
                         follow_redirects=False)
    # A relative reference: the client resolves it against the gateway's URL, never a
    # service's own address.
    assert (answer.status_code, answer.headers["location"]) == (308, "/api/v1/budget/budgets?limit=2")
    assert gateway.get("/api/v1/budget/budgets/", headers=admin).status_code == 200
    assert gateway.get("/api/v1/budget/nothing/", headers=admin,
                       follow_redirects=False).status_code == 404


def test_a_201_names_the_created_resource_and_its_version(gateway, admin):
    created = gateway.post("/api/v1/budget/budgets", headers=admin, json=_budget())
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/api/v1/budget/budgets/{body['id']}"
    assert created.headers["etag"] == f'"{body["version"]}"'
    read = gateway.get(created.headers["location"], headers=admin)
    assert read.headers["etag"] == created.headers["etag"]


def test_a_replay_carries_the_same_location(gateway, admin):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = gateway.post("/api/v1/budget/budgets", headers=admin | key, json=_budget("replay"))
    again = gateway.post("/api/v1/budget/budgets", headers=admin | key, json=_budget("replay"))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]


def test_lists_link_their_next_page(gateway, admin):
    for name in ("L1", "L2", "L3"):
        gateway.post("/api/v1/budget/budgets", headers=admin, json=_budget(name))
    page = gateway.get("/api/v1/budget/budgets?limit=1&department=brand", headers=admin)
    cursor = page.json()["next_cursor"]
    assert page.headers["link"] == \
        f'</api/v1/budget/budgets?limit=1&department=brand&cursor={cursor}>; rel="next"'
    following = gateway.get(page.headers["link"][1:].split(">")[0], headers=admin)
    assert following.status_code == 200 and following.json()["items"] != page.json()["items"]


def test_an_unknown_query_parameter_is_a_422_naming_it(gateway, admin):
    answer = gateway.get("/api/v1/budget/budgets?departmnet=brand", headers=admin)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert (error["in"], error["field"]) == ("query", "departmnet")
    assert "department" in error["detail"]


def test_a_query_parameter_given_twice_is_a_422_naming_it(gateway, admin):
    for path in ("/api/v1/budget/budgets?department=brand&department=growth",
                 "/api/v1/budget/budgets?limit=5&limit=50"):
        answer = gateway.get(path, headers=admin)
        assert answer.status_code == 422, path
        [error] = answer.json()["errors"]
        assert (error["in"], error["detail"]) == ("query", "this parameter may be given once")


def test_accept_csv_on_a_json_route_is_406(gateway, admin):
    answer = gateway.get("/api/v1/budget/budgets", headers=admin | {"Accept": "text/csv"})
    assert answer.status_code == 406 and "application/json" in answer.json()["detail"]
    for accept in ("application/json", "*/*", "application/*", "text/csv, application/json;q=0.5"):
        assert gateway.get("/api/v1/budget/budgets",
                           headers=admin | {"Accept": accept}).status_code == 200, accept


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_415_naming_the_header(gateway, admin, content_type):
    headers = admin | ({"Content-Type": content_type} if content_type else {})
    before = gateway.get("/api/v1/budget/budgets?limit=100", headers=admin).json()["items"]
    answer = gateway.post("/api/v1/budget/budgets", headers=headers,
                          content=json.dumps(_budget("as text")).encode())
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["accept"] == "application/json"
    assert "Content-Type: application/json" in answer.json()["detail"]
    assert gateway.get("/api/v1/budget/budgets?limit=100", headers=admin).json()["items"] == before
    # A JSON type with parameters, or a +json type, is JSON.
    for sent in ("application/json; charset=utf-8", "application/merge-patch+json"):
        stored = gateway.post("/api/v1/budget/budgets", headers=admin | {"Content-Type": sent},
                              content=json.dumps(_budget("typed")).encode())
        assert stored.status_code == 201, stored.text


def test_head_and_options_answer_with_the_right_allow(gateway, admin):
    path = "/api/v1/budget/budgets"
    identity = admin | {"Accept-Encoding": "identity"}
    got = gateway.get(path, headers=identity)
    head = gateway.head(path, headers=identity)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    options = gateway.options(path, headers=admin)
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    wrong = gateway.delete(path, headers=admin)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, OPTIONS, POST"


def test_large_answers_are_gzipped_when_asked(gateway, admin):
    document = gateway.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert document.headers["content-encoding"] == "gzip" and document.json()["paths"]
    for name in range(12):
        gateway.post("/api/v1/budget/budgets", headers=admin, json=_budget(f"gz{name}"))
    zipped = gateway.get("/api/v1/budget/budgets?limit=20",
                         headers=admin | {"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding"
    plain = gateway.get("/api/v1/budget/budgets?limit=20",
                        headers=admin | {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    # httpx decoded the gzip answer: the same JSON, sent in fewer bytes.
    assert zipped.json() == plain.json()
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3


def test_a_stopped_service_answers_retry_after(upstreams, keys):
    settings = gateway_settings(upstreams, keys, planner_url="http://127.0.0.1:9")
    with TestClient(create_app(settings)) as client:
        answer = client.get("/api/v1/planner/status", headers=bearer(keys["admin"]))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"


def test_cors_preflight_needs_no_key_and_answers_carry_cors_headers(upstreams, keys):
    origin = "http://localhost:5173"
    settings = gateway_settings(upstreams, keys, cors_origins=origin + ",https://plan.example")
    with TestClient(create_app(settings)) as client:
        preflight = client.options("/api/v1/budget/budgets", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
        answer = client.get("/api/v1/budget/budgets", headers=bearer(keys["viewer"]) | {
            "Origin": origin})
        assert answer.headers["access-control-allow-origin"] == origin
        assert "etag" in answer.headers["access-control-expose-headers"].lower()
        refused = client.options("/api/v1/budget/budgets", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in refused.headers


def test_without_cors_origins_there_are_no_cors_headers(gateway, admin):
    answer = gateway.get("/api/v1/budget/budgets", headers=admin | {"Origin": "http://x.example"})
    assert "access-control-allow-origin" not in answer.headers
