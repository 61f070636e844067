"""docker-compose.yml agrees with the settings classes (no Docker engine here to run it)."""
import re
from importlib import import_module
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from marketplan.processes import GATEWAY, PROCESSES, SERVICES

ROOT = Path(__file__).resolve().parent.parent
FAKE_ENV = {"POSTGRES_PASSWORD": "pw", "MARKETPLAN_INTERNAL_SECRET": "s" * 40,
            "MARKETPLAN_ADMIN_KEY": "a" * 30}


def interpolate(value: str) -> str:
    """Compose's `${VAR}` / `${VAR:?message}` substitution, with fake secrets."""
    value = re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", lambda m: FAKE_ENV[m.group(1)], value)
    return value.replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def process_settings(compose: dict, name: str, monkeypatch):
    environment = {k: interpolate(str(v)) for k, v in compose[name]["environment"].items()}
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return environment, PROCESSES[name].settings()


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_each_process_is_served_with_its_settings(compose, name, monkeypatch):
    environment, settings = process_settings(compose, name, monkeypatch)
    assert f"marketplan serve {name}" in " ".join(compose[name]["command"])
    prefix = PROCESSES[name].env_prefix
    unknown = {k for k in environment if k.startswith(prefix)
               and k[len(prefix):].lower() not in type(settings).model_fields}
    assert not unknown, f"settings {unknown} do not exist"
    assert settings.environment == "production" and settings.host == "0.0.0.0"
    assert f"127.0.0.1:{settings.port}/" in " ".join(compose[name]["healthcheck"]["test"])


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_each_service_has_its_own_postgres_database(compose, service, monkeypatch):
    _, settings = process_settings(compose, service, monkeypatch)
    url = make_url(settings.database_url)
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg", "postgres", service)
    assert f"CREATE DATABASE {service} " in (ROOT / "deploy/create-databases.sql").read_text()
    assert compose[service]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    migrate_env = {k: interpolate(v) for k, v in compose["migrate"]["environment"].items()}
    assert migrate_env[f"{service.upper()}_DATABASE_URL"] == settings.database_url


def test_gateway_reaches_each_service_on_its_port(compose, monkeypatch):
    _, gateway = process_settings(compose, GATEWAY.name, monkeypatch)
    for service in SERVICES:
        _, settings = process_settings(compose, service.name, monkeypatch)
        assert gateway.upstream_urls()[service.name] == f"http://{service.name}:{settings.port}"
        assert compose["gateway"]["depends_on"][service.name]["condition"] == "service_healthy"
    assert compose["gateway"]["ports"] == [f"{gateway.port}:{gateway.port}"]


def test_dockerfile_installs_the_package_and_runs_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in dockerfile and "USER marketplan" in dockerfile
    for package in ("shared", "services", "gateway", "marketplan"):
        assert f"COPY {package} ./{package}" in dockerfile
    # deploy/k8s/ runs it in every service pod's init container.
    assert "COPY deploy/wait_for_schema.py ./deploy/" in dockerfile


@pytest.mark.parametrize("service", ["budget", "planner"])
def test_solver_services_run_several_replicas(compose, service):
    assert compose[service]["deploy"]["replicas"] >= 2
    # Replicas cannot share a published host port; the gateway reaches them by name.
    assert "ports" not in compose[service] and "container_name" not in compose[service]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_up_migrates_the_folder_each_app_checks_at_startup(service):
    # `up` finds the folder without importing the app; the app checks its own at startup.
    assert service.migrations == import_module(service.module).MIGRATIONS
    assert (service.migrations / "env.py").is_file()
