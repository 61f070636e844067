"""Upstream failures become 503/504 problems for that service only; readiness reports them."""
import contextlib
import socket
import threading

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from shared.errors import PROBLEM_MEDIA_TYPE
from tests.gateway.conftest import bearer, gateway_settings
from tests.postgres import free_port


@pytest.fixture
def silent_upstream():
    """A port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_stopped_service_is_503_while_the_others_answer(upstreams, keys):
    settings = gateway_settings(upstreams, keys, calendar_url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as gateway:
        down = gateway.get("/api/v1/calendar/status", headers=bearer(keys["viewer"]))
        assert down.status_code == 503
        assert down.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert down.json()["service"] == "calendar"
        assert "127.0.0.1" not in down.text  # no internals leak
        assert gateway.get("/api/v1/budget/status",
                           headers=bearer(keys["viewer"])).status_code == 200
        ready = gateway.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["upstreams"] == {"budget": "ready", "calendar": "unavailable",
                                             "planner": "ready"}


def test_a_hanging_service_is_504_after_the_timeout(upstreams, keys, silent_upstream):
    settings = gateway_settings(upstreams, keys, planner_url=silent_upstream,
                                upstream_timeout=0.5)
    with TestClient(create_app(settings)) as gateway:
        response = gateway.get("/api/v1/planner/status", headers=bearer(keys["admin"]))
        assert response.status_code == 504
        assert response.json()["type"].endswith("upstream-timeout")


def test_readyz_is_200_when_all_services_are_ready(gateway):
    assert gateway.get("/readyz").json() == {
        "status": "ready", "upstreams": {"budget": "ready", "calendar": "ready",
                                         "planner": "ready"}}


def test_an_oversized_body_is_413(upstreams, keys):
    with TestClient(create_app(gateway_settings(upstreams, keys, max_body_bytes=100))) as gateway:
        response = gateway.post("/api/v1/budget/optimize", headers=bearer(keys["admin"]),
                                content=b"x" * 101)
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


def test_proxied_calls_are_counted_in_metrics(gateway, keys):
    gateway.get("/api/v1/budget/status", headers=bearer(keys["viewer"]))
    gateway.get("/api/v1/budget/status")
    metrics = gateway.get("/metrics", headers=bearer(keys["admin"])).text
    assert 'http_requests_total{handler="/api/{path:path}",method="GET",status="200"}' in metrics
    assert 'http_requests_total{handler="/api/{path:path}",method="GET",status="401"}' in metrics
