"""The processes behind each service: which one gets a request, which ones are out.

A service has one or more addresses (`GATEWAY_BUDGET_URL=http://a:8002,http://b:8012`). Each
request goes to the healthy address with the fewest requests in flight from this gateway
(least-outstanding), ties taken in turn (round robin). Least-outstanding rather than plain
round robin because the calls are uneven: a solve holds its process for seconds while most
calls take milliseconds, and round robin would keep queueing fast calls behind it.

An address is taken out the moment a connection to it cannot be made, or one sent to it drops
(the proxy resends only what never left, to another address at once). An active probe of each
address's `/readyz` every `probe_interval` seconds brings an address back as soon as it answers,
and takes out one that stopped answering without refusing connections (a hung process, a lost
database): so a dead process is out within one connect failure or two probes, well inside 2 s.
"""
import asyncio
import contextlib
import itertools
from collections.abc import Iterator

import aiohttp

# The services read their callees' addresses the same way (gateway/config.py reads it here).

# A process that is up answers /readyz in milliseconds; a probe waits this long at most.
PROBE_TIMEOUT_SECONDS = 0.5
# Consecutive failed probes that take an address out: one slow answer under load is not enough.
PROBE_FAILURES_TO_REMOVE = 2


class Upstream:
    """One process of a service: its address, its two clients, whether it is in."""

    def __init__(self, url: str):
        self.url = url
        self.healthy = True
        self.outstanding = 0
        self.failed_probes = 0
        # Made in the gateway's lifespan: pooled keep-alive for safe methods, a fresh
        # connection for every other request (gateway/proxy.py says why).
        self.session: aiohttp.ClientSession
        self.write_session: aiohttp.ClientSession

    def mark_down(self) -> None:
        self.healthy = False

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self.outstanding += 1
        try:
            yield
        finally:
            self.outstanding -= 1


class Pool:
    """The addresses of one service."""

    def __init__(self, name: str, urls: list[str]):
        if not urls:
            raise ValueError(f"no address for the {name} service")
        self.name = name
        self.members = [Upstream(url) for url in urls]
        self._turn = itertools.count()

    def pick(self, tried: list[Upstream]) -> Upstream | None:
        """The healthy address with the fewest requests in flight, not yet `tried` by this
        request, ties in turn; when none is healthy, an untried one that is out (it may be
        back before its probe says so); None once every address was tried."""
        members = self.members
        if len(members) == 1:  # the common case, kept off the loop below
            return None if tried else members[0]
        start = next(self._turn) % len(members)
        best: Upstream | None = None
        for i in range(len(members)):
            member = members[(start + i) % len(members)]
            if member in tried:
                continue
            if best is None or (member.healthy, -member.outstanding) > (
                    best.healthy, -best.outstanding):
                best = member
        return best

    def first_healthy(self) -> Upstream:
        """An address for the gateway's own calls (the merged OpenAPI document)."""
        return next((m for m in self.members if m.healthy), self.members[0])

    async def probe(self, member: Upstream) -> bool:
        """Whether `member` answers /readyz with 200 now."""
        try:
            async with member.session.get(
                    member.url + "/readyz",
                    timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)) as response:
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def check(self) -> None:
        """Probe every address once: an answer brings it in, repeated failures take it out."""
        answers = await asyncio.gather(*(self.probe(m) for m in self.members))
        for member, ready in zip(self.members, answers, strict=True):
            if ready:
                member.healthy, member.failed_probes = True, 0
            else:
                member.failed_probes += 1
                if member.failed_probes >= PROBE_FAILURES_TO_REMOVE:
                    member.healthy = False

    async def watch(self, interval: float) -> None:
        """Probe every `interval` seconds until cancelled (a task of the gateway's lifespan)."""
        while True:
            await asyncio.sleep(interval)
            await self.check()
