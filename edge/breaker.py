"""A circuit breaker around the cloud client.

After ``failures`` consecutive outages (:class:`CloudUnavailable`: unreachable,
timed out, 429, 5xx, a broken stream) the breaker opens: calls fail at once,
without touching the network, for ``cooldown_s`` seconds. Then one probe call
goes through; its success closes the breaker, its failure re-opens it. A
request the cloud refuses (another 4xx) is not an outage and counts as neither.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from edge.client import CloudClient, CloudEnd, CloudItem, CloudRequest
from protocol.errors import CloudError, CloudUnavailable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Skips calls while the cloud is known to be down."""

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
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` (the next call is a probe)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            cooling = self._clock() - self._opened_at < self.cooldown_s
            return "open" if cooling or self._probing else "half-open"

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        self._admit()
        try:
            for item in self.inner.stream(request):
                yield item
                if isinstance(item, CloudEnd):
                    self._record(ok=item.outcome != "fallback")
        except CloudUnavailable:
            self._record(ok=False)
            raise
        except CloudError:
            self._release()
            raise
        except GeneratorExit:
            self._record(ok=True)
            raise

    def _admit(self) -> None:
        with self._lock:
            if self._opened_at is None:
                return
            remaining = self.cooldown_s - (self._clock() - self._opened_at)
            if remaining > 0 or self._probing:
                raise CloudUnavailable(f"circuit open: cloud skipped for {max(remaining, 0):.0f} s")
            self._probing = True

    def _release(self) -> None:
        """Neither a success nor an outage: a probe slot is simply given back."""
        with self._lock:
            self._probing = False

    def _record(self, *, ok: bool) -> None:
        with self._lock:
            self._probing = False
            if ok:
                self._consecutive, self._opened_at = 0, None
                return
            self._consecutive += 1
            if self._consecutive >= self.failures or self._opened_at is not None:
                self._opened_at = self._clock()
