"""How `marketplan up --replicas N` lays out its processes, without starting any."""
from pathlib import Path

import pytest

from marketplan.up import children_for, replica_environment, run_environment, sqlite_services


@pytest.fixture(autouse=True)
def no_caller_settings(monkeypatch):
    """The caller's environment wins in `up`: keep this machine's out of the layout."""
    for name in ("CALENDAR", "BUDGET", "PLANNER"):
        for setting in ("DATABASE_URL", "CALENDAR_URL", "BUDGET_URL"):
            monkeypatch.delenv(f"{name}_{setting}", raising=False)
        monkeypatch.delenv(f"GATEWAY_{name}_URL", raising=False)


def test_two_replicas_take_consecutive_ports_and_the_gateway_gets_every_address(tmp_path):
    env = run_environment(host="127.0.0.1", port=9000, var_dir=tmp_path, replicas=2)
    assert (env["GATEWAY_CALENDAR_URL"], env["GATEWAY_BUDGET_URL"], env["GATEWAY_PLANNER_URL"]) \
        == ("http://127.0.0.1:9001,http://127.0.0.1:9002",
            "http://127.0.0.1:9003,http://127.0.0.1:9004",
            "http://127.0.0.1:9005,http://127.0.0.1:9006")
    children = children_for(host="127.0.0.1", port=9000, replicas=2, env_file=tmp_path / "up.env",
                            logs=tmp_path)
    assert [(c.name, c.port) for c in children] == [
        ("calendar-1", 9001), ("calendar-2", 9002), ("budget-1", 9003), ("budget-2", 9004),
        ("planner-1", 9005), ("planner-2", 9006), ("gateway", 9000)]
    assert children[3].command[-5:] == ["budget", "--port", "9004", "--env-file",
                                        str(tmp_path / "up.env")]
    assert children[3].log_path == tmp_path / "budget-2.log"


def test_one_replica_keeps_the_plain_names_and_ports(tmp_path):
    env = run_environment(host="127.0.0.1", port=8000, var_dir=tmp_path)
    assert env["GATEWAY_BUDGET_URL"] == "http://127.0.0.1:8002"
    children = children_for(host="127.0.0.1", port=8000, replicas=1, env_file=Path("up.env"),
                            logs=tmp_path)
    assert [(c.name, c.port) for c in children] == [
        ("calendar", 8001), ("budget", 8002), ("planner", 8003), ("gateway", 8000)]


def test_replica_i_calls_replica_i_first_and_the_others_when_it_cannot():
    assert replica_environment(host="h", port=9000, replicas=2, replica=1) == {
        "BUDGET_CALENDAR_URL": "http://h:9002,http://h:9001",
        "PLANNER_CALENDAR_URL": "http://h:9002,http://h:9001",
        "PLANNER_BUDGET_URL": "http://h:9004,http://h:9003"}


def test_sqlite_is_named_until_every_service_has_a_server_database(tmp_path, monkeypatch):
    assert sqlite_services(run_environment(host="h", port=1, var_dir=tmp_path, replicas=2)) == [
        "calendar", "budget", "planner"]
    monkeypatch.setenv("CALENDAR_DATABASE_URL", "postgresql+psycopg://db/calendar")
    monkeypatch.setenv("BUDGET_DATABASE_URL", "postgresql+psycopg://db/budget")
    assert sqlite_services(run_environment(host="h", port=1, var_dir=tmp_path,
                                           replicas=2)) == ["planner"]
