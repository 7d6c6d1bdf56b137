"""Prometheus metrics of ``relay-cloud``.

Requests are counted by route, status and key name (never the key) by an ASGI
middleware; tokens by key and model where the quota settles them, so the
metrics say what the state store bills; time to first token and generation
rate per request; the queue and each key's budget for the UTC day are read when
Prometheus scrapes. Labels take a bounded set of values: the app's routes, HTTP
statuses, configured key names, limit names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.keys import KeyPolicy
from cloud.state import key_usage
from edge.openai_compat.metrics import Instruments
from edge.reservations import ReservationStore, periods

__all__ = ["CloudMetrics", "RequestCounter"]

RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
"""Generated tokens per second."""


class CloudMetrics:
    """The metrics of one endpoint; ``registry`` is what ``GET /metrics`` renders."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        m = Instruments(self.registry)
        self.model = ""
        self.requests = m.counter(
            "relayllm_cloud_requests", "Requests, by route, HTTP status and key name.",
            "route", "status", "key")  # fmt: skip
        self.prompt_tokens = m.counter(
            "relayllm_cloud_prompt_tokens", "Prompt tokens billed, by key name and model.",
            "key", "model")  # fmt: skip
        self.cached_tokens = m.counter(
            "relayllm_cloud_cached_prompt_tokens", "Prompt tokens the engine re-used from its "
            "cache (part of the prompt tokens).", "key", "model")  # fmt: skip
        self.completion_tokens = m.counter(
            "relayllm_cloud_completion_tokens", "Completion tokens billed, by key and model.",
            "key", "model")  # fmt: skip
        self.first_token = m.histogram(
            "relayllm_cloud_time_to_first_token_seconds", "From a request's admission to its "
            "first generated text.", "model")  # fmt: skip
        self.rate = m.histogram(
            "relayllm_cloud_generation_tokens_per_second", "Completion tokens per second after "
            "the first, per request.", "model", buckets=RATE_BUCKETS)  # fmt: skip
        self.rate_limited = m.counter(
            "relayllm_cloud_rate_limited", "429s, by the limit hit (queue: the server is full).",
            "limit")  # fmt: skip
        self.queue_depth = m.gauge(
            "relayllm_cloud_queue_depth", "Requests being answered or waiting."
        )

    def follow(
        self,
        *,
        queue: Callable[[], float],
        store: Callable[[], ReservationStore | None],
        keys: Sequence[KeyPolicy],
    ) -> None:
        """Read when Prometheus scrapes: the queue depth, and each key's use of its budget
        today from ``store`` (shared by the replicas)."""
        self.queue_depth.set_function(queue)
        self.registry.register(_Budgets(store, keys))

    def settled(self, key: str, prompt: int, completion: int, cached: int) -> None:
        """One request's tokens as the quota billed them."""
        self.prompt_tokens.labels(key, self.model).inc(prompt)
        self.completion_tokens.labels(key, self.model).inc(completion)
        self.cached_tokens.labels(key, self.model).inc(min(cached, prompt))

    def generated(self, first_text_s: float | None, tokens: int, after_first_s: float) -> None:
        """One request's timings: to its first text, and the rate after it."""
        if first_text_s is None:
            return
        self.first_token.labels(self.model).observe(first_text_s)
        if tokens > 1 and after_first_s > 0:
            self.rate.labels(self.model).observe((tokens - 1) / after_first_s)


class RequestCounter:
    """ASGI middleware: each request counted once when its response starts (by route template,
    status and the key name the auth dependency left in ``request.state``)."""

    def __init__(self, app: ASGIApp, metrics: CloudMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", "unmatched")
                key = scope.get("state", {}).get("key_name", "none")
                self.metrics.requests.labels(route, str(message["status"]), key).inc()
            await send(message)

        await self.app(scope, receive, counted)


class _Budgets(Collector):
    def __init__(
        self, store: Callable[[], ReservationStore | None], keys: Sequence[KeyPolicy]
    ) -> None:
        self._store, self._keys = store, keys

    def collect(self) -> Iterable[Any]:
        used = GaugeMetricFamily(
            "relayllm_cloud_budget_used", "Each key's use today (UTC): tokens generated "
            "(completion) or US dollars.", labels=["key", "unit"])  # fmt: skip
        left = GaugeMetricFamily("relayllm_cloud_budget_left", "What each key's daily "
                                 "budget still allows.", labels=["key", "unit"])  # fmt: skip
        store = self._store()
        if store is not None:
            day = periods(time.time())[0]
            today = {u.key: u for u in key_usage(store, day) if u.day == day}
            for key in self._keys:
                use = today.get(key.name)
                tokens = use.completion_tokens if use else 0  # what tokens_per_day counts
                usd = use.usd if use else 0.0
                used.add_metric([key.name, "tokens"], tokens)
                used.add_metric([key.name, "usd"], usd)
                if key.limits.tokens_per_day is not None:
                    left.add_metric(
                        [key.name, "tokens"], max(0, key.limits.tokens_per_day - tokens)
                    )
                if key.limits.usd_per_day is not None:
                    left.add_metric([key.name, "usd"], max(0.0, key.limits.usd_per_day - usd))
        return [used, left]
