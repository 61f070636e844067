import importlib

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from marketplan.processes import SERVICES
from shared.internal_auth import ROLES
from tests.conftest import TEST_SECRET, ThreadedServer, migrated_database


# Once for the package, not per module: each start migrates three databases and imports three
# apps. Every test makes data of its own and none stops these servers (a stopped or hanging
# service is a URL of its own), so the modules share them. The gateway in front stays one per
# module: its failed-key limiter counts per client, and test_auth's 401s must not lock out
# another module's calls.
@pytest.fixture(scope="package")
def upstreams(request, tmp_path_factory):
    """The three real services, each on its own port and SQLite file."""
    servers = {}
    for service in SERVICES:
        settings_class = type(service.settings())
        url = migrated_database(request, tmp_path_factory, service.migrations, "sqlite")
        settings = settings_class(database_url=url, internal_secret=TEST_SECRET, port=1)
        app = importlib.import_module(service.module).create_app(settings)
        servers[service.name] = ThreadedServer(app).start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="package")
def keys(tmp_path_factory) -> dict[str, str]:
    """One API key per role, in a fresh keys file."""
    store = KeyStore(tmp_path_factory.mktemp("keys") / "api_keys.json")
    found = {role: store.create(role, label=f"test {role}")[1] for role in ROLES}
    found["_file"] = str(store.path)
    return found


def gateway_settings(upstreams, keys, **overrides) -> GatewaySettings:
    urls = {f"{name}_url": server.url for name, server in upstreams.items()}
    return GatewaySettings(keys_file=keys["_file"], internal_secret=TEST_SECRET,
                           **urls | overrides)


@pytest.fixture(scope="module")
def gateway(upstreams, keys):
    with TestClient(create_app(gateway_settings(upstreams, keys))) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
