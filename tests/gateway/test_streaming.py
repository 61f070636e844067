"""Long answers (CSV exports) pass through the gateway as they come, one chunk at a time."""
import threading

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse

from gateway.app import create_app
from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from tests.conftest import TEST_SECRET, ThreadedServer

CHUNK = b"id,name\n" + b"x" * 100_000 + b"\n"


def exporter() -> FastAPI:
    """A stand-in budget process whose export sends one chunk, then waits to be let go."""
    app = FastAPI()
    app.state.go_on = threading.Event()

    @app.get("/readyz")
    async def readiness() -> Response:
        return Response(status_code=200)

    @app.get("/api/v1/budget/export.csv")
    def export(breaks: bool = False) -> StreamingResponse:
        def rows():
            yield CHUNK
            # Only a gateway that passed the first chunk on lets the client say so.
            if not app.state.go_on.wait(timeout=20):
                raise RuntimeError("the first chunk never reached the client")
            if breaks:
                raise RuntimeError("the export broke off")
            yield b"last,row\n"
        return StreamingResponse(rows(), media_type="text/csv")

    @app.get("/api/v1/budget/small")
    async def small() -> dict:
        return {"ok": True}

    return app


@pytest.fixture
def admin(tmp_path) -> tuple[dict[str, str], str]:
    """An admin's auth header, and the key file holding its key."""
    store = KeyStore(tmp_path / "api_keys.json")
    return {"Authorization": f"Bearer {store.create('admin', name='Ada Admin')[1]}"}, \
        str(store.path)


@pytest.fixture
def system(admin):
    upstream = ThreadedServer(exporter()).start()
    gateway = ThreadedServer(create_app(GatewaySettings(
        keys_file=admin[1], internal_secret=TEST_SECRET, budget_url=upstream.url))).start()
    yield upstream, gateway
    gateway.stop()
    upstream.stop()


def test_a_long_answer_reaches_the_client_before_the_upstream_has_finished_it(system, admin):
    upstream, gateway = system
    with httpx.stream("GET", gateway.url + "/api/v1/budget/export.csv", headers=admin[0],
                      timeout=30) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        received = b""
        for piece in response.iter_bytes():
            received += piece
            if len(received) >= len(CHUNK):
                upstream.server.config.app.state.go_on.set()
    assert received == CHUNK + b"last,row\n"


def test_an_answer_that_breaks_off_is_cut_never_ended_cleanly(system, admin):
    upstream, gateway = system
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream(
            "GET", gateway.url + "/api/v1/budget/export.csv?breaks=true", headers=admin[0],
            timeout=30) as response:
        for piece in response.iter_bytes():
            received += piece
            if len(received) >= len(CHUNK):
                upstream.server.config.app.state.go_on.set()
    assert received == CHUNK


def test_a_short_answer_keeps_its_length(system, admin):
    _, gateway = system
    response = httpx.get(gateway.url + "/api/v1/budget/small", headers=admin[0])
    assert response.json() == {"ok": True}
    assert response.headers["content-length"] == str(len(response.content))
