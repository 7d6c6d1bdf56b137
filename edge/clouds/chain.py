"""Several clouds in order: each call goes to the first one that answers.

A cloud that fails before its first text (refused, 401/403/404, 429, 5xx, a
timeout, its budget exhausted, its breaker open or cooling down after a 429)
is passed over: a :class:`CloudSkip` says which and why, and the next one is
asked. The last cloud's failure is the call's, and the SLM goes on as ever.
Each cloud is a whole guarded stack of its own (fallback, breaker, budget,
HTTP), so the chain only reads items. Attempts are bounded: every cloud but
the last is asked once, without retries, and the last may retry only while the
call's ``max_attempts`` allow (chained retries multiply otherwise).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace

from edge.core.cloud import (
    CloudBudget,
    CloudClient,
    CloudEnd,
    CloudItem,
    CloudRequest,
    CloudSkip,
    CloudText,
)

__all__ = ["CloudChain"]


class CloudChain:
    """``clouds`` as ``(name, client)`` in order; at most ``max_attempts`` requests per call."""

    def __init__(self, clouds: Sequence[tuple[str, CloudClient]], *, max_attempts: int = 4) -> None:
        if not clouds:
            raise ValueError("a chain needs at least one cloud")
        self.clouds = tuple(clouds)
        self.max_attempts = max_attempts

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        for index, (name, cloud) in enumerate(self.clouds):
            left = self.max_attempts - index  # every cloud before this one made one request
            if index == len(self.clouds) - 1 or left <= 1:
                yield from cloud.stream(replace(request, retries=max(0, left - 1)))
                return
            skipped = yield from _first_answer(cloud.stream(replace(request, retries=0)))
            if skipped is None:
                return
            yield CloudSkip(name, skipped)


def _first_answer(items: Iterator[CloudItem]) -> Generator[CloudItem, None, str | None]:
    """Pass ``items`` on once the cloud has answered; ``None`` then, else why it did not.

    What comes before the first text (a budget's cut) waits: a cloud passed over
    shows nothing of itself.
    """
    waiting: list[CloudItem] = []
    for item in items:
        if isinstance(item, CloudText) or (isinstance(item, CloudEnd) and item.outcome == "ok"):
            yield from waiting
            yield item
            yield from items
            return None
        if isinstance(item, CloudEnd):
            cut = [w.reason for w in waiting if isinstance(w, CloudBudget) and not w.granted]
            return f"{item.reason} ({cut[0]})" if cut else item.reason
        waiting.append(item)
    return "the cloud ended without a result"
