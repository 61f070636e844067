"""The running system for the generated clients: three services and the gateway, each a real
uvicorn server on its own port, and the tools that turn the merged document into clients."""
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app as create_gateway
from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from marketplan.processes import SERVICES
from tests.conftest import TEST_SECRET, ThreadedServer, migrated_database

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# Installed once per package.json and reused; npm's own cache keeps the tarballs.
NODE_TOOLS = ROOT / "var" / "node-tools"
PACKAGE = "marketplan_api_client"


@pytest.fixture(scope="session")
def system(request, tmp_path_factory) -> dict:
    """The whole API behind a real gateway; budget and planner read the real calendar."""
    var = tmp_path_factory.mktemp("system")
    servers: dict[str, ThreadedServer] = {}
    for service in SERVICES:  # calendar first: the others are pointed at it
        url = migrated_database(request, tmp_path_factory, service.migrations, "sqlite")
        extra = {"calendar_url": servers["calendar"].url} if servers else {}
        settings = type(service.settings())(database_url=url, internal_secret=TEST_SECRET,
                                            port=1, **extra)
        app = importlib.import_module(service.module).create_app(settings)
        servers[service.name] = ThreadedServer(app).start()
    keys = KeyStore(var / "api_keys.json")
    admin = keys.create("admin", label="clients test")[1]
    settings = GatewaySettings(keys_file=str(keys.path), internal_secret=TEST_SECRET,
                               **{f"{n}_url": s.url for n, s in servers.items()})
    gateway = ThreadedServer(create_gateway(settings)).start()
    yield {"url": gateway.url, "admin": admin}
    for server in (gateway, *servers.values()):
        server.stop()


@pytest.fixture(scope="session")
def document(system, tmp_path_factory) -> Path:
    """The merged OpenAPI document as the running gateway serves it."""
    path = tmp_path_factory.mktemp("document") / "openapi.json"
    answer = httpx.get(system["url"] + "/openapi.json", timeout=30)
    answer.raise_for_status()
    path.write_text(json.dumps(answer.json()))
    return path


def _generator_output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def python_client(document, tmp_path_factory):
    """The client openapi-python-client generates, imported; any generator warning fails."""
    out = tmp_path_factory.mktemp("python-client")
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: only the generator is judged
    result = subprocess.run(
        [str(Path(sys.executable).with_name("openapi-python-client")), "generate",
         "--path", str(document), "--output-path", str(out / PACKAGE), "--meta", "none",
         "--config", str(config)], capture_output=True, text=True, timeout=300)
    output = _generator_output(result)
    assert result.returncode == 0, output
    # The generator exits 0 after dropping schemas or answers it could not read; those are
    # what a script loses, so any warning is a failure here.
    assert "Warning" not in output and "Unable" not in output, output
    sys.path.insert(0, str(out))
    yield importlib.import_module(PACKAGE)
    sys.path.remove(str(out))


def _node_missing(reason: str) -> None:
    """Skip where Node cannot be had; in CI (where .ci/run installs it) fail instead."""
    if os.environ.get("CI") or os.environ.get("MARKETPLAN_REQUIRE_NODE"):
        pytest.fail(f"{reason}; CI must run the TypeScript check (.ci/run installs Node).")
    pytest.skip(f"{reason}: install Node and npm (Debian: apt-get install nodejs npm) to "
                "check the TypeScript types.")


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """openapi-typescript and tsc at the versions tests/clients/package.json pins."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        _node_missing("Node or npm is not installed")
    manifest = (HERE / "package.json").read_text()
    installed = NODE_TOOLS / "package.json"
    if not installed.exists() or installed.read_text() != manifest or not (
            NODE_TOOLS / "node_modules" / ".bin" / "tsc").exists():
        NODE_TOOLS.mkdir(parents=True, exist_ok=True)
        installed.write_text(manifest)
        result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix",
                                 str(NODE_TOOLS)], capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            installed.unlink()
            _node_missing(f"npm could not install the tools: {result.stderr[-2000:]}")
    return NODE_TOOLS / "node_modules" / ".bin"
