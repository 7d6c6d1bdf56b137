"""Token counts of one request, with relayllm's extension saying who wrote the tokens."""

from __future__ import annotations

from pydantic import Field

from protocol.wire.base import WireModel

__all__ = ["PromptTokensDetails", "RelayDetails", "Usage"]


class PromptTokensDetails(WireModel):
    """How many prompt tokens were served from the engine's cache."""

    cached_tokens: int = Field(0, ge=0)


class RelayDetails(WireModel):
    """relayllm extension to usage: who wrote the completion's tokens, what the calls cost."""

    slm_tokens: int = Field(0, ge=0)
    llm_tokens: int = Field(0, ge=0)
    calls: int = Field(0, ge=0)
    cost_usd: float = Field(0.0, ge=0)


class Usage(WireModel):
    """Token counts of one request; adds with ``+``."""

    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    total_tokens: int = Field(0, ge=0)
    prompt_tokens_details: PromptTokensDetails | None = None
    relay: RelayDetails | None = Field(None, description="relayllm extension (relay serve).")

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Usage:
        """Build a usage record with the total filled in."""
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
        )

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the engine did not have to evaluate again."""
        return self.prompt_tokens_details.cached_tokens if self.prompt_tokens_details else 0

    def __add__(self, other: Usage) -> Usage:
        return Usage.of(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )
