"""The inter-service client against a real service process (calendar) over HTTP."""
import socket
import threading

import pytest
from asgi_correlation_id import correlation_id

from services.calendar.app import MIGRATIONS, create_app
from services.calendar.config import CalendarSettings
from shared.client import ServiceClient
from shared.errors import GatewayTimeout, ServiceUnavailable
from shared.internal_auth import Caller, current_caller
from tests.conftest import TEST_SECRET, ThreadedServer, migrated_database
from tests.postgres import free_port


@pytest.fixture(scope="module")
def calendar(request, tmp_path_factory):
    url = migrated_database(request, tmp_path_factory, MIGRATIONS, "sqlite")
    settings = CalendarSettings(database_url=url, internal_secret=TEST_SECRET)
    server = ThreadedServer(create_app(settings)).start()
    yield server
    server.stop()


def client_for(url: str, **options) -> ServiceClient:
    return ServiceClient(name="calendar", base_url=url, secret=TEST_SECRET.encode(),
                         caller_service="budget", **options)


def test_calls_outside_a_request_act_as_the_calling_service(calendar):
    client = client_for(calendar.url)
    body = client.request("GET", "/api/v1/calendar/status").json()
    assert (body["principal"], body["role"]) == ("service:budget", "admin")
    client.close()


def test_calls_inside_a_request_carry_the_callers_identity_and_request_id(calendar):
    client = client_for(calendar.url)
    caller_token = current_caller.set(Caller("key:abc", "viewer"))
    request_token = correlation_id.set("rid-123")
    try:
        body = client.request("GET", "/api/v1/calendar/status").json()
    finally:
        current_caller.reset(caller_token)
        correlation_id.reset(request_token)
        client.close()
    assert (body["principal"], body["role"], body["request_id"]) == ("key:abc", "viewer",
                                                                     "rid-123")


def test_a_wrong_secret_is_refused_by_the_service(calendar):
    client = ServiceClient(name="calendar", base_url=calendar.url, secret=b"x" * 32,
                           caller_service="budget")
    assert client.request("GET", "/api/v1/calendar/status").status_code == 401
    client.close()


def test_an_unreachable_service_is_a_503_problem():
    client = client_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailable, match="calendar service cannot be reached"):
        client.request("GET", "/api/v1/calendar/status")
    client.close()


def test_a_slow_service_is_a_504_problem():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        client = client_for(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with pytest.raises(GatewayTimeout, match="did not answer in time"):
            client.request("GET", "/api/v1/calendar/status")
        client.close()


class Dropper:
    """A process that dies with every call: it reads the request, then closes the connection
    without answering."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed by the test
                return
            self.connections += 1
            with connection:
                connection.recv(65536)


@pytest.fixture
def dropper():
    server = Dropper()
    yield server
    server.server.close()


def test_a_call_that_cannot_connect_goes_to_the_next_address(calendar):
    client = client_for(f"http://127.0.0.1:{free_port()}, {calendar.url}/")
    # A write too: no connection was made, so it never left. The calendar answers it (405:
    # the status is read-only), which shows it reached the second address.
    assert client.request("POST", "/api/v1/calendar/status").status_code == 405
    assert client.request("GET", "/api/v1/calendar/status").status_code == 200
    client.close()


def test_a_read_whose_connection_dropped_is_sent_to_the_next_address_which_is_kept(
        calendar, dropper):
    client = client_for(f"{dropper.url},{calendar.url}")
    assert client.request("GET", "/api/v1/calendar/status").status_code == 200
    assert dropper.connections == 1
    # The address that answered is kept: the next call goes straight to it.
    assert client.request("GET", "/api/v1/calendar/status").status_code == 200
    assert dropper.connections == 1
    client.close()


def test_a_write_whose_connection_dropped_is_not_sent_again(calendar, dropper):
    client = client_for(f"{dropper.url},{calendar.url}")
    # Sent to the calendar it would be a 405; the dropped write may have been applied, so it
    # is a 503 that says so.
    with pytest.raises(ServiceUnavailable, match="may or may not have been applied"):
        client.request("POST", "/api/v1/calendar/status")
    assert dropper.connections == 1
    client.close()


def test_every_address_unreachable_is_a_503_problem():
    client = client_for(f"http://127.0.0.1:{free_port()},http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailable, match="calendar service cannot be reached"):
        client.request("GET", "/api/v1/calendar/status")
    client.close()


def test_a_setting_without_an_address_is_refused():
    with pytest.raises(ValueError, match="no address for the calendar service"):
        client_for(" , ")
