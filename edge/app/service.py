"""The relay behind ``relay serve``'s routes: one SLM on one worker thread, a bounded queue.

:class:`EdgeService` admits a request by the rule both servers share
(:class:`~edge.openai_compat.serving.Admission`: the one answer being written and
``max_waiting`` more), builds its prompt, and returns its events from the model's thread in
arrival order: cut at the request's stop sequences, ended with ``finish_reason = "length"``
at its deadline, counted for the page and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from edge.app.metrics import EdgeMetrics, cap_spend
from edge.app.runtime import Relay
from edge.llama import iterate_in_thread
from edge.openai_compat.logs import annotate
from edge.openai_compat.server import key_digest
from edge.openai_compat.serving import Admission, OutputLimits, until_deadline
from protocol.errors import Overloaded
from protocol.events import DoneEvent, RelayEvent, TextEvent
from protocol.stops import StopMatcher
from protocol.wire import ChatCompletionRequest

__all__ = ["SERVED_MODEL", "EdgeService"]

SERVED_MODEL = "relayllm"


class EdgeService:
    """The relay behind the routes: one model on one worker thread, a bounded queue."""

    def __init__(self, relay: Relay, *, max_waiting: int = 8) -> None:
        self.relay = relay
        self.admission = Admission(max_waiting + 1)  # the answer being written, and those waiting
        self.limits = OutputLimits.of(relay.settings)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay")
        self.api_keys = tuple(key_digest(k.get_secret_value()) for k in relay.settings.api_keys)
        self.answers = self.calls = self.cloud_tokens = 0
        self.spent_usd = 0.0
        self.metrics = EdgeMetrics()
        self.metrics.follow(
            queue=lambda: self.in_flight,
            clouds=lambda: relay.clouds,
            spend=lambda: cap_spend(
                relay.ledger, relay.settings, [c["name"] for c in relay.clouds]
            ),
        )

    @property
    def in_flight(self) -> int:
        """Requests being answered or waiting."""
        return self.admission.in_flight

    async def answer(self, request: ChatCompletionRequest) -> AsyncIterator[RelayEvent]:
        """Admit ``request`` (or refuse it: 429), build its prompt (or refuse it: 400), and
        return its events; they come from the model's thread, in the order requests came."""
        wanted = self.limits.tokens_asked(request)
        deadline = self.limits.deadline()
        try:
            self.admission.enter()
        except Overloaded:
            self.metrics.refused.labels("overloaded").inc()
            raise
        try:
            messages = [m.model_dump() for m in request.messages]
            continue_final = request.continues_final_message
            prompt = await asyncio.to_thread(self.relay.prompt, messages,
                                             continue_final=continue_final)  # fmt: skip
        except BaseException:
            self.admission.leave()
            raise
        loop = self.relay.loop
        asked = {"temperature": request.temperature, "top_p": request.top_p, "seed": request.seed}
        sampling = replace(loop.sampling, **{k: v for k, v in asked.items() if v is not None})
        limits = replace(loop.limits, max_tokens=wanted or loop.limits.max_tokens)
        arrived, context = time.monotonic(), contextvars.copy_context()  # the request's trace

        def start() -> Iterator[RelayEvent]:  # on the model's thread, when its turn comes
            self.metrics.queue_wait.observe(time.monotonic() - arrived)
            return _within(context, self.relay.answer(prompt, sampling=sampling, limits=limits))

        events = iterate_in_thread(self.worker, start)
        answer = until_deadline(self._stopped(events, request.stop_sequences), deadline,
                                self._timed_out)  # fmt: skip
        return self.admission.held(self._counted(self.metrics.watch(answer)))

    def _timed_out(self, started: bool) -> RelayEvent:
        """The last event of an answer cut at its deadline (the model has stopped: its record
        is final)."""
        record = self.relay.record if started else None
        done = record.done_event() if record else DoneEvent(
            finish_reason="length", slm_tokens=0, llm_tokens=0, calls=0)  # fmt: skip
        return done.model_copy(update={"finish_reason": "length", "note": "request timeout"})

    async def _stopped(
        self, events: AsyncIterator[RelayEvent], stops: tuple[str, ...]
    ) -> AsyncIterator[RelayEvent]:
        """The answer, ended at the first of ``stops`` in its text (which is not shown)."""
        matcher = StopMatcher(stops)
        held: list[TextEvent] = []
        try:
            async for event in events:
                if not isinstance(event, TextEvent) or not stops:
                    if isinstance(event, DoneEvent):
                        for piece in _release(held, matcher.flush()):
                            yield piece
                    yield event
                    continue
                held.append(event)
                text, hit = matcher.feed(event.text)
                for piece in _release(held, text):
                    yield piece
                if hit:
                    await events.aclose()  # type: ignore[attr-defined]  # stops the model
                    record = self.relay.record
                    assert record is not None
                    yield record.done_event().model_copy(update={"finish_reason": "stop"})
                    return
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def _counted(self, events: AsyncIterator[RelayEvent]) -> AsyncIterator[RelayEvent]:
        try:
            async for event in events:
                if isinstance(event, DoneEvent):
                    annotate(slm_tokens=event.slm_tokens, llm_tokens=event.llm_tokens,
                             calls=event.calls, finish_reason=event.finish_reason)  # fmt: skip
                    self.answers += 1
                    self.calls += event.calls
                    self.cloud_tokens += event.llm_tokens
                    self.spent_usd += event.cost_usd
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]


def _within(context: contextvars.Context, events: Iterator[RelayEvent]) -> Iterator[RelayEvent]:
    """``events``, each one made in ``context`` (so the answer's span is the request's child)."""
    try:
        while True:
            try:
                yield context.run(next, events)
            except StopIteration:
                return
    finally:
        context.run(getattr(events, "close", lambda: None))


def _release(held: list[TextEvent], text: str) -> list[TextEvent]:
    """Take ``text`` off the front of the held pieces, keeping who wrote each part."""
    out = []
    while text and held:
        first = held[0]
        part = first.text[: len(text)]
        out.append(TextEvent(source=first.source, text=part, n_tokens=first.n_tokens))
        text = text[len(part) :]
        if len(part) == len(first.text):
            held.pop(0)
        else:
            held[0] = TextEvent(source=first.source, text=first.text[len(part) :])
    return out
