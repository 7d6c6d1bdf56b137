"""Per-key budgets and request rates around the engine's delta stream: reserve, generate, settle.

Before the engine starts, the request's worst case is reserved in the state
store (:class:`~edge.reservations.ReservationStore`): a bound on its prompt
(UTF-8 bytes, which no byte-level tokenizer exceeds, plus room for the chat
template) and its ``max_tokens`` (the server's ``--max-output-tokens`` when the
request sets none). A key's ``tokens_per_day`` counts the tokens generated
(completion tokens); its ``usd_per_day`` the prompt too, at its prices. When
what is left for the UTC day cannot cover ``max_tokens``, it shrinks to what is
left (:func:`edge.reservations.room`); with nothing left, or over the key's
requests per minute, the request is refused with :class:`RateLimited` (429,
Retry-After).
When the stream ends, fails or is abandoned, the reservation is settled in
``finally`` with the engine's counts; a stream cut before its last delta is
charged its prompt bound and one token per piece of text sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from cloud.engine import Delta, Generation
from cloud.keys import KeyPolicy
from edge.openai_compat import tracing
from edge.openai_compat.logs import annotate
from edge.reservations import (
    Claim,
    Recent,
    ReservationStore,
    Spend,
    Spending,
    room,
    until_next_day,
)
from protocol.errors import RateLimited
from protocol.wire import ChatMessage, Usage

if TYPE_CHECKING:
    from cloud.metrics import CloudMetrics

__all__ = ["Meter", "Quota", "chat_bound", "grant", "text_bound", "unmetered"]

log = logging.getLogger(__name__)

_TEMPLATE_TOKENS = 32
"""Tokens a chat template may add around the messages (system prompt, generation prompt)."""
_MESSAGE_TOKENS = 8
"""Tokens a chat template may add around each message (role markers)."""

Start = Callable[[Generation], AsyncIterator[Delta]]
"""Starts the engine on a generation."""
Meter = Callable[[int, Generation, Start], AsyncIterator[Delta]]
"""One key's quota: ``(prompt bound, generation, start)`` to the deltas, reserved and settled."""


def unmetered(prompt_bound: int, generation: Generation, start: Start) -> AsyncIterator[Delta]:
    """The :data:`Meter` that lets everything through unrecorded."""
    return start(generation)


def text_bound(prompt: str) -> int:
    """At least the tokens of a raw prompt (one per byte, and a BOS)."""
    return len(prompt.encode("utf-8")) + 1


def chat_bound(messages: Sequence[ChatMessage]) -> int:
    """At least the tokens of a chat prompt, template included."""
    per_message = (len(m.content.encode("utf-8")) + _MESSAGE_TOKENS for m in messages)
    return sum(per_message) + _TEMPLATE_TOKENS


def grant(key: KeyPolicy, spent: Spend, recent: Recent, prompt: int, worst: int, now: float) -> int:
    """How many tokens the request may generate (``≤ worst``), given the key's ``spent`` today
    and its ``recent`` requests (the last minute); :class:`RateLimited` if none."""
    limits, name = key.limits, key.name
    rpm = limits.requests_per_minute
    if rpm is not None and recent.calls >= rpm:
        wait = max(1.0, (recent.oldest or now) + 60.0 - now)
        raise RateLimited(
            f"key {name!r} is over its requests_per_minute limit of {rpm}; "
            f"try again in {math.ceil(wait)} s",
            limit="requests_per_minute", retry_after_s=wait,
        )  # fmt: skip
    left = room(spent, tokens=limits.tokens_per_day, usd=limits.usd_per_day,
                price=limits.price, prompt_tokens=prompt)  # fmt: skip
    room_of = {"max_tokens": worst, **{f"{unit}_per_day": n for unit, n in left.items()}}
    binding = min(room_of, key=lambda limit: room_of[limit])
    if room_of[binding] >= 1:
        return min(room_of[binding], worst)
    wait = until_next_day(now)
    cap = {"tokens_per_day": f"{limits.tokens_per_day} tokens",
           "usd_per_day": f"${limits.usd_per_day or 0:.2f}"}.get(binding, binding)  # fmt: skip
    raise RateLimited(
        f"key {name!r} is over its {binding} budget of {cap} (too little is left for this "
        f"request); it resets at 00:00 UTC, in {_duration(wait)}",
        limit=binding, retry_after_s=wait,
    )  # fmt: skip


class Quota:
    """Applies each key's limits using ``store`` (shared by every replica that uses it)."""

    def __init__(
        self,
        store: ReservationStore,
        *,
        default_max_tokens: int,
        threads: int = 8,
        metrics: CloudMetrics | None = None,
    ) -> None:
        """``default_max_tokens``: the worst case of a request that sets no ``max_tokens``;
        ``metrics`` count what is settled, and each request's timings."""
        self.store = store
        self.default_max_tokens = default_max_tokens
        self.metrics = metrics
        self._limiter = anyio.CapacityLimiter(threads)  # also bounds the store's connections
        self._in_order = asyncio.Lock()  # reservations one at a time, in arrival order

    def meter(self, key: KeyPolicy, operation: str = "text_completion") -> Meter:
        """``key``'s :data:`Meter`: the reservation is made on the first ``anext``;
        ``operation`` (``chat``, ``text_completion``) names the request in its trace."""
        return partial(self._metered, key, operation)

    async def _metered(
        self, key: KeyPolicy, operation: str, prompt: int, generation: Generation, start: Start
    ) -> AsyncIterator[Delta]:
        worst = generation.max_tokens or self.default_max_tokens
        async with self._in_order:  # so requests reach the engine first come, first served
            row, claim = await self._reserve(key, prompt, worst)
        if claim.completion_tokens < worst:
            generation = replace(generation, max_tokens=claim.completion_tokens)
        deltas, usage, pieces = start(generation), None, None  # None: the prompt is not accepted
        admitted, first = time.monotonic(), None
        traced = self._traced(key, operation, generation)
        try:
            async for delta in deltas:
                usage, pieces = delta.usage or usage, (pieces or 0) + bool(delta.text)
                if delta.text and first is None:
                    first = time.monotonic()
                yield delta
        finally:
            if self.metrics is not None and usage is not None:  # the engine finished
                after = time.monotonic() - first if first is not None else 0.0
                to_first = None if first is None else first - admitted
                self.metrics.generated(to_first, usage.completion_tokens, after)
            if traced is not None:
                done = usage or Usage()
                traced.end({"gen_ai.usage.input_tokens": done.prompt_tokens,
                            "gen_ai.usage.output_tokens": done.completion_tokens,
                            "relayllm.cached_tokens": done.cached_tokens})  # fmt: skip
            try:
                await deltas.aclose()  # type: ignore[attr-defined]
            finally:
                with anyio.CancelScope(shield=True):  # a cancelled stream is settled all the same
                    await self._settle(key, row, claim, usage, pieces)

    def _traced(
        self, key: KeyPolicy, operation: str, generation: Generation
    ) -> tracing.Detached | None:
        """The span of one generation (a child of the request's), when traces are on."""
        model = self.metrics.model if self.metrics else ""
        attributes = {"gen_ai.operation.name": operation, "gen_ai.request.model": model,
                      "gen_ai.request.max_tokens": generation.max_tokens or 0,
                      "relayllm.key": key.name}  # fmt: skip
        return tracing.started("relayllm-cloud", f"{operation} {model}", attributes=attributes)

    async def _reserve(self, key: KeyPolicy, prompt: int, worst: int) -> tuple[int, Claim]:
        def decide(spending: Spending) -> Claim:
            spent, recent = spending.spend("day", key.name), spending.recent(key.name, 60.0)
            granted = grant(key, spent, recent, prompt, worst, now)
            return Claim(granted, key.limits.price.cost(prompt, granted), prompt_tokens=prompt)

        now = time.time()
        reserve = partial(self.store.reserve, key.name, decide, now=now)
        reserving = asyncio.ensure_future(anyio.to_thread.run_sync(reserve, limiter=self._limiter))
        try:
            return await asyncio.shield(reserving)
        except asyncio.CancelledError:  # the client left: undo the reservation once it is made
            reserving.add_done_callback(self._undo)
            raise

    def _undo(self, reserving: asyncio.Future[tuple[int, Claim]]) -> None:
        if reserving.cancelled() or reserving.exception() is not None:
            return
        try:
            self.store.settle(
                reserving.result()[0], prompt_tokens=0, completion_tokens=0, usd=0.0,
                outcome="cancelled",
            )  # fmt: skip
        except Exception:
            log.exception("could not undo a reservation of a request that was cancelled")

    async def _settle(
        self, key: KeyPolicy, row: int, claim: Claim, usage: Usage | None, pieces: int | None
    ) -> None:
        if usage is not None:
            prompt, completion = usage.prompt_tokens, usage.completion_tokens
        elif pieces is None:  # refused before the prompt was accepted: nothing was used
            prompt, completion = 0, 0
        else:
            prompt, completion = claim.prompt_tokens, min(pieces, claim.completion_tokens)
        usd = key.limits.price.cost(prompt, completion)
        settle = partial(self.store.settle, row, prompt_tokens=prompt,
                         completion_tokens=completion, usd=usd)  # fmt: skip
        try:
            await anyio.to_thread.run_sync(settle, limiter=self._limiter)
        except Exception:
            log.exception("could not settle request %d of key %r", row, key.name)
            return
        cached = usage.cached_tokens if usage else 0
        annotate(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
        if self.metrics is not None:
            self.metrics.settled(key.name, prompt, completion, cached)


def _duration(seconds: float) -> str:
    hours, rest = divmod(math.ceil(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{math.ceil(rest / 60)} min"
