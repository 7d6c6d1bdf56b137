"""``GET /metrics`` for both servers: Prometheus text from a registry, behind the key rule.

:func:`add_metrics_route` adds the route (guarded like the ``/v1`` routes unless
``public``); :class:`Instruments` declares a registry's series one line each;
:data:`LATENCY_BUCKETS` are the histogram buckets both servers use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from edge.openai_compat.server import error_responses

__all__ = ["LATENCY_BUCKETS", "Instruments", "add_metrics_route"]

disable_created_metrics()  # no ``*_created`` series beside every counter: they say nothing here

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""Seconds: from a resumed token (milliseconds) to a long call (a minute and more)."""


class Instruments:
    """Counters, histograms and gauges of one registry, each declared by name, help and labels."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def histogram(
        self, name: str, doc: str, *labels: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def gauge(self, name: str, doc: str) -> Gauge:
        return Gauge(name, doc, registry=self.registry)


def add_metrics_route(
    app: FastAPI, registry: CollectorRegistry, *, guard: Sequence[Any], public: bool
) -> None:
    """``GET /metrics`` rendering ``registry`` (scrape-time readers run off the event loop)."""

    @app.get(
        "/metrics", dependencies=[] if public else list(guard),
        response_class=PlainTextResponse, responses=error_responses(401),
    )  # fmt: skip
    async def metrics() -> Response:
        text = await asyncio.to_thread(generate_latest, registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)
