import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from shared.errors import PROBLEM_MEDIA_TYPE, Conflict, install_error_handlers
from shared.requests import install_request_id
from shared.types import Amount, Currency, TimeLimit


class Thing(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=0)


class Priced(BaseModel):
    currency: Currency
    total: Amount
    time_limit_seconds: TimeLimit = 30


@pytest.fixture
def client():
    app = FastAPI()
    install_error_handlers(app)
    install_request_id(app)

    @app.post("/things")
    def create_thing(thing: Thing, limit: int = 10) -> Thing:
        return thing

    @app.post("/priced")
    def price(priced: Priced) -> Priced:
        return priced

    @app.get("/conflict")
    def conflict():
        raise Conflict("The campaign is live; cancel it first.", allowed=["cancelled"])

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals /etc/passwd")

    return TestClient(app, raise_server_exceptions=False)


def test_validation_error_lists_every_bad_field(client):
    response = client.post("/things?limit=x", json={"name": "", "count": -1})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert body["type"].endswith("validation-error") and body["status"] == 422
    fields = {(e["in"], e["field"]) for e in body["errors"]}
    assert fields == {("body", "name"), ("body", "count"), ("query", "limit")}
    assert "body count" in body["detail"]


@pytest.mark.parametrize("seconds", ["NaN", "Infinity", -1, 0, 60.5, 1e300, "soon", None, [1]])
def test_a_time_limit_out_of_range_says_the_range_in_seconds(client, seconds):
    response = client.post("/priced", json={"currency": "EUR", "total": "1",
                                            "time_limit_seconds": seconds})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "time_limit_seconds"
    assert error["detail"].startswith(
        "time_limit_seconds must be a number of seconds above 0 and at most 60;")


def test_a_field_error_reads_as_its_rule_and_a_bound_as_a_number(client):
    response = client.post("/priced", json={"currency": "usd", "total": "1e16"})
    details = {e["field"]: e["detail"] for e in response.json()["errors"]}
    assert details == {
        "currency": "'usd' is not an ISO 4217 currency code; use e.g. USD, EUR, JPY",
        "total": "Input should be less than or equal to 1000000000000000"}


def test_malformed_json_is_a_422_not_a_500(client):
    response = client.post("/things", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "json_invalid"


def test_domain_problem_keeps_its_status_and_extensions(client):
    response = client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {"type": "urn:marketplan:problem:conflict",
                               "title": "Conflict with the current state", "status": 409,
                               "detail": "The campaign is live; cancel it first.",
                               "allowed": ["cancelled"]}


def test_unknown_route_and_method_are_problems(client):
    assert client.get("/nope").json()["detail"].startswith("No resource at /nope")
    response = client.delete("/things")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


def test_unexpected_error_is_logged_with_request_id_and_hidden(client, caplog):
    with caplog.at_level(logging.ERROR, logger="marketplan.errors"):
        response = client.get("/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert "passwd" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-42"
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)
