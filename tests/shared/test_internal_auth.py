"""The internal credential covers the whole request and is good for one call only."""
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, func, select

from shared.db import create_db_engine
from shared.errors import Unauthorized, install_error_handlers
from shared.internal_auth import (
    NAME_HEADER,
    NONCE_HEADER,
    ROLE_HEADER,
    TIMESTAMP_HEADER,
    VALIDITY_SECONDS,
    Caller,
    InternalAuth,
    InternalAuthMiddleware,
    nonce_table,
    sign,
    verify,
)
from shared.settings import DatabaseSettings

SECRET = b"s" * 32
CALLER = Caller("key:abc", "viewer")


def check(headers, *, method="GET", path="/api/v1/x", body=b"", secret=SECRET, now=None):
    return verify(secret, method=method, path=path, body=body, headers=headers, now=now)


def test_verify_returns_the_signed_caller():
    headers = sign(SECRET, method="POST", path="/api/v1/budget/x?dry=1", body=b'{"a":1}',
                   caller=CALLER)
    credential = check(headers, method="POST", path="/api/v1/budget/x?dry=1", body=b'{"a":1}')
    assert credential.caller == CALLER
    assert credential.nonce == headers[NONCE_HEADER]
    assert credential.expires_at == int(headers[TIMESTAMP_HEADER]) + VALIDITY_SECONDS


@pytest.mark.parametrize("tamper", [
    lambda h: h | {ROLE_HEADER: "admin"},           # privilege escalation
    lambda h: h | {NONCE_HEADER: "0" * 32},         # a fresh nonce on a captured credential
    lambda h: {k: v for k, v in h.items() if k != ROLE_HEADER},
    lambda h: {k: v for k, v in h.items() if k != NONCE_HEADER},
])
def test_verify_rejects_tampered_headers(tamper):
    headers = tamper(sign(SECRET, method="GET", path="/api/v1/x", caller=CALLER))
    with pytest.raises(Unauthorized):
        check(headers)


@pytest.mark.parametrize("change", [
    {"method": "PUT"},
    {"path": "/api/v1/y"},
    {"path": "/api/v1/x?amount=999.00"},               # the query is signed
    {"body": b'{"amount": "999.00"}'},                 # the body is signed
    {"secret": b"t" * 32},
])
def test_verify_binds_the_whole_request_and_the_secret(change):
    headers = sign(SECRET, method="POST", path="/api/v1/x", body=b'{"amount": "1.00"}',
                   caller=CALLER)
    request = {"method": "POST", "path": "/api/v1/x", "body": b'{"amount": "1.00"}'}
    assert check(headers, **request).caller == CALLER
    with pytest.raises(Unauthorized):
        check(headers, **request | change)


def test_verify_rejects_stale_and_future_signatures():
    headers = sign(SECRET, method="GET", path="/p", caller=CALLER, now=1_000_000)
    assert check(headers, path="/p", now=1_000_000 + VALIDITY_SECONDS).caller == CALLER
    for now in (1_000_000 + VALIDITY_SECONDS + 1, 1_000_000 - VALIDITY_SECONDS - 1):
        with pytest.raises(Unauthorized, match="expired"):
            check(headers, path="/p", now=now)


def test_verify_rejects_a_non_numeric_timestamp():
    headers = sign(SECRET, method="GET", path="/p", caller=CALLER) | {TIMESTAMP_HEADER: "x"}
    with pytest.raises(Unauthorized, match="gateway"):
        check(headers, path="/p")


@pytest.mark.parametrize("name", ["Ana Ruiz", "José Ñúñez-Öztürk 王芳", "a%20b & c\\d",
                                  "Finance sync (SAP)\u00a0prod", "x" * 200])
def test_verify_returns_the_signed_name(name):
    caller = Caller("key:abc", "planner", name)
    headers = sign(SECRET, method="POST", path="/api/v1/x", body=b"{}", caller=caller)
    assert headers[NAME_HEADER].isascii()  # any name fits a header
    assert check(headers, method="POST", path="/api/v1/x", body=b"{}").caller == caller


def test_a_caller_without_name_signs_as_before():
    headers = sign(SECRET, method="GET", path="/p", caller=CALLER)
    assert NAME_HEADER not in headers
    assert check(headers, path="/p").caller.name is None


@pytest.mark.parametrize("tamper", [
    lambda h: h | {NAME_HEADER: "Boss"},            # another name on a named credential
    lambda h: {k: v for k, v in h.items() if k != NAME_HEADER},
    lambda h: h | {NAME_HEADER: "%FF"},             # not UTF-8
])
def test_verify_rejects_a_changed_name(tamper):
    headers = tamper(sign(SECRET, method="GET", path="/p",
                          caller=Caller("key:abc", "viewer", "Ana Ruiz")))
    with pytest.raises(Unauthorized):
        check(headers, path="/p")


def test_verify_rejects_a_name_added_to_a_nameless_credential():
    headers = sign(SECRET, method="GET", path="/p", caller=CALLER) | {NAME_HEADER: "Boss"}
    with pytest.raises(Unauthorized):
        check(headers, path="/p")


def test_each_credential_has_its_own_nonce():
    assert len({sign(SECRET, method="GET", path="/p", caller=CALLER)[NONCE_HEADER]
                for _ in range(100)}) == 100


def service(database_url: str, metadata: MetaData) -> FastAPI:
    """A service process: the middleware with its nonce table, one write that counts."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(InternalAuthMiddleware, secret=SECRET, nonces=metadata.tables[
        "internal_nonce"])
    app.state.engine = create_db_engine(DatabaseSettings(database_url=database_url, port=1))
    app.state.writes = []

    @app.post("/api/v1/budget/draws")
    async def create_draw(request: Request) -> dict:
        app.state.writes.append(await request.json())
        return {"role": request.state.caller.role}

    @app.get("/api/v1/budget/draws")
    async def read_draws(request: Request) -> dict:
        return {"role": request.state.caller.role, "query": request.url.query}

    return app


@pytest.fixture
def two_processes(database_url):
    """Two processes of one service sharing its database, as with `--replicas 2`."""
    metadata = MetaData()
    nonce_table(metadata)
    apps = [service(database_url, metadata) for _ in range(2)]
    metadata.create_all(apps[0].state.engine)
    yield apps
    for app in apps:
        app.state.engine.dispose()


def test_a_replayed_write_is_refused_by_every_process(two_processes):
    first, second = (TestClient(app) for app in two_processes)
    body = b'{"amount": "1.00"}'
    headers = sign(SECRET, method="POST", path="/api/v1/budget/draws", body=body, caller=CALLER)
    assert first.post("/api/v1/budget/draws", content=body, headers=headers).status_code == 200
    for client in (first, second):
        replay = client.post("/api/v1/budget/draws", content=body, headers=headers)
        assert replay.status_code == 401
        assert "already used" in replay.json()["detail"]
    tampered = second.post("/api/v1/budget/draws", content=b'{"amount": "999.00"}',
                           headers=headers)
    assert tampered.status_code == 401
    assert [app.state.writes for app in two_processes] == [[{"amount": "1.00"}], []]
    with two_processes[0].state.engine.connect() as connection:
        table = nonce_table(MetaData())
        assert connection.execute(select(func.count()).select_from(table)).scalar() == 1


def test_expired_nonces_are_dropped(two_processes):
    app = two_processes[0]
    table = nonce_table(MetaData())
    client = TestClient(app)
    old = sign(SECRET, method="POST", path="/api/v1/budget/draws", body=b"{}", caller=CALLER,
               now=1_000)  # long expired: refused, never stored
    assert client.post("/api/v1/budget/draws", content=b"{}", headers=old).status_code == 401
    with app.state.engine.begin() as connection:
        connection.execute(table.insert().values(nonce="f" * 32, expires_at=1_000))
    fresh = sign(SECRET, method="POST", path="/api/v1/budget/draws", body=b"{}", caller=CALLER)
    assert client.post("/api/v1/budget/draws", content=b"{}", headers=fresh).status_code == 200
    with app.state.engine.connect() as connection:
        assert [r.nonce for r in connection.execute(select(table))] == [fresh[NONCE_HEADER]]


def test_internal_auth_signs_what_httpx_sends(two_processes):
    client = TestClient(two_processes[0])
    auth = InternalAuth(SECRET, Caller("service:planner", "admin"))
    assert client.post("/api/v1/budget/draws", json={"amount": "2.50"},
                       auth=auth).json() == {"role": "admin"}
    read = client.get("/api/v1/budget/draws", params={"after": "a b"}, auth=auth)
    assert read.json() == {"role": "admin", "query": "after=a+b"}
    # Reads are not recorded (nothing to undo); the write's nonce is.
    assert client.get("/api/v1/budget/draws",
                      headers=sign(SECRET, method="GET", path="/api/v1/budget/draws",
                                   caller=CALLER)).status_code == 200


def test_a_call_without_credential_is_401(two_processes):
    response = TestClient(two_processes[0]).post("/api/v1/budget/draws", json={})
    assert response.status_code == 401
    assert two_processes[0].state.writes == []


def test_a_write_whose_nonce_cannot_be_recorded_is_a_503_not_a_500(tmp_path):
    """The nonce table missing (an unmigrated database) or out of reach: the service says it
    is unavailable, and the write is not done."""
    app = FastAPI()
    app.state.engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
    app.add_middleware(InternalAuthMiddleware, secret=b"s" * 32, nonces=nonce_table(MetaData()))
    done = []

    @app.post("/api/v1/x/things")
    def create() -> dict:
        done.append(1)
        return {}

    with TestClient(app) as client:
        response = client.post("/api/v1/x/things", json={},
                               auth=InternalAuth(b"s" * 32, Caller("key:a", "admin")))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert done == []
