"""Abuse limits of the gateway: failed authentications per client, solver work per key.

The counts live in each gateway process's memory: the gateway has no database, and a shared
store would put a round trip on every request. So with P gateway processes the bounds a
client can rely on are: at most P × `auth_failures_per_minute` failed keys per minute from one
address, and at most P × `solves_per_key` solves of one key running at once. A service's own
solver workers (`BUDGET_SOLVER_WORKERS`, `PLANNER_SOLVER_WORKERS`) bound the total work anyway.
"""
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.errors import Problem

# Enough addresses to cover an attack from many hosts without letting the table grow unbounded.
MAX_TRACKED_CLIENTS = 10_000


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"
    documented_headers = ("Retry-After",)


class FailureLimit:
    """A token bucket per client address: each failure takes a token; refills over a minute.

    While a client has no token left, its requests are refused before the key is even looked
    at, so guessing cannot go on at a faster rate than the refill.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, as of)

    def _tokens(self, client: str, now: float) -> float:
        tokens, stamp = self._buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - stamp) * self.rate)

    def check(self, client: str) -> None:
        """Raise TooManyRequests (with Retry-After) while `client` has no failure left."""
        now = self.clock()
        tokens = self._tokens(client, now)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.rate)
            raise TooManyRequests(
                f"Too many failed authentications from this address; wait {wait} s, then "
                "send a valid API key.", headers={"Retry-After": str(wait)})

    def failed(self, client: str) -> None:
        now = self.clock()
        if len(self._buckets) >= MAX_TRACKED_CLIENTS:
            # Clients whose bucket has refilled carry no information: forget them.
            self._buckets = {c: b for c, b in self._buckets.items()
                             if self._tokens(c, now) < self.capacity}
        self._buckets[client] = (self._tokens(client, now) - 1, now)


class ConcurrencyLimit:
    """At most `per_key` requests of one principal in flight at once."""

    # A solve takes seconds; asking again sooner only wastes a round trip.
    RETRY_AFTER_SECONDS = 2

    def __init__(self, per_key: int):
        self.per_key = per_key
        self._running: dict[str, int] = {}

    @contextmanager
    def slot(self, principal: str) -> Iterator[None]:
        running = self._running.get(principal, 0)
        if running >= self.per_key:
            raise TooManyRequests(
                f"This key already has {running} solves running, the most it may; wait for "
                "one to finish, then send this one again.",
                headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)})
        self._running[principal] = running + 1
        try:
            yield
        finally:
            if self._running[principal] == 1:
                del self._running[principal]
            else:
                self._running[principal] -= 1
