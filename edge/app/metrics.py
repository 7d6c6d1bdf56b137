"""Prometheus metrics of ``relay serve``, read from the relay's own events.

Every answer's events pass through :meth:`EdgeMetrics.watch` once, so what is
counted is what the client was sent: answers by finish reason, tokens by source,
calls by outcome and cloud (the cloud's name from the settings, never a URL),
call latencies, the SLM's resume after a call. Breaker states, the spend against
each cap and the queue are read when Prometheus scrapes. Labels take a bounded
set of values: finish reasons, outcomes, configured cloud names, cap names.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.app.settings import EdgeSettings
from edge.openai_compat.metrics import Instruments
from protocol.events import CallFinished, CallStarted, DoneEvent, RelayEvent, TextEvent

if TYPE_CHECKING:
    from edge.app.ledger import Ledger

__all__ = ["EdgeMetrics", "cap_spend"]

_BREAKER = {"closed": 0, "half-open": 1, "open": 2}


class EdgeMetrics:
    """The metrics of one relay; ``registry`` is what ``GET /metrics`` renders."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        m = Instruments(self.registry)
        self.answers = m.counter("relayllm_answers", "Answers, by finish reason.", "finish_reason")
        self.tokens = m.counter(
            "relayllm_tokens", "Answer tokens, by the model that wrote them (slm: the local "
            "model, llm: the cloud).", "source")  # fmt: skip
        self.calls = m.counter(
            "relayllm_calls", "Cloud calls, by outcome (ok, fallback, refused) and the cloud "
            "that answered last.", "outcome", "cloud")  # fmt: skip
        self.call_first_token = m.histogram(
            "relayllm_call_first_token_seconds", "From a call's start to its first cloud text.",
            "cloud")  # fmt: skip
        self.call_seconds = m.histogram("relayllm_call_seconds", "A whole cloud call.", "cloud")
        self.resume = m.histogram(
            "relayllm_resume_seconds", "From a call's end to the SLM's next text.")  # fmt: skip
        self.refused = m.counter(
            "relayllm_requests_refused", "Requests refused before an answer (overloaded: 429).",
            "reason")  # fmt: skip
        self.cut = m.counter(
            "relayllm_answers_cut", "Answers cut short (deadline: --request-timeout).",
            "reason")  # fmt: skip
        self.queue_wait = m.histogram(
            "relayllm_queue_wait_seconds", "From a request's arrival to its answer's start."
        )
        self.queue_depth = m.gauge("relayllm_queue_depth", "Requests being answered or waiting.")
        self.refused.labels("overloaded")
        self.cut.labels("deadline")

    def follow(
        self,
        *,
        queue: Callable[[], float],
        clouds: Callable[[], Iterable[dict[str, str]]],
        spend: Callable[[], dict[tuple[str, str], tuple[float, float | None]]],
    ) -> None:
        """Read these when Prometheus scrapes: the queue depth, each cloud's name and breaker
        state, and ``(used, limit)`` per ``(cap, cloud)`` (:func:`cap_spend`)."""
        self.queue_depth.set_function(queue)
        self.registry.register(_Scraped(clouds, spend))

    async def watch(self, events: AsyncIterator[RelayEvent]) -> AsyncIterator[RelayEvent]:
        """``events``, counted as they pass. Calls count when they end; an answer's tokens
        and finish reason when it ends (an answer whose client left counts its calls only)."""
        call: tuple[float, float | None] | None = None  # the call under way: start, first text
        ended: float | None = None  # when the last call ended, until the SLM writes again
        try:
            async for event in events:
                now = time.monotonic()
                if isinstance(event, CallStarted):
                    call = (now, None)
                elif isinstance(event, TextEvent) and event.source == "llm" and call:
                    call = (call[0], call[1] if call[1] is not None else now - call[0])
                elif isinstance(event, TextEvent) and event.source == "slm" and ended:
                    self.resume.observe(now - ended)
                    ended = None
                elif isinstance(event, CallFinished):
                    self._call_ended(event, call[1] if call else None)
                    call, ended = None, now
                elif isinstance(event, DoneEvent):
                    self._answer_ended(event)
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    def _call_ended(self, event: CallFinished, first_text_s: float | None) -> None:
        cloud = event.cloud or "none"
        self.calls.labels(event.outcome, cloud).inc()
        self.call_seconds.labels(cloud).observe(event.latency_ms / 1000)
        if first_text_s is not None:
            self.call_first_token.labels(cloud).observe(first_text_s)

    def _answer_ended(self, event: DoneEvent) -> None:
        self.answers.labels(event.finish_reason).inc()
        self.tokens.labels("slm").inc(event.slm_tokens)
        self.tokens.labels("llm").inc(event.llm_tokens)
        if event.note == "request timeout":
            self.cut.labels("deadline").inc()


class _Scraped(Collector):
    """Breaker states and budgets, read at each scrape."""

    def __init__(
        self,
        clouds: Callable[[], Iterable[dict[str, str]]],
        spend: Callable[[], dict[tuple[str, str], tuple[float, float | None]]],
    ) -> None:
        self._clouds, self._spend = clouds, spend

    def collect(self) -> Iterable[Any]:
        breaker = GaugeMetricFamily(
            "relayllm_breaker_state", "Each cloud's circuit breaker: 0 closed, 1 half-open, "
            "2 open.", labels=["cloud"])  # fmt: skip
        for cloud in self._clouds():
            breaker.add_metric([cloud["name"]], _BREAKER.get(cloud["breaker"], 0))
        used = GaugeMetricFamily(
            "relayllm_budget_used", "Spend this UTC day or month (tokens or US dollars, as the "
            "cap says; cloud all: every cloud together).", labels=["cap", "cloud"])  # fmt: skip
        left = GaugeMetricFamily("relayllm_budget_left", "What each cap that is set still "
                                 "allows.", labels=["cap", "cloud"])  # fmt: skip
        for (cap, cloud), (spent, limit) in self._spend().items():
            used.add_metric([cap, cloud], spent)
            if limit is not None:
                left.add_metric([cap, cloud], max(0.0, limit - spent))
        return [breaker, used, left]


def cap_spend(
    ledger: Ledger | None, settings: EdgeSettings, names: list[str]
) -> dict[tuple[str, str], tuple[float, float | None]]:
    """``(used, limit)`` of every daily and monthly cap, all clouds together (``all``) and
    each cloud with caps of its own (``names``: the clouds' names, in the settings' order),
    from the relay's ``ledger`` (reservations under way included; ``None``: offline)."""
    if ledger is None:
        return {}
    found: dict[tuple[str, str], tuple[float, float | None]] = {}
    for period in ("day", "month"):
        spent = ledger.spend(period)
        by_cloud = ledger.by_cloud(period)
        for unit, caps, cloud in [
            *((u, settings.caps, "all") for u in ("tokens", "usd")),
            *((u, c.caps, n) for u in ("tokens", "usd") for c, n in zip(settings.clouds, names)),
        ]:
            limit = getattr(caps, f"{unit}_per_{period}")
            if cloud != "all" and limit is None:
                continue
            source = spent if cloud == "all" else by_cloud.get(cloud)
            used = float(getattr(source, unit)) if source is not None else 0.0
            found[(f"{unit}_per_{period}", cloud)] = (used, limit)
    return found
