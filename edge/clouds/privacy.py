"""The privacy cap: a context longer than the cap never leaves the device.

The call is refused before anything is sent (``outcome="refused"``), and the
SLM goes on alone. It is not a cloud failure, so it never trips the breaker.
"""

from __future__ import annotations

from collections.abc import Iterator

from edge.core.cloud import CloudClient, CloudEnd, CloudItem, CloudRequest

__all__ = ["PrivacyCap"]


class PrivacyCap:
    """Refuses calls whose context exceeds ``max_context_tokens``."""

    def __init__(self, inner: CloudClient, max_context_tokens: int) -> None:
        self.inner = inner
        self.max_context_tokens = max_context_tokens

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        if request.context_tokens > self.max_context_tokens:
            yield CloudEnd(
                outcome="refused",
                reason=f"privacy cap: the context has {request.context_tokens} tokens, "
                f"at most {self.max_context_tokens} may leave the device",
            )
            return
        yield from self.inner.stream(request)
