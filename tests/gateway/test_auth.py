"""The auth matrix through the gateway, against the real services."""
import os
import stat
from pathlib import Path

import pytest

from gateway.auth import KeyStore
from shared.errors import PROBLEM_MEDIA_TYPE
from shared.internal_auth import ROLES
from tests.gateway.conftest import bearer

SERVICE_NAMES = ["calendar", "budget", "planner"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer "}])
def test_no_key_is_401_problem(gateway, headers):
    response = gateway.get("/api/v1/calendar/status", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "marketplan keys create" in response.json()["detail"]


def test_unknown_key_is_401_problem(gateway):
    response = gateway.get("/api/v1/calendar/status", headers=bearer("mp_not-a-real-key-000000"))
    assert response.status_code == 401
    assert "unknown or revoked" in response.json()["detail"]


@pytest.mark.parametrize("service", SERVICE_NAMES)
@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_every_service(gateway, keys, role, service):
    response = gateway.get(f"/api/v1/{service}/status", headers=bearer(keys[role]))
    assert response.status_code == 200
    assert (response.json()["service"], response.json()["role"]) == (service, role)


@pytest.mark.parametrize("role, method, path, allowed", [
    ("viewer", "POST", "/api/v1/calendar/campaigns", False),
    ("viewer", "DELETE", "/api/v1/budget/budgets/b1", False),
    ("viewer", "POST", "/api/v1/budget/budgets/b1/actuals", False),
    ("finance", "POST", "/api/v1/calendar/campaigns", False),
    ("finance", "PATCH", "/api/v1/budget/budgets/b1", False),
    ("finance", "POST", "/api/v1/budget/budgets/b1/reserve/draws", False),
    ("finance", "POST", "/api/v1/budget/budgets/b1/actuals", True),
    ("planner", "POST", "/api/v1/budget/budgets/b1/actuals", False),  # the service agrees
    ("finance", "POST", "/api/v1/budget/optimize", True),
    ("planner", "POST", "/api/v1/planner/schedules", True),
    ("admin", "DELETE", "/api/v1/calendar/campaigns/c1", True),
])
def test_role_policy_for_writes(gateway, keys, role, method, path, allowed):
    response = gateway.request(method, path, headers=bearer(keys[role]), json={})
    if allowed:  # passed the gateway; the service answers (422: `{}` is no valid body there)
        assert response.status_code in (404, 405, 422)
        assert "gateway" not in response.json()["detail"]
    else:
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert role in response.json()["detail"]


def test_client_cannot_forge_an_identity(gateway, keys):
    forged = {"X-Marketplan-Role": "admin", "X-Marketplan-Principal": "key:boss"}
    response = gateway.get("/api/v1/budget/status", headers=bearer(keys["viewer"]) | forged)
    assert response.json()["role"] == "viewer"
    assert response.json()["principal"] != "key:boss"


def test_new_and_revoked_keys_take_effect_without_restart(gateway, keys):
    store = KeyStore(keys["_file"])
    record, key = store.create("planner", label="temp")
    assert gateway.get("/api/v1/planner/status", headers=bearer(key)).status_code == 200
    assert store.revoke(record["id"])
    assert gateway.get("/api/v1/planner/status", headers=bearer(key)).status_code == 401


def test_keys_are_stored_hashed_and_private(keys):
    text = Path(keys["_file"]).read_text()
    assert all(keys[role] not in text for role in ROLES)
    assert stat.S_IMODE(os.stat(keys["_file"]).st_mode) == 0o600


def test_keystore_refuses_bad_input(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(ValueError, match="unknown role"):
        store.create("owner")
    with pytest.raises(ValueError, match="at least 20"):
        store.create("admin", key="short")
    store.create("admin", key="k" * 24)
    assert store.create("admin", key="k" * 24)[0]["id"] == store.list()[0]["id"]  # idempotent
    with pytest.raises(ValueError, match="already exists"):
        store.create("viewer", key="k" * 24)


def test_request_id_is_kept_end_to_end(gateway, keys):
    response = gateway.get("/api/v1/calendar/status",
                           headers=bearer(keys["viewer"]) | {"X-Request-ID": "trace-77"})
    assert response.headers["x-request-id"] == "trace-77"
    assert response.json()["request_id"] == "trace-77"


def test_unknown_service_prefix_is_404_problem(gateway, keys):
    response = gateway.get("/api/v1/billing/status", headers=bearer(keys["admin"]))
    assert response.status_code == 404
    assert "calendar" in response.json()["detail"]
