"""Cost caps around one cloud: reserve the worst case, call, settle.

Before a call, its worst-case cost (the context at the prompt price plus every
granted token at the completion price) is reserved in the device's
:class:`~edge.reservations.ReservationStore` (the ledger) against the device's caps
(all clouds together: day, month, per answer) and the cloud's own caps (its rows
only). Token caps count the tokens the cloud generates; dollar caps the prompt
too. When the caps cannot pay for the whole call, ``max_tokens`` shrinks; at
zero the call is refused. Afterwards the reservation
is settled with what the provider reported (cached prompt tokens at their own
price), even when the call failed half-way or the consumer went away; a call
that failed before any text arrived bills nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace

from edge.clouds.settings import CapSettings, Price
from edge.core.cloud import (
    CloudBudget,
    CloudClient,
    CloudEnd,
    CloudItem,
    CloudRequest,
    CloudText,
)
from edge.reservations import Claim, Period, ReservationStore, Spend, Spending, room

__all__ = ["AnswerTally", "BudgetedCloud"]

_ANSWERS_TRACKED = 1024


class AnswerTally:
    """Cloud tokens of recent answers, shared by every cloud of a relay (per-answer cap)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, int] = OrderedDict()

    def add(self, answer_id: str, tokens: int) -> None:
        with self._lock:
            self._tokens[answer_id] = self._tokens.pop(answer_id, 0) + tokens
            while len(self._tokens) > _ANSWERS_TRACKED:
                self._tokens.popitem(last=False)

    def get(self, answer_id: str) -> int:
        with self._lock:
            return self._tokens.get(answer_id, 0)


class BudgetedCloud:
    """Applies ``caps`` (all clouds) and ``cloud_caps`` (this one) using ``ledger``."""

    def __init__(
        self,
        inner: CloudClient,
        ledger: ReservationStore,
        *,
        caps: CapSettings,
        price: Price,
        endpoint: str,
        model: str | Callable[[], str],
        cloud: str = "",
        cloud_caps: CapSettings | None = None,
        answers: AnswerTally | None = None,
    ) -> None:
        """``model`` names the cloud model, or learns it once the first call has found it."""
        self.inner = inner
        self.ledger = ledger
        self.caps = caps
        self.cloud_caps = cloud_caps or CapSettings()
        self.price = price
        self.endpoint = endpoint
        self.model = model
        self.cloud = cloud
        self.answers = answers or AnswerTally()

    def _model(self) -> str:
        return self.model() if callable(self.model) else self.model

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        limits: dict[str, int] = {}
        worst = self.price.cost(request.context_tokens, request.max_tokens)

        def grant(spending: Spending) -> Claim:
            limits.update(self._room(request, spending))
            granted = min(limits.values())
            return Claim(granted, worst * granted / request.max_tokens if granted else 0.0)

        row, claim = self.ledger.reserve(
            self.cloud, grant, endpoint=self.endpoint, model=self._model()
        )
        granted = claim.completion_tokens
        if granted < request.max_tokens:
            binding = min(limits, key=lambda name: limits[name])
            yield CloudBudget(request.max_tokens, granted, f"{binding} cap")
        if granted == 0:
            self.ledger.settle(
                row, prompt_tokens=0, completion_tokens=0, usd=0.0, outcome="refused"
            )
            yield CloudEnd(outcome="refused", reason="budget exhausted", cloud=self.cloud)
            return
        yield from self._settled(request, row, granted)

    def _settled(self, request: CloudRequest, row: int, granted: int) -> Iterator[CloudItem]:
        received, end = 0, None
        try:
            for item in self.inner.stream(replace(request, max_tokens=granted)):
                if isinstance(item, CloudText):
                    received += 1
                if isinstance(item, CloudEnd):
                    item = end = replace(item, cost_usd=self._cost(item))
                yield item
        finally:
            if end is None:  # failed or abandoned: bill what arrived (no text: nothing)
                end = CloudEnd(outcome="fallback", completion_tokens=received,
                               prompt_tokens=request.context_tokens if received else 0)  # fmt: skip
            used = min(end.completion_tokens, granted)
            end = replace(end, completion_tokens=used)
            self.ledger.settle(
                row, prompt_tokens=end.prompt_tokens, completion_tokens=used,
                usd=self._cost(end), outcome=end.outcome, model=self._model(),
                cached_tokens=end.cached_tokens, cache_write_tokens=end.cache_write_tokens,
            )  # fmt: skip
            self.answers.add(request.answer_id, used)

    def _cost(self, end: CloudEnd) -> float:
        return self.price.cost(
            end.prompt_tokens, end.completion_tokens,
            cached=end.cached_tokens, written=end.cache_write_tokens,
        )  # fmt: skip

    def _room(self, request: CloudRequest, spending: Spending) -> dict[str, int]:
        """Tokens each cap still allows, by the name a budget event gives it."""
        room_of = {"requested": request.max_tokens}
        if self.caps.tokens_per_answer is not None:
            left = self.caps.tokens_per_answer - self.answers.get(request.answer_id)
            room_of["per-answer"] = max(0, left)
        for prefix, caps, account in (("", self.caps, None),
                                      (f"{self.cloud} ", self.cloud_caps, self.cloud)):  # fmt: skip
            left = {period: self._left(caps, period, spending.spend, account, request)
                    for period in ("day", "month")}  # fmt: skip
            for unit, name in (("tokens", "token"), ("usd", "dollar")):
                for period, adjective in (("day", "daily"), ("month", "monthly")):
                    if unit in left[period]:
                        room_of[f"{prefix}{adjective} {name}"] = left[period][unit]
        return room_of

    def _left(
        self,
        caps: CapSettings,
        period: Period,
        spent: Callable[[Period, str | None], Spend],
        account: str | None,
        request: CloudRequest,
    ) -> dict[str, int]:
        """What ``caps`` of ``period`` still allow (the spend is read only when one is set)."""
        tokens, usd = getattr(caps, f"tokens_per_{period}"), getattr(caps, f"usd_per_{period}")
        if tokens is None and usd is None:
            return {}
        return dict(room(spent(period, account), tokens=tokens, usd=usd, price=self.price,
                         prompt_tokens=request.context_tokens))  # fmt: skip
