"""Cost caps around the cloud client: reserve the worst case, call, settle.

Before a call, its worst-case cost (the context at the prompt price plus every
granted token at the completion price) is reserved in the :class:`Ledger`
against the day, month and per-answer caps. When the caps cannot pay for the
whole call, ``max_tokens`` shrinks; at zero the call is refused. Afterwards the
reservation is settled with what the cloud really produced, even when the call
failed half-way or the consumer went away.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace

from edge.client import CloudBudget, CloudClient, CloudEnd, CloudItem, CloudRequest, CloudText
from edge.ledger import Ledger, Spend
from edge.settings import CapSettings, Price

__all__ = ["BudgetedCloud"]

_ANSWERS_TRACKED = 1024


class BudgetedCloud:
    """Applies ``caps`` using ``ledger``; ``price`` is the cloud model's."""

    def __init__(
        self,
        inner: CloudClient,
        ledger: Ledger,
        *,
        caps: CapSettings,
        price: Price,
        endpoint: str,
        model: str | Callable[[], str],
    ) -> None:
        """``model`` names the cloud model, or learns it once the first call has found it."""
        self.inner = inner
        self.ledger = ledger
        self.caps = caps
        self.price = price
        self.endpoint = endpoint
        self.model = model
        self._lock = threading.Lock()
        self._per_answer: OrderedDict[str, int] = OrderedDict()  # recent answers only

    def _model(self) -> str:
        return self.model() if callable(self.model) else self.model

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price.prompt + completion_tokens * self.price.completion) / 1e6

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        limits: dict[str, int] = {}

        def grant(day: Spend, month: Spend) -> int:
            limits.update(self._room(request, day, month))
            return min(limits.values(), default=request.max_tokens)

        worst = self.cost(request.context_tokens, request.max_tokens)
        row, granted = self.ledger.reserve(
            endpoint=self.endpoint, model=self._model(), tokens=request.max_tokens, usd=worst,
            grant=grant,
        )  # fmt: skip
        if granted < request.max_tokens:
            binding = min(limits, key=lambda name: limits[name])
            yield CloudBudget(request.max_tokens, granted, f"{binding} cap")
        if granted == 0:
            self.ledger.settle(
                row, prompt_tokens=0, completion_tokens=0, usd=0.0, outcome="refused"
            )
            yield CloudEnd(outcome="refused", reason="budget exhausted")
            return
        yield from self._settled(request, row, granted)

    def _settled(self, request: CloudRequest, row: int, granted: int) -> Iterator[CloudItem]:
        received, end = 0, None
        try:
            for item in self.inner.stream(_with_max_tokens(request, granted)):
                if isinstance(item, CloudText):
                    received += 1
                if isinstance(item, CloudEnd):
                    cost = self.cost(item.prompt_tokens, item.completion_tokens)
                    item = end = replace(item, cost_usd=cost)
                yield item
        finally:
            prompt = end.prompt_tokens if end else request.context_tokens
            used = min(end.completion_tokens if end else received, granted)
            outcome = end.outcome if end else "fallback"
            self.ledger.settle(
                row, prompt_tokens=prompt, completion_tokens=used,
                usd=self.cost(prompt, used), outcome=outcome, model=self._model(),
            )  # fmt: skip
            self._count(request.answer_id, used)

    def _count(self, answer_id: str, tokens: int) -> None:
        with self._lock:
            self._per_answer[answer_id] = self._per_answer.pop(answer_id, 0) + tokens
            while len(self._per_answer) > _ANSWERS_TRACKED:
                self._per_answer.popitem(last=False)

    def _room(self, request: CloudRequest, day: Spend, month: Spend) -> dict[str, int]:
        caps, room = self.caps, {"requested": request.max_tokens}
        with self._lock:
            used_here = self._per_answer.get(request.answer_id, 0)
        if caps.tokens_per_answer is not None:
            room["per-answer"] = caps.tokens_per_answer - used_here
        if caps.tokens_per_day is not None:
            room["daily token"] = caps.tokens_per_day - day.tokens
        if caps.tokens_per_month is not None:
            room["monthly token"] = caps.tokens_per_month - month.tokens
        for name, cap, spent in (("daily dollar", caps.usd_per_day, day.usd),
                                 ("monthly dollar", caps.usd_per_month, month.usd)):  # fmt: skip
            if cap is not None:
                room[name] = self._affordable(cap - spent, request.context_tokens)
        return {name: max(0, value) for name, value in room.items()}

    def _affordable(self, usd_left: float, prompt_tokens: int) -> int:
        left = usd_left - self.cost(prompt_tokens, 0)
        if left <= 0:
            return 0
        if self.price.completion == 0:
            return 2**31
        return math.floor(left * 1e6 / self.price.completion)


def _with_max_tokens(request: CloudRequest, max_tokens: int) -> CloudRequest:
    return replace(request, max_tokens=max_tokens)
