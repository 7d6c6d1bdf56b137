"""Offline fallback: a failed call ends quietly, keeping what already arrived.

:class:`FallbackCloud` is the outermost wrapper. Whatever goes wrong inside
(unreachable, 5xx, timeout, a stream cut half-way, the breaker open), the call
ends with ``outcome="fallback"`` and the reason, so the SLM simply continues.
:class:`OfflineCloud` is the explicit offline mode: it opens no socket at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from edge.core.cloud import CloudClient, CloudEnd, CloudItem, CloudRequest, CloudText
from protocol.errors import CloudError

__all__ = ["FallbackCloud", "OfflineCloud"]

log = logging.getLogger(__name__)


class FallbackCloud:
    """Turns every :class:`CloudError` from ``inner`` (the cloud ``cloud``) into a fallback end."""

    def __init__(self, inner: CloudClient, *, cloud: str = "") -> None:
        self.inner = inner
        self.cloud = cloud

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        received = 0
        try:
            for item in self.inner.stream(request):
                if isinstance(item, CloudText):
                    received += 1
                yield item
        except CloudError as exc:
            log.info("call %s fell back to the local model: %s", request.call_id, exc.message)
            yield CloudEnd(outcome="fallback", completion_tokens=received, reason=exc.message,
                           cloud=self.cloud)  # fmt: skip


class OfflineCloud:
    """Offline mode: every call is answered locally, with no network access."""

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        yield CloudEnd(outcome="fallback", reason="offline mode")
