"""Regression tests for faults the schemathesis run found and that were fixed in shared/."""
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.errors import PROBLEM_MEDIA_TYPE, install_error_handlers


class Thing(BaseModel):
    name: str


def test_a_body_that_is_not_utf8_is_the_documented_422():
    # Was FastAPI's undocumented 400 "There was an error parsing the body" (schemathesis'
    # status_code_conformance: ST103 on every route with a body, sent bytes such as b"P\xe90").
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    def create_thing(thing: Thing) -> Thing:
        return thing

    response = TestClient(app).post("/things", content=b"P\xe90\x1a",
                                    headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["errors"] == [{"in": "body", "field": "", "type": "json_invalid",
                                          "detail": "not UTF-8 JSON text"}]
