import importlib

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from marketplan.processes import SERVICES
from shared import migrations
from shared.internal_auth import ROLES
from tests.conftest import TEST_SECRET, ThreadedServer


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    """The three real services, each on its own port and SQLite file."""
    var = tmp_path_factory.mktemp("services")
    servers = {}
    for service in SERVICES:
        settings_class = type(service.settings())
        url = f"sqlite:///{var}/{service.name}.db"
        migrations.upgrade(service.migrations, url)
        settings = settings_class(database_url=url, internal_secret=TEST_SECRET, port=1)
        app = importlib.import_module(service.module).create_app(settings)
        servers[service.name] = ThreadedServer(app).start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
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
