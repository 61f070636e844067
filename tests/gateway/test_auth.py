"""The auth matrix through the gateway, against the real services."""
import importlib
import json
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from marketplan.cli import main as marketplan
from marketplan.processes import SERVICES
from shared.errors import PROBLEM_MEDIA_TYPE
from shared.internal_auth import ROLES
from tests.conftest import TEST_SECRET, ThreadedServer, migrated_database
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


@pytest.mark.parametrize("name, error", [
    ("", "1 to 200"), ("   ", "1 to 200"), ("x" * 201, "1 to 200"),
    ("Ana\nRuiz", "control characters"), ("Ana\tRuiz", "control characters"),
    ("Ana\x00", "control characters"),
])
def test_keystore_refuses_a_bad_name(tmp_path, name, error):
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(ValueError, match=error):
        store.create("viewer", name=name)
    assert store.list() == []


def test_keys_list_shows_each_name_and_old_keys_go_by_label_or_id(tmp_path):
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    store.create("planner", name="  José Ñúñez 王芳  ", label="laptop")
    old = [{"id": "key_old1", "role": "viewer", "label": "BI export", "hash": "a" * 64,
            "created_at": "2026-01-01T00:00:00+00:00"},
           {"id": "key_old2", "role": "viewer", "label": "", "hash": "b" * 64,
            "created_at": "2026-01-01T00:00:00+00:00"}]
    records = json.loads(path.read_text())["keys"]
    path.write_text(json.dumps({"keys": records + old}))
    assert [(k["role"], k["name"]) for k in store.list()] == [
        ("planner", "José Ñúñez 王芳"), ("viewer", "BI export"), ("viewer", "key_old2")]


def run_cli(monkeypatch, keys_file: Path, *argv: str) -> int:
    monkeypatch.setenv("GATEWAY_KEYS_FILE", str(keys_file))
    with pytest.raises(SystemExit) as done:
        marketplan(["keys", *argv])
    return done.value.code


def test_cli_creates_a_named_key_and_lists_it(tmp_path, monkeypatch, capsys):
    keys_file = tmp_path / "keys.json"
    assert run_cli(monkeypatch, keys_file, "create", "--role", "planner",
                   "--name", "Ana Ruiz") == 0
    key, message = capsys.readouterr()
    assert key.strip().startswith("mp_") and "of Ana Ruiz" in message
    assert run_cli(monkeypatch, keys_file, "list") == 0
    assert "planner  " in (listed := capsys.readouterr().out) and listed.rstrip().endswith(
        "Ana Ruiz")
    assert KeyStore(keys_file).authenticate(f"Bearer {key.strip()}").name == "Ana Ruiz"


def test_cli_refuses_a_bad_name_or_none(tmp_path, monkeypatch, capsys):
    keys_file = tmp_path / "keys.json"
    assert run_cli(monkeypatch, keys_file, "create", "--role", "viewer",
                   "--name", "line\nbreak") == 2
    assert "control characters" in capsys.readouterr().err
    assert run_cli(monkeypatch, keys_file, "create", "--role", "viewer", "--label", "BI") == 2
    assert "--name" in capsys.readouterr().err
    assert KeyStore(keys_file).list() == []


@pytest.fixture(params=["sqlite", "postgresql"])
def named_stack(request, tmp_path, tmp_path_factory):
    """The gateway and the three real services on one backend, with keys of Ana (planner),
    Ben (finance) and a key made before names (label "ops script")."""
    servers: dict[str, ThreadedServer] = {}
    for service in SERVICES:   # calendar first: the others call it
        url = migrated_database(request, tmp_path_factory, service.migrations, request.param)
        peers = {f"{name}_url": server.url for name, server in servers.items()}
        # No event polling: these tests change nothing in the calendar.
        extra = peers | {"events_poll_seconds": 0} if peers else {}
        settings = type(service.settings())(database_url=url, internal_secret=TEST_SECRET,
                                            port=1, **extra)
        app = importlib.import_module(service.module).create_app(settings)
        servers[service.name] = ThreadedServer(app).start()
    store = KeyStore(tmp_path / "keys.json")
    keys = {"ana": store.create("planner", name="Ana Ruiz-Ñúñez")[1],
            "ben": store.create("finance", name="Ben = Finance; 本")[1],
            "old": store.create("planner", label="ops script")[1]}
    settings = GatewaySettings(keys_file=str(store.path), internal_secret=TEST_SECRET,
                               **{f"{name}_url": server.url for name, server in servers.items()})
    try:
        with TestClient(create_app(settings)) as gateway:
            yield gateway, {who: bearer(key) for who, key in keys.items()}
    finally:
        for server in servers.values():
            server.stop()


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def test_names_are_shown_wherever_budget_and_planner_show_a_caller(named_stack):
    gateway, as_ = named_stack
    budgets = "/api/v1/budget/budgets"
    budget = ok(gateway.post(budgets, headers=as_["ana"], json={
        "name": "FY27", "department": "growth", "currency": "USD", "start_date": "2027-01-01",
        "end_date": "2027-06-30", "total": "100000.00", "reserve": {"percent": "10"},
        "four_eyes_above": "1000.00"}), 201)
    path = f"{budgets}/{budget['id']}"
    channel = ok(gateway.post(f"{path}/channels", headers=as_["ana"], json={
        "name": "search", "kind": "search", "response": {"type": "linear", "roi": "2"}}), 201)
    plan = ok(gateway.post(f"{path}/plans", headers=as_["old"], json={}), 201)
    assert (plan["created_by_name"], plan["approved_by_name"]) == ("ops script", None)
    asked = ok(gateway.post(f"{path}/plans/1/approve", headers=as_["ana"]), 202)
    assert asked["requested_by_name"] == "Ana Ruiz-Ñúñez"
    ok(gateway.post(f"{path}/pending/{asked['id']}/confirm", headers=as_["ben"]))
    approved = ok(gateway.get(f"{path}/plans/1", headers=as_["ben"]))
    assert (approved["created_by_name"], approved["approved_by_name"]) == \
        ("ops script", "Ben = Finance; 本")
    [summary] = ok(gateway.get(f"{path}/plans", headers=as_["ben"]))["items"]
    assert summary["created_by_name"] == "ops script"

    draws = f"{path}/reserve/draws"
    drawn = ok(gateway.post(draws, headers=as_["ana"], json={
        "amount": "10", "reason": "test", "channel_id": channel["id"]}), 201)
    assert (drawn["author_name"], drawn["confirmed_by_name"]) == ("Ana Ruiz-Ñúñez", None)
    held = ok(gateway.post(draws, headers=as_["ana"], json={
        "amount": "2000", "reason": "launch", "channel_id": channel["id"]}), 202)
    assert held["requested_by_name"] == "Ana Ruiz-Ñúñez"
    confirmed = ok(gateway.post(f"{path}/pending/{held['id']}/confirm", headers=as_["ben"]))
    assert confirmed["decided_by_name"] == "Ben = Finance; 本"
    entries = ok(gateway.get(f"{path}/reserve/entries", headers=as_["ben"]))["items"]
    assert [(e["author_name"], e["confirmed_by_name"]) for e in entries] == [
        ("Ana Ruiz-Ñúñez", None), ("Ana Ruiz-Ñúñez", "Ben = Finance; 本")]
    csv = gateway.get(f"{path}/reserve/entries.csv", headers=as_["ben"]).content.decode(
        "utf-8-sig")
    assert ",Ana Ruiz-Ñúñez,key:" in csv and ",Ben = Finance; 本," in csv

    audit = ok(gateway.get(f"{path}/audit", headers=as_["ben"], params={"limit": 100}))
    by_action = {e["action"]: (e["principal"], e["principal_name"]) for e in audit["items"]}
    assert by_action["budget.create"][1] == "Ana Ruiz-Ñúñez"
    assert by_action["plan.create"][1] == "ops script"
    assert by_action["pending.confirmed"][1] == "Ben = Finance; 本"
    assert all(principal.startswith("key:") for principal, _ in by_action.values())
    audit_csv = gateway.get(f"{path}/audit.csv", headers=as_["ben"]).content.decode("utf-8-sig")
    assert ",Ana Ruiz-Ñúñez,planner," in audit_csv

    ok(gateway.post("/api/v1/planner/resources", headers=as_["ana"], json={
        "name": "writer", "skills": ["copy"], "hours_per_day": "8"}), 201)
    ok(gateway.post("/api/v1/planner/tasks", headers=as_["ana"], json={
        "id": "names-copy", "name": "copy", "campaign_id": "cmp_names", "skill": "copy",
        "effort_hours": "8", "earliest_start": "2027-06-07", "deadline": "2027-06-18"}), 201)
    schedule = ok(gateway.post("/api/v1/planner/schedules", headers=as_["ana"], json={
        "start": "2027-06-07", "horizon_days": 30, "campaign_ids": ["cmp_names"]}), 201)
    assert schedule["created_by_name"] == "Ana Ruiz-Ñúñez"
    replan = ok(gateway.post(f"/api/v1/planner/schedules/{schedule['id']}/replan",
                             headers=as_["old"], json={"as_of": "2027-06-01"}), 201)
    assert replan["created_by_name"] == "ops script"
    listed = ok(gateway.get("/api/v1/planner/schedules", headers=as_["ben"]))["items"]
    assert [s["created_by_name"] for s in listed] == ["ops script", "Ana Ruiz-Ñúñez"]
