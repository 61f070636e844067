"""Gateway throughput against the same service called directly, measured side by side.

The upstream is one uvicorn worker (uvloop, httptools) answering a small JSON behind the
services' own internal-auth and request-id middleware, so that the figure shows what the
gateway costs rather than what a database query costs. One after another, the gateway runs
with each candidate transport for its proxy hot path: aiohttp (what gateway/proxy.py uses),
httpx's default transport, and httpx over the httpx-aiohttp transport. wrk drives 50
connections at the upstream directly and through each gateway, in interleaved rounds; the
median of each is reported with its ratio to the direct figure.

    python bench/gateway.py [--rounds 3] [--seconds 8] [--connections 50]

Needs `wrk` (Debian: apt-get install wrk). Prints a Markdown table for docs/benchmarks.md.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.system import wrk  # noqa: E402
from gateway.auth import KeyStore  # noqa: E402
from shared.internal_auth import Caller, sign  # noqa: E402
from tests.postgres import free_port  # noqa: E402

VARIANTS = ("aiohttp", "httpx", "httpx-aiohttp")
SECRET = "bench-internal-secret-0123456789abcdef"
PATH = "/api/v1/calendar/status"


def serve_variant(variant: str) -> None:
    """Run the gateway with its proxy forwarding through `variant` (a child process)."""
    import httpx_aiohttp
    import uvicorn

    from gateway import app as gateway_app
    from gateway.proxy import Proxy
    from shared.errors import GatewayTimeout, ServiceUnavailable
    from shared.requests import logging_config

    class HttpxProxy(Proxy):
        clients: dict[str, httpx.AsyncClient] = {}

        async def _forward(self, pool, method, target, headers, body):
            # The transport is what is measured: the pool's balancing is kept, its failover
            # is not (the upstreams of a benchmark stay up).
            if pool.name not in self.clients:
                transport = (httpx_aiohttp.AiohttpTransport() if variant == "httpx-aiohttp"
                             else None)
                self.clients[pool.name] = httpx.AsyncClient(
                    transport=transport, timeout=httpx.Timeout(60, connect=2),
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=200))
            upstream = pool.pick([])
            try:
                with upstream.busy():
                    response = await self.clients[pool.name].request(
                        method, upstream.url + target, headers=headers, content=body or None)
            except httpx.TimeoutException:
                raise GatewayTimeout("upstream timed out") from None
            except httpx.TransportError:
                raise ServiceUnavailable("upstream unavailable") from None
            kept = [(k, v) for k, v in response.headers.raw
                    if k.decode().lower() not in {"content-length", "transfer-encoding",
                                                  "connection", "date", "server",
                                                  "x-request-id"}]
            return response.status_code, kept, response.content

    if variant != "aiohttp":
        gateway_app.Proxy = HttpxProxy
    uvicorn.run(gateway_app.create_app, factory=True, host="127.0.0.1",
                port=int(os.environ["GATEWAY_PORT"]), loop="uvloop", http="httptools",
                log_config=logging_config("gateway", os.environ["MARKETPLAN_LOG_LEVEL"]))


def serve_upstream(port: int) -> None:
    """A minimal service: internal auth, request ids and one small JSON route."""
    import uvicorn
    from fastapi import FastAPI

    from shared.internal_auth import InternalAuthMiddleware
    from shared.requests import install_request_id, logging_config

    app = FastAPI()
    app.add_middleware(InternalAuthMiddleware, secret=SECRET.encode())
    install_request_id(app)

    @app.get(PATH)
    async def read_status() -> dict:
        return {"service": "calendar", "status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_config=logging_config("upstream", os.environ["MARKETPLAN_LOG_LEVEL"]))


def wait_ready(url: str) -> None:
    # A gateway took 13-21 s to start on a 2-core machine at load 17.
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--serve-variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_variant:
        serve_variant(args.serve_variant)
        return
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    if not shutil.which("wrk"):
        sys.exit("bench/gateway.py needs wrk: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="marketplan-bench-"))
    service_port, gateway_port = free_port(), free_port()
    key = "bench-admin-key-" + "x" * 20
    KeyStore(work / "keys.json").create("admin", key=key)
    env = os.environ | {
        "MARKETPLAN_INTERNAL_SECRET": SECRET, "MARKETPLAN_LOG_LEVEL": "WARNING",
        "GATEWAY_PORT": str(gateway_port), "GATEWAY_KEYS_FILE": str(work / "keys.json"),
        "GATEWAY_CALENDAR_URL": f"http://127.0.0.1:{service_port}",
    }
    service = subprocess.Popen([sys.executable, __file__, "--serve-upstream",
                                str(service_port)], env=env, stderr=subprocess.DEVNULL)
    results: dict[str, list[dict]] = {name: [] for name in ("direct", *args.variants)}
    try:
        wait_ready(f"http://127.0.0.1:{service_port}/docs")
        for _ in range(args.rounds):
            # Signatures stay valid for 5 minutes, so each round signs afresh.
            signed = sign(SECRET.encode(), method="GET", path=PATH,
                          caller=Caller("key:bench", "admin"))
            results["direct"].append(wrk(f"http://127.0.0.1:{service_port}{PATH}", signed,
                                         args.seconds, args.connections))
            for variant in args.variants:
                gateway = subprocess.Popen(
                    [sys.executable, __file__, "--serve-variant", variant], env=env,
                    stderr=subprocess.DEVNULL)
                try:
                    wait_ready(f"http://127.0.0.1:{gateway_port}/healthz")
                    results[variant].append(wrk(
                        f"http://127.0.0.1:{gateway_port}{PATH}",
                        {"Authorization": f"Bearer {key}"}, args.seconds, args.connections))
                finally:
                    gateway.terminate()
                    gateway.wait()
    finally:
        service.terminate()
        service.wait()
        shutil.rmtree(work, ignore_errors=True)

    direct = statistics.median(r["rps"] for r in results["direct"])
    print(f"\n{args.connections} connections, {args.rounds} rounds of {args.seconds} s, "
          f"median req/s; {os.cpu_count()} cores shared by wrk, gateway and service\n")
    print("| path | req/s | ratio to direct | p50 | p99 |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        middle = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        label = "direct to the service" if name == "direct" else f"gateway, {name} transport"
        print(f"| {label} | {rps:,.0f} | {rps / direct:.0%} | {middle['p50']} | "
              f"{middle['p99']} |")


if __name__ == "__main__":
    main()
