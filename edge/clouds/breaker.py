"""A circuit breaker around the cloud client.

After ``failures`` consecutive outages (:class:`CloudUnavailable`: unreachable,
timed out, 429, 5xx, a broken stream) the breaker opens: calls fail at once,
without touching the network, for ``cooldown_s`` seconds. Then one probe call
goes through; its success closes the breaker, its failure re-opens it. A
request the cloud refuses (another 4xx) is not an outage and counts as neither, nor
does a call refused before it is sent (``outcome="refused"``: the budget inside).
A 429 (or 503) with ``Retry-After`` cools the cloud down at once for that long:
its calls are skipped, not retried, until the time it asked for has passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from edge.core.cloud import CloudClient, CloudEnd, CloudItem, CloudRequest
from protocol.errors import CloudError, CloudUnavailable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Skips calls while the cloud is known to be down, or asked to be left alone."""

    def __init__(
        self,
        inner: CloudClient,
        *,
        failures: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._wait_until = 0.0  # the cloud's Retry-After
        self._probing = False
        self.last_error = ""  # the latest failure's reason, for /health and the page

    @property
    def state(self) -> str:
        """``closed``, ``open`` (calls skipped) or ``half-open`` (the next call is a probe)."""
        with self._lock:
            return self._state(self._clock())

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        self._admit()
        try:
            for item in self.inner.stream(request):
                yield item
                if isinstance(item, CloudEnd) and item.outcome == "refused":
                    self._release()  # refused on this side (the budget): the cloud is untried
                elif isinstance(item, CloudEnd):
                    if item.outcome == "fallback":
                        self.last_error = item.reason
                    self._record(ok=item.outcome != "fallback")
        except CloudUnavailable as exc:
            self.last_error = exc.message
            self._record(ok=False, wait_s=exc.retry_after_s)
            raise
        except CloudError as exc:
            self.last_error = exc.message
            self._release()
            raise
        except GeneratorExit:
            self._record(ok=True)
            raise

    def _state(self, now: float) -> str:
        if now < self._wait_until or self._probing:
            return "open"
        if self._opened_at is None:
            return "closed"
        return "open" if now - self._opened_at < self.cooldown_s else "half-open"

    def _admit(self) -> None:
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == "closed":
                return
            if state == "open":
                if now < self._wait_until:
                    raise CloudUnavailable(
                        f"cooling down: the cloud asked to wait {self._wait_until - now:.0f} s more"
                    )
                left = 0.0 if self._opened_at is None else self.cooldown_s - (now - self._opened_at)
                raise CloudUnavailable(f"circuit open: cloud skipped for {max(left, 0):.0f} s")
            self._probing = True

    def _release(self) -> None:
        """Neither a success nor an outage: a probe slot is simply given back."""
        with self._lock:
            self._probing = False

    def _record(self, *, ok: bool, wait_s: float | None = None) -> None:
        with self._lock:
            self._probing = False
            if ok:
                self._consecutive, self._opened_at = 0, None
                return
            self._consecutive += 1
            now = self._clock()
            if wait_s:
                self._wait_until = max(self._wait_until, now + wait_s)
            if self._consecutive >= self.failures or self._opened_at is not None:
                self._opened_at = now
