"""Prometheus metrics at /metrics, one registry per app so apps never share counters.

A lean ASGI middleware on prometheus-client rather than prometheus-fastapi-instrumentator:
the instrumentator's per-request route lookup cost the gateway about a tenth of its
throughput in bench/gateway.py.
"""
from time import perf_counter

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, requests: Counter, seconds: Histogram):
        self.app = app
        self.requests = requests
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = perf_counter(), 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router records the matched route in the scope; its template keeps the
            # label set small (no ids in labels).
            handler = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], handler, str(status)).inc()
            self.seconds.labels(scope["method"], handler).observe(perf_counter() - start)


def install_metrics(app: FastAPI) -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    requests = Counter("http_requests_total", "HTTP requests answered.",
                       ["method", "handler", "status"], registry=registry)
    seconds = Histogram("http_request_duration_seconds", "Time to answer an HTTP request.",
                        ["method", "handler"], registry=registry)
    app.add_middleware(MetricsMiddleware, requests=requests, seconds=seconds)

    @app.get("/metrics", include_in_schema=False)
    def read_metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
