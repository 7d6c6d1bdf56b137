"""The serving core both servers share: who is admitted, how much and how long an answer may be.

``relay serve`` (:mod:`edge.app.server`) and ``relay-cloud`` (:mod:`cloud.app`) follow the
same rules:

* :class:`Admission`: a request is admitted while fewer than ``capacity`` requests are being
  answered or waiting; the next is refused with :class:`~protocol.errors.Overloaded` (429)
  and ``Retry-After`` :data:`RETRY_AFTER_S`. relay-cloud's capacity is ``max_queue``;
  relay serve's is ``max_waiting + 1``: the one answer its SLM is writing and those waiting.
* :class:`OutputLimits`: a request may ask for at most ``max_tokens`` (more is a 400); its
  answer ends ``timeout_s`` after it arrived, queueing included, with
  ``finish_reason = "length"``. A model that does not watch the deadline itself is cut by
  :func:`until_deadline`.
* :class:`ServingSettings`: the settings fields of these limits, in both servers' settings.

Stop sequences are matched by :class:`protocol.stops.StopMatcher`; the replies are encoded
by :mod:`edge.openai_compat.replies`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, Field

from protocol.errors import Overloaded
from protocol.wire import ChatCompletionRequest, CompletionRequest

__all__ = ["RETRY_AFTER_S", "Admission", "OutputLimits", "ServingSettings", "until_deadline"]

T = TypeVar("T")

RETRY_AFTER_S = 2.0
"""What a refused request is told to wait (``Retry-After``): a place frees when one answer ends."""


class ServingSettings(BaseModel):
    """The limits on one answer, as both servers' settings hold them."""

    max_output_tokens: int = Field(
        4096, ge=1, le=262144, description="Most tokens a request may ask for (above it: 400)."
    )
    request_timeout_s: float = Field(
        300.0, gt=0, le=86400,
        description="Seconds from a request's arrival until its answer ends (finish_reason "
        "'length').",
    )  # fmt: skip
    metrics_public: bool = Field(
        False, description="GET /metrics without a key (for a private network)."
    )


class Admission:
    """How many requests may be answered or wait at once (``capacity``); beyond that, 429.

    The rule: a request is admitted while fewer than ``capacity`` are in flight; the one that
    would exceed it is refused with :class:`Overloaded` and ``Retry-After``
    :data:`RETRY_AFTER_S`. A request keeps its place until its answer ends or is closed.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0

    def enter(self) -> None:
        """Take a place, or raise :class:`Overloaded` when there is none."""
        if self.in_flight >= self.capacity:
            raise Overloaded(
                f"{self.in_flight} requests are being answered or waiting (the limit); "
                "try again shortly",
                retry_after_s=RETRY_AFTER_S,
            )
        self.in_flight += 1

    def leave(self) -> None:
        """Give a place back (a request that failed before its answer began)."""
        self.in_flight -= 1

    def admit(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items``, holding a place until they end (or are closed); refused when full."""
        self.enter()
        return self.held(items)

    async def held(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items`` of a request already in (:meth:`enter`); its place is left at their end."""
        try:
            async for item in items:
                yield item
        finally:
            self.leave()
            await items.aclose()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class OutputLimits:
    """The server's bounds on one answer: ``max_tokens`` a request may ask for (more is a 400)
    and ``timeout_s``, seconds from its arrival until its answer ends."""

    max_tokens: int
    timeout_s: float

    @classmethod
    def of(cls, settings: ServingSettings) -> OutputLimits:
        return cls(settings.max_output_tokens, settings.request_timeout_s)

    def tokens_asked(self, request: CompletionRequest | ChatCompletionRequest) -> int | None:
        """The tokens ``request`` asks for (``None``: it names no limit); over the limit, 400."""
        return request.token_limit_within(self.max_tokens)

    def deadline(self) -> float:
        """The ``time.monotonic()`` at which an answer arriving now ends."""
        return time.monotonic() + self.timeout_s


async def until_deadline(
    items: AsyncIterator[T], deadline: float, last: Callable[[bool], T]
) -> AsyncIterator[T]:
    """``items`` until ``time.monotonic()`` passes ``deadline``; then ``last(started)`` (whether
    any item had come) is the final item, and ``items`` are closed."""
    started = False
    try:
        while True:
            try:
                left = max(0.0, deadline - time.monotonic())
                item = await asyncio.wait_for(anext(items), left)  # type: ignore[arg-type]
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                yield last(started)
                return
            started = True
            yield item
    finally:
        await items.aclose()  # type: ignore[attr-defined]
