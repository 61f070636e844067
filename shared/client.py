"""The HTTP client one service uses to call another (never the other's database)."""
import httpx

from shared.errors import GatewayTimeout, ServiceUnavailable
from shared.internal_auth import Caller, InternalAuth, current_caller
from shared.requests import request_id_header

# Calls made outside any request (start-up, background work) act as the service itself.
SERVICE_ROLE = "admin"


class ServiceClient:
    """Signed, request-id-carrying calls to one other service, with problem+json failures.

    Routes that need it are `def` routes, so this wraps the synchronous `httpx.Client`.
    """

    def __init__(self, *, name: str, base_url: str, secret: bytes, caller_service: str,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.name = name
        fallback = Caller(f"service:{caller_service}", SERVICE_ROLE)
        self._client = httpx.Client(
            base_url=base_url, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            auth=InternalAuth(secret, lambda: current_caller.get() or fallback),
            event_hooks={"request": [self._add_request_id]})

    @staticmethod
    def _add_request_id(request: httpx.Request) -> None:
        request.headers.update(request_id_header())

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Send one call; an unreachable or slow service becomes a 503 or 504 problem."""
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise GatewayTimeout(f"The {self.name} service did not answer in time; "
                                 "try again shortly.") from None
        except httpx.TransportError:
            raise ServiceUnavailable(f"The {self.name} service cannot be reached; "
                                     "try again shortly.") from None

    def close(self) -> None:
        self._client.close()
