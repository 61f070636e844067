"""Each service starts on SQLite and PostgreSQL with its migrations applied and no drift."""
from importlib import import_module

import pytest
from fastapi.testclient import TestClient

from marketplan.processes import SERVICES
from shared import migrations
from shared.errors import PROBLEM_MEDIA_TYPE
from tests.conftest import TEST_SECRET, migrated_database, signed_headers


@pytest.fixture(scope="module", params=[(s.name, backend) for s in SERVICES
                                        for backend in ("sqlite", "postgresql")],
                ids=lambda param: "-".join(param))
def service(request, tmp_path_factory):
    """One running app per service and backend for the module, on a database its migrations
    made (`migrated_database`: the migrations run once per run and backend, then copied)."""
    name, backend = request.param
    process = next(s for s in SERVICES if s.name == name)
    database_url = migrated_database(request, tmp_path_factory, process.migrations, backend)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"{process.env_prefix}DATABASE_URL", database_url)
        patch.setenv("MARKETPLAN_INTERNAL_SECRET", TEST_SECRET)
        with TestClient(import_module(process.module).create_app(process.settings())) as client:
            yield process, client, database_url


def test_migrations_match_the_models(service):
    process, _, database_url = service
    migrations.check(process.migrations, database_url)  # raises on drift


def test_status_answers_a_signed_call(service):
    process, client, database_url = service
    path = f"/api/v1/{process.name}/status"
    response = client.get(path, headers=signed_headers("GET", path, role="viewer") |
                          {"X-Request-ID": "abc-1"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "abc-1"
    assert response.json() | {"version": None} == {
        "service": process.name, "version": None, "schema_current": True,
        "database": database_url.split(":")[0].split("+")[0],
        "principal": "key:test", "role": "viewer", "request_id": "abc-1"}


def test_direct_call_without_internal_credential_is_401(service):
    process, client, _ = service
    response = client.get(f"/api/v1/{process.name}/status")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "gateway" in response.json()["detail"]


def test_health_readiness_and_metrics_are_open(service):
    process, client, _ = service
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    path = f"/api/v1/{process.name}/status"
    client.get(path, headers=signed_headers("GET", path))
    metrics = client.get("/metrics").text
    assert f'handler="/api/v1/{process.name}/status"' in metrics
    assert "process_cpu_seconds_total" in metrics


def test_status_reports_an_unmigrated_schema(database_url, monkeypatch):
    budget = next(s for s in SERVICES if s.name == "budget")
    monkeypatch.setenv("BUDGET_DATABASE_URL", database_url)
    monkeypatch.setenv("MARKETPLAN_INTERNAL_SECRET", TEST_SECRET)
    from services.budget.app import create_app

    with TestClient(create_app(budget.settings())) as client:
        path = "/api/v1/budget/status"
        assert client.get(path, headers=signed_headers("GET", path)).json()["schema_current"] is False
