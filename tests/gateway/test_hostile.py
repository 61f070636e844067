"""The gateway under faults and abuse, against a stand-in service that checks the internal
credential like a real one: closed connections, retries, limits, headers, the role policy."""
import threading
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from gateway.policy import authorize, runs_solver
from shared.errors import Forbidden
from shared.internal_auth import Caller, InternalAuthMiddleware
from tests.conftest import TEST_SECRET, ThreadedServer
from tests.postgres import free_port

SOLVE_SECONDS = 1.0


def stand_in() -> FastAPI:
    app = FastAPI()
    app.add_middleware(InternalAuthMiddleware, secret=TEST_SECRET.encode())
    app.state.writes = Counter()

    @app.post("/api/v1/calendar/boom")
    async def fail() -> None:
        # Unhandled: uvicorn answers 500 and then closes the kept-alive connection unasked.
        raise RuntimeError("boom")

    @app.post("/api/v1/calendar/writes")
    async def write(n: int, request: Request) -> dict:
        app.state.writes[n] += 1
        return {"n": n, "body": await request.json()}

    @app.get("/api/v1/calendar/reads")
    async def read() -> dict:
        return {"ok": True}

    @app.post("/api/v1/budget/optimize")
    def solve() -> dict:
        threading.Event().wait(SOLVE_SECONDS)
        return {"status": "optimal"}

    return app


@pytest.fixture(scope="module")
def upstream():
    server = ThreadedServer(stand_in()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, str]:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "api_keys.json")
    found = {role: store.create(role)[1] for role in ("admin", "planner", "viewer")}
    return found | {"_file": str(store.path)}


def settings_for(url: str, keys: dict, **overrides) -> GatewaySettings:
    return GatewaySettings(keys_file=keys["_file"], internal_secret=TEST_SECRET,
                           calendar_url=url, budget_url=url, planner_url=url, **overrides)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_writes_after_a_500_that_closed_the_connection_all_apply_once(upstream, keys):
    writes = upstream.server.config.app.state.writes
    writes.clear()
    statuses = Counter()
    with TestClient(create_app(settings_for(upstream.url, keys))) as gateway:
        for round_ in range(5):
            statuses[gateway.post("/api/v1/calendar/boom",
                                  headers=bearer(keys["admin"])).status_code] += 1
            for i in range(30):
                statuses[gateway.post(f"/api/v1/calendar/writes?n={100 * round_ + i}",
                                      json={"i": i}, headers=bearer(keys["admin"])
                                      ).status_code] += 1
                statuses[gateway.get("/api/v1/calendar/reads",
                                     headers=bearer(keys["viewer"])).status_code] += 1
    assert statuses == {500: 5, 200: 300}
    assert sorted(writes) == [100 * r + i for r in range(5) for i in range(30)]
    assert set(writes.values()) == {1}


def test_a_write_that_could_not_connect_is_sent_again_once_the_service_is_up(keys):
    port = free_port()
    app = stand_in()
    server = ThreadedServer(app, port=port)
    # Tries at 0, 0.05, 0.15, 0.35, 0.75, 1.55, 3.15, 6.35 s: the service starts in between.
    settings = settings_for(f"http://127.0.0.1:{port}", keys, upstream_connect_retries=7)
    with TestClient(create_app(settings)) as gateway:
        starter = threading.Timer(0.2, server.start)
        starter.start()
        try:
            response = gateway.post("/api/v1/calendar/writes?n=7", json={},
                                    headers=bearer(keys["planner"]))
        finally:
            starter.join()
            server.stop()
    assert response.status_code == 200, response.text
    assert app.state.writes == {7: 1}


def test_failed_keys_are_limited_per_client(upstream, keys):
    with TestClient(create_app(settings_for(upstream.url, keys,
                                            auth_failures_per_minute=3))) as gateway:
        wrong = bearer("mp_wrong-key-0000000000000000")
        assert [gateway.get("/api/v1/calendar/reads", headers=wrong).status_code
                for _ in range(3)] == [401, 401, 401]
        limited = gateway.get("/api/v1/calendar/reads", headers=wrong)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "20"  # one failure back every 60/3 s
        # While limited, even a right key is not looked at: guessing gains nothing.
        assert gateway.get("/api/v1/calendar/reads",
                           headers=bearer(keys["viewer"])).status_code == 429


def test_solves_are_limited_per_key(upstream, keys):
    gateway = ThreadedServer(create_app(settings_for(upstream.url, keys,
                                                     solves_per_key=1))).start()
    try:
        def solve(key: str) -> int:
            return httpx.post(gateway.url + "/api/v1/budget/optimize", headers=bearer(key),
                              timeout=10).status_code

        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(solve(keys["planner"])))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        # Another key is not held back by the first key's solves.
        other = solve(keys["admin"])
        for thread in threads:
            thread.join()
        assert sorted(results) == [200, 429] and other == 200
        assert solve(keys["planner"]) == 200  # the slot is free again
    finally:
        gateway.stop()


def test_every_answer_carries_security_headers(upstream, keys):
    with TestClient(create_app(settings_for(upstream.url, keys))) as gateway:
        answers = {
            "proxied": gateway.get("/api/v1/calendar/reads", headers=bearer(keys["viewer"])),
            "refused": gateway.get("/api/v1/calendar/reads"),
            "unknown": gateway.get("/nowhere"),
            "health": gateway.get("/healthz"),
            "docs": gateway.get("/docs"),
        }
    for name, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", name
        assert answer.headers["referrer-policy"] == "no-referrer", name
        assert answer.headers["x-frame-options"] == "DENY", name
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], name
    assert answers["proxied"].headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src 'self'" in answers["docs"].headers["content-security-policy"]
    assert answers["proxied"].headers["cache-control"] == "no-store"
    assert answers["refused"].headers["cache-control"] == "no-store"


def test_metrics_need_an_admin_key_unless_public(upstream, keys):
    with TestClient(create_app(settings_for(upstream.url, keys))) as gateway:
        assert gateway.get("/metrics").status_code == 401
        assert gateway.get("/metrics", headers=bearer(keys["viewer"])).status_code == 403
        metrics = gateway.get("/metrics", headers=bearer(keys["admin"]))
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text
    with TestClient(create_app(settings_for(upstream.url, keys, metrics_public=True))) as gateway:
        assert gateway.get("/metrics").status_code == 200


@pytest.mark.parametrize("role, method, path, allowed", [
    ("planner", "POST", "/api/v1/budget/budgets/b1/actuals", False),
    ("finance", "POST", "/api/v1/budget/budgets/b1/actuals", True),
    ("admin", "POST", "/api/v1/budget/budgets/b1/actuals", True),
    ("viewer", "POST", "/api/v1/budget/budgets/b1/actuals", False),
    ("finance", "POST", "/api/v1/budget/optimize", True),
    ("finance", "POST", "/api/v1/budget/budgets/b1/plans", False),
    ("planner", "POST", "/api/v1/budget/budgets/b1/plans", True),
    ("viewer", "GET", "/api/v1/budget/budgets/b1/actuals.csv", True),
    ("viewer", "POST", "/api/v1/planner/solve", False),
    ("finance", "POST", "/api/v1/budget/budgets/b1/campaign-funding/optimize", True),
    ("finance", "POST", "/api/v1/budget/budgets/b1/pending/p1/confirm", True),
    ("finance", "POST", "/api/v1/budget/budgets/b1/pending/p1/cancel", True),
    ("viewer", "POST", "/api/v1/budget/budgets/b1/pending/p1/confirm", False),
    ("finance", "POST", "/api/v1/budget/budgets/b1/reserve/draws", False),
    ("finance", "POST", "/api/v1/budget/jobs/j1/cancel", True),
    ("finance", "POST", "/api/v1/planner/jobs/j1/cancel", False),
])
def test_one_role_policy(role, method, path, allowed):
    caller = Caller("key:x", role)
    if allowed:
        authorize(caller, method, path)
    else:
        with pytest.raises(Forbidden, match=role):
            authorize(caller, method, path)


@pytest.mark.parametrize("method, path, solver", [
    ("POST", "/api/v1/budget/optimize", True),
    ("POST", "/api/v1/budget/budgets/b1/plans", True),
    ("POST", "/api/v1/planner/solve", True),
    ("POST", "/api/v1/planner/schedules", True),
    ("POST", "/api/v1/planner/schedules/s1/replan", True),
    ("GET", "/api/v1/planner/schedules/s1", False),
    ("POST", "/api/v1/budget/budgets/b1/plans/2/approve", False),
])
def test_solver_requests_are_recognised(method, path, solver):
    assert runs_solver(method, path) is solver
