"""Several processes per service: the gateway balances over them, routes around a dead one at
once and takes it back when it answers again, against real small upstream servers."""
import contextlib
import socket
import threading
import time
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from gateway.auth import KeyStore
from gateway.config import GatewaySettings
from tests.conftest import TEST_SECRET, ThreadedServer
from tests.postgres import free_port


def replica(name: str) -> FastAPI:
    """A stand-in budget process that says who answered and counts what it was sent."""
    app = FastAPI()
    app.state.seen = Counter()
    app.state.ready = True
    app.state.slow_arrived = threading.Event()

    @app.get("/readyz")
    async def readiness() -> Response:
        return Response(status_code=200 if app.state.ready else 503)

    @app.get("/api/v1/budget/who")
    async def who() -> dict:
        app.state.seen["who"] += 1
        return {"replica": name}

    @app.post("/api/v1/budget/writes")
    async def write(n: int) -> dict:
        app.state.seen[n] += 1
        return {"replica": name, "n": n}

    app.state.slow_release = threading.Event()

    @app.get("/api/v1/budget/slow")
    def slow() -> dict:
        app.state.slow_arrived.set()
        # Held until the test has made its short calls, however long they take.
        app.state.slow_release.wait(timeout=30)
        return {"replica": name}

    return app


class Dropper:
    """A process that takes each request and closes the connection without an answer, as
    one killed mid-request does."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = self.listener.accept()
                with connection:
                    connection.settimeout(2)
                    self.requests.append(connection.recv(65536).split(b"\r\n", 1)[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.listener.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, str]:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "api_keys.json")
    return {"admin": store.create("admin", name="Ada Admin")[1], "_file": str(store.path)}


@pytest.fixture
def replicas():
    """Two running stand-in budget processes, a and b."""
    servers = {name: ThreadedServer(replica(name)).start() for name in ("a", "b")}
    yield servers
    for server in servers.values():
        server.stop()


def gateway_for(keys: dict, budget_url: str, **overrides) -> FastAPI:
    return create_app(GatewaySettings(keys_file=keys["_file"], internal_secret=TEST_SECRET,
                                      budget_url=budget_url, **overrides))


def admin(keys: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys['admin']}"}


def seen(server: ThreadedServer) -> Counter:
    return server.server.config.app.state.seen


def test_one_address_or_several_comma_separated():
    settings = GatewaySettings(internal_secret=TEST_SECRET,
                               budget_url=" http://a:8002/, http://b:8012 ,",
                               calendar_url="http://c:8001")
    assert settings.upstream_addresses() == {
        "calendar": ["http://c:8001"], "budget": ["http://a:8002", "http://b:8012"],
        "planner": ["http://127.0.0.1:8003"]}
    with pytest.raises(ValidationError, match="several separated by commas"):
        GatewaySettings(internal_secret=TEST_SECRET, budget_url=" , ")


def test_calls_one_after_another_take_the_addresses_in_turn(replicas, keys):
    url = f"{replicas['a'].url},{replicas['b'].url}"
    with TestClient(gateway_for(keys, url)) as gateway:
        answers = [gateway.get("/api/v1/budget/who", headers=admin(keys)).json()["replica"]
                   for _ in range(20)]
    # Nothing is in flight between calls, so every tie goes to the next address in turn.
    assert Counter(answers) == {"a": 10, "b": 10}
    assert all(x != y for x, y in zip(answers, answers[1:], strict=False))


def test_an_address_busy_with_a_long_call_gets_none_of_the_short_ones(replicas, keys):
    gateway = ThreadedServer(gateway_for(keys, f"{replicas['a'].url},{replicas['b'].url}"))
    gateway.start()
    try:
        slow: list[str] = []
        holder = threading.Thread(target=lambda: slow.append(httpx.get(
            gateway.url + "/api/v1/budget/slow", headers=admin(keys), timeout=60
        ).json()["replica"]))
        holder.start()
        deadline = time.monotonic() + 10
        while not (busy := [name for name, server in replicas.items()
                            if server.server.config.app.state.slow_arrived.is_set()]):
            assert time.monotonic() < deadline, "the long call did not arrive"
            time.sleep(0.01)
        busy = busy[0]
        free = ({"a", "b"} - {busy}).pop()
        answers = [httpx.get(gateway.url + "/api/v1/budget/who", headers=admin(keys),
                             timeout=10).json()["replica"] for _ in range(10)]
    finally:
        for server in replicas.values():
            server.server.config.app.state.slow_release.set()
        holder.join()
        gateway.stop()
    # Least outstanding: while the long call holds `busy`, every short call goes to `free`.
    assert slow == [busy]
    assert answers == [free] * 10


def test_a_dead_address_is_routed_around_at_once_and_back_when_it_answers(replicas, keys):
    dead_port = free_port()
    url = f"{replicas['a'].url},http://127.0.0.1:{dead_port}"
    with TestClient(gateway_for(keys, url, upstream_probe_interval=0.1)) as gateway:
        # The one call that finds the dead address never left: it goes to `a` at once, and
        # the address is out from then on.
        statuses = [gateway.post(f"/api/v1/budget/writes?n={n}", headers=admin(keys)).status_code
                    for n in range(10)]
        assert statuses == [200] * 10
        assert seen(replicas["a"]) == dict.fromkeys(range(10), 1)

        revived = ThreadedServer(replica("revived"), port=dead_port).start()
        try:
            deadline = time.monotonic() + 10  # a guard only: the probe runs every 0.1 s
            while gateway.get("/api/v1/budget/who",
                              headers=admin(keys)).json()["replica"] != "revived":
                assert time.monotonic() < deadline, "the revived address was not taken back"
            answers = [gateway.get("/api/v1/budget/who", headers=admin(keys)).json()["replica"]
                       for _ in range(10)]
        finally:
            revived.stop()
    assert Counter(answers) == {"a": 5, "revived": 5}


def test_a_write_dropped_after_it_was_sent_is_not_sent_again(replicas, keys):
    dropper = Dropper()
    try:
        # Probes far apart, so only the dropped write takes the dropper out.
        url = f"{dropper.url},{replicas['b'].url}"
        with TestClient(gateway_for(keys, url, upstream_probe_interval=10)) as gateway:
            answers = [gateway.post(f"/api/v1/budget/writes?n={n}", headers=admin(keys))
                       for n in range(10)]
    finally:
        dropper.close()
    failed = [n for n, answer in enumerate(answers) if answer.status_code != 200]
    # The dropper was sent exactly one write, which may have been stored: it is answered as
    # a problem and not resent to b; every other write went to b, once each.
    assert len(dropper.requests) == 1 and len(failed) == 1
    assert dropper.requests[0].startswith(f"POST /api/v1/budget/writes?n={failed[0]} ".encode())
    assert answers[failed[0]].status_code == 503
    assert answers[failed[0]].headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in answers[failed[0]].json()["detail"]
    assert seen(replicas["b"]) == {n: 1 for n in range(10) if n != failed[0]}


def test_a_read_dropped_after_it_was_sent_is_answered_by_the_other_address(replicas, keys):
    dropper = Dropper()
    try:
        url = f"{dropper.url},{replicas['b'].url}"
        with TestClient(gateway_for(keys, url, upstream_probe_interval=10)) as gateway:
            answers = [gateway.get("/api/v1/budget/who", headers=admin(keys)) for _ in range(4)]
    finally:
        dropper.close()
    # A read is safe to send again: the ones the dropper took are answered by b. (A dropped
    # pooled connection is no sign of a dead process, so the dropper stays in.)
    assert dropper.requests and [a.json()["replica"] for a in answers] == ["b"] * 4


def test_an_address_that_stops_being_ready_is_taken_out_by_its_probe(replicas, keys):
    url = f"{replicas['a'].url},{replicas['b'].url}"
    a = replicas["a"].server.config.app.state
    with TestClient(gateway_for(keys, url, upstream_probe_interval=0.1)) as gateway:
        def answered_by() -> str:
            return gateway.get("/api/v1/budget/who", headers=admin(keys)).json()["replica"]

        a.ready = False  # it still accepts connections: only the probe can tell
        deadline = time.monotonic() + 10  # a guard only: the probe runs every 0.1 s
        # While a is in, calls one after another alternate; two b's in a row mean it is out.
        while (answered_by(), answered_by()) != ("b", "b"):
            assert time.monotonic() < deadline, "a was not taken out"
        a.seen.clear()
        assert [answered_by() for _ in range(10)] == ["b"] * 10
        assert a.seen["who"] == 0

        a.ready = True
        deadline = time.monotonic() + 10
        while answered_by() != "a":
            assert time.monotonic() < deadline, "a was not taken back"
