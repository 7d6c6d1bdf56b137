"""What counts toward a budget: UTC periods, spend, prices, and what a cap still allows.

A token budget counts the tokens the cloud generated (completion tokens, hidden
reasoning included); prompt tokens are paid for in dollars, at a :class:`Price`.
:func:`room` is the one affordability check: the device's cost caps and
relay-cloud's per-key budgets both ask it how many tokens a call may generate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Period", "Price", "Spend", "affordable", "periods", "room", "until_next_day"]

Period = Literal["day", "month"]
"""A UTC calendar period that budgets count over."""

UNLIMITED = 2**31
"""The tokens a dollar cap allows when completions are free."""


def periods(when: float) -> tuple[str, str]:
    """The UTC day (``YYYY-MM-DD``) and month (``YYYY-MM``) of a moment."""
    moment = datetime.fromtimestamp(when, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m")


def until_next_day(now: float) -> float:
    """Seconds until the next UTC midnight, at least one."""
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - moment).total_seconds())


@dataclass(frozen=True)
class Spend:
    """Spend over a period: cloud tokens (completion) and dollars, the calls, the prompt
    tokens billed and the part of them read from a cache."""

    tokens: int
    usd: float
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.tokens + other.tokens, self.usd + other.usd, self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens, self.cached_tokens + other.cached_tokens,
        )  # fmt: skip


class Price(BaseModel):
    """US dollars per million tokens: prompt, completion, and prompt tokens read from (or
    written to) the provider's cache, at the prompt price unless given."""

    prompt: float = Field(0.0, ge=0)
    completion: float = Field(0.0, ge=0)
    cached_prompt: float | None = Field(None, ge=0, description="Prompt tokens read from cache.")
    cache_write: float | None = Field(None, ge=0, description="Prompt tokens written to cache.")

    def cost(
        self, prompt_tokens: int, completion_tokens: int, *, cached: int = 0, written: int = 0
    ) -> float:
        """Dollars for a call; ``cached`` and ``written`` are parts of ``prompt_tokens``."""
        cached, written = min(cached, prompt_tokens), min(written, prompt_tokens - cached)
        fresh = prompt_tokens - cached - written
        read_price = self.prompt if self.cached_prompt is None else self.cached_prompt
        write_price = self.prompt if self.cache_write is None else self.cache_write
        dollars = fresh * self.prompt + cached * read_price + written * write_price
        return (dollars + completion_tokens * self.completion) / 1e6


def affordable(usd_left: float, prompt_tokens: int, price: Price) -> int:
    """Completion tokens ``usd_left`` still pays for once the prompt is paid."""
    left = usd_left - price.cost(prompt_tokens, 0)
    if left <= 0:
        return 0
    if price.completion == 0:
        return UNLIMITED
    return math.floor(left * 1e6 / price.completion)


def room(
    spent: Spend, *, tokens: int | None, usd: float | None, price: Price, prompt_tokens: int
) -> dict[Literal["tokens", "usd"], int]:
    """Completion tokens each cap that is set (``None``: no cap) still allows after ``spent``:
    the ``tokens`` cap counts generated tokens, the ``usd`` cap the prompt and them at ``price``."""
    found: dict[Literal["tokens", "usd"], int] = {}
    if tokens is not None:
        found["tokens"] = max(0, tokens - spent.tokens)
    if usd is not None:
        found["usd"] = affordable(usd - spent.usd, prompt_tokens, price)
    return found
