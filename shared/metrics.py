"""Prometheus metrics at /metrics, one registry per app so apps never share counters."""
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator


def install_metrics(app: FastAPI) -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    instrumentator = Instrumentator(registry=registry, should_group_status_codes=False,
                                    excluded_handlers=["/metrics", "/healthz", "/readyz"])
    instrumentator.instrument(app).expose(app, include_in_schema=False)
