"""The HTTP client one service uses to call another (never the other's database).

A service may run as several processes (`marketplan up --replicas N`), so the other service's
address is a comma-separated list (`PLANNER_CALENDAR_URL=http://a:8001,http://b:8002`; one
address stays valid). Calls go to the address that answered last, the first one to begin with;
when no connection to it can be made, the call (which never left) goes to the next one at once,
and that one is kept. A write whose connection dropped after it was sent is not resent: it may
have been applied, so it is a 503 that says so, as at the gateway (gateway/proxy.py).
"""
import httpx

from shared.errors import GatewayTimeout, ServiceUnavailable
from shared.internal_auth import SAFE_METHODS, Caller, InternalAuth, current_caller
from shared.requests import request_id_header

# Calls made outside any request (start-up, background work) act as the service itself.
SERVICE_ROLE = "admin"


def split_urls(value: str) -> list[str]:
    """The addresses of a comma-separated setting, without trailing slashes."""
    return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]


class ServiceClient:
    """Signed, request-id-carrying calls to one other service, with problem+json failures.

    Routes that need it are `def` routes, so this wraps the synchronous `httpx.Client`.
    """

    def __init__(self, *, name: str, base_url: str, secret: bytes, caller_service: str,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.name = name
        self.urls = split_urls(base_url)
        if not self.urls:
            raise ValueError(f"no address for the {name} service")
        # Which address answered last. Threads share it; a lost update only means one more
        # call to an address that was just found down.
        self._current = 0
        fallback = Caller(f"service:{caller_service}", SERVICE_ROLE)
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            auth=InternalAuth(secret, lambda: current_caller.get() or fallback),
            event_hooks={"request": [self._add_request_id]})

    @staticmethod
    def _add_request_id(request: httpx.Request) -> None:
        request.headers.update(request_id_header())

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Send one call, to the next address when no connection can be made; an unreachable
        or slow service becomes a 503 or 504 problem."""
        first = self._current
        for step in range(len(self.urls)):
            index = (first + step) % len(self.urls)
            try:
                response = self._client.request(method, self.urls[index] + path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                continue  # no connection was made, so the call never left: the next address
            except httpx.TimeoutException:
                raise GatewayTimeout(f"The {self.name} service did not answer in time; "
                                     "try again shortly.") from None
            except httpx.TransportError:
                if method in SAFE_METHODS:
                    continue  # the process may have died with the call; a read is safe to resend
                raise ServiceUnavailable(
                    f"The {self.name} service closed the connection before answering; the "
                    "request may or may not have been applied: check before sending it "
                    "again.") from None
            self._current = index
            return response
        raise ServiceUnavailable(f"The {self.name} service cannot be reached; "
                                 "try again shortly.")

    def close(self) -> None:
        self._client.close()
