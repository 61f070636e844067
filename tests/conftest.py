import os
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest
import uvicorn

from shared import migrations
from shared.internal_auth import Caller, InternalAuth, sign
from tests.postgres import PostgresServer, free_port

TEST_SECRET = "test-internal-secret-0123456789-abcdef"


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the run; skipped (with the reason) if it cannot start."""
    server = PostgresServer()
    try:
        server.start()
    except RuntimeError as error:
        server.stop()
        if os.environ.get("MARKETPLAN_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here but could not start: {error}")
        pytest.skip(f"PostgreSQL could not start: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def system(request, tmp_path_factory):
    """The running system (`marketplan up`) the e2e and fuzz tests share on one backend;
    parametrize with indirect=True to pick one. One start per backend for the session, not
    one per package (a start is ~10 s on CI's two cores); the fuzz runs after the e2e tests
    that share it (collection order), so their data are made before its thousands of calls."""
    from tests.e2e.conftest import running
    # Schemathesis sends requests without the key or with a wrong one on purpose: with the
    # default failed-key limit the address would be locked out (429) after ten of them, and
    # the rest of its run would test nothing but the lockout. (The lockout's own tests are in
    # tests/gateway.)
    # A killed consumer's lease lapses in 2 s, not the default 10 s: the restarted process
    # takes the feed over that much sooner (tests/e2e/test_propagation.py kills the planner).
    env = {"GATEWAY_AUTH_FAILURES_PER_MINUTE": "1000000", "PLANNER_EVENTS_LEASE_SECONDS": "2",
           "BUDGET_EVENTS_LEASE_SECONDS": "2"}
    # Empty databases: `up` migrates them, as on a fresh machine (tests/e2e/test_up.py).
    with running(request, request.param, tmp_path_factory.mktemp("system"), env,
                 migrated=False) as started:
        yield started


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database for one test, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.db"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:16]}")


# Migrated templates of this run, by (migrations folder, backend): a SQLite file or a PostgreSQL
# database name.
_TEMPLATES: dict[tuple[Path, str], str] = {}


def migrated_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                      service_migrations: Path, backend: str) -> str:
    """The URL of a fresh database at the newest revision of `service_migrations` on
    `backend`: a copy of one database migrated once per run (a file copy on SQLite, CREATE
    DATABASE … TEMPLATE on PostgreSQL, 0.05-0.3 s), where running the migrations again for each
    module and backend took 0.5-2 s. (The migrations themselves are tested in tests/services
    and by each `marketplan up`.)"""
    name = service_migrations.parent.name  # the service's package: calendar, budget, planner
    if backend == "sqlite":
        template = _TEMPLATES.get((service_migrations, backend))
        if template is None:
            template = str(tmp_path_factory.mktemp(f"template-{name}") / f"{name}.db")
            migrations.upgrade(service_migrations, f"sqlite:///{template}")
            _TEMPLATES[service_migrations, backend] = template
        copy = tmp_path_factory.mktemp(name) / f"{name}.db"
        # The backup API copies a consistent database whatever its journal holds.
        with closing(sqlite3.connect(template)) as source, \
                closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        return f"sqlite:///{copy}"
    server = request.getfixturevalue("postgres")
    template = _TEMPLATES.get((service_migrations, backend))
    if template is None:
        template = f"template_{name}_{uuid.uuid4().hex[:8]}"
        # The migrations' engine has no pool and is disposed: no session keeps the template.
        migrations.upgrade(service_migrations, server.create_database(template))
        _TEMPLATES[service_migrations, backend] = template
    return server.create_database(f"{name[0]}_{uuid.uuid4().hex[:16]}", template=template)


def signed_headers(method: str, path: str, role: str = "admin",
                   principal: str = "key:test") -> dict[str, str]:
    """The headers the gateway would add for `role` to a call without a body or query.
    (A call with a body signs the bytes it sends: use `signed_as`.)"""
    return sign(TEST_SECRET.encode(), method=method, path=path, caller=Caller(principal, role))


def signed_as(role: str = "admin", principal: str = "key:test") -> InternalAuth:
    """An httpx `auth=` that signs each request exactly as sent, as the gateway would."""
    return InternalAuth(TEST_SECRET.encode(), Caller(principal, role))


class SignedApi:
    """Calls to one service under `prefix`, signed as the gateway would for a role."""

    prefix = ""

    def __init__(self, client):
        self.client = client

    def call(self, method: str, path: str, *, role: str = "planner", headers: dict | None = None,
             **kwargs):
        return self.client.request(method, self.prefix + path, headers=headers,
                                   auth=signed_as(role), **kwargs)

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body=None, **kwargs):
        return self.call("POST", path, json=body, **kwargs)

    def patch(self, path: str, body, **kwargs):
        return self.call("PATCH", path, json=body, **kwargs)

    @staticmethod
    def ok(response, status: int = 200):
        assert response.status_code == status, response.text
        return response.json()


class ThreadedServer:
    """A real uvicorn server for an app, on a free loopback port, in a thread."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The fuzz files first: under xdist's `loadfile` each file runs whole on one worker, the
    # files handed out in this order, and schemathesis on PostgreSQL (113 s of setup, the
    # longest) came last and left the other core idle for the last minutes of CI's 15.
    # The sort is stable: each file's tests keep their order.
    items.sort(key=lambda item: not item.nodeid.startswith("tests/fuzz/"))
