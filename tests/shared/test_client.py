"""The inter-service client against a real service process (calendar) over HTTP."""
import socket

import pytest
from asgi_correlation_id import correlation_id

from services.calendar.app import MIGRATIONS, create_app
from services.calendar.config import CalendarSettings
from shared import migrations
from shared.client import ServiceClient
from shared.errors import GatewayTimeout, ServiceUnavailable
from shared.internal_auth import Caller, current_caller
from tests.conftest import TEST_SECRET, ThreadedServer
from tests.postgres import free_port


@pytest.fixture(scope="module")
def calendar(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('calendar')}/calendar.db"
    migrations.upgrade(MIGRATIONS, url)
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
