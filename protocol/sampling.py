"""How a model draws its next token: one set of parameters for every backend.

The order is llama.cpp's: a fixed bias on chosen tokens (``logit_bias``, as
OpenAI's field), repetition penalties on the raw logits, then top-k,
top-p and min-p, then temperature, then a draw from a generator seeded with
``seed`` (temperature 0 takes the most likely token). Neutral values switch a
stage off: ``top_k=0``, ``top_p=1``, ``min_p=0``, penalties ``1`` / ``0``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SamplingParams"]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; OpenAI semantics where OpenAI has the field."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_last_n: int = 64
    logit_bias: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        checks = {
            "temperature must be >= 0": self.temperature >= 0,
            "top_p must be in (0, 1]": 0 < self.top_p <= 1,
            "top_k must be >= 0": self.top_k >= 0,
            "min_p must be in [0, 1]": 0 <= self.min_p <= 1,
            "repeat_penalty must be > 0": self.repeat_penalty > 0,
            "penalty_last_n must be >= 0": self.penalty_last_n >= 0,
            "seed must be in [0, 2**32)": self.seed is None or 0 <= self.seed < 2**32,
            "logit_bias must hold (token id >= 0, bias in [-100, 100]) pairs": all(
                token >= 0 and -100 <= bias <= 100 for token, bias in self.logit_bias
            ),
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError("; ".join(failed))

    @property
    def greedy(self) -> bool:
        """True when the most likely token is always taken."""
        return self.temperature == 0.0

    @property
    def full_distribution(self) -> bool:
        """True when the draw is from the whole vocabulary at ``temperature``: no bias,
        penalty or truncation stage is active."""
        truncated = self.top_k > 0 or self.top_p < 1.0 or self.min_p > 0.0
        return not (truncated or self.logit_bias or self.penalised)

    @property
    def penalised(self) -> bool:
        """True when any repetition penalty is active."""
        return self.penalty_last_n > 0 and (
            self.repeat_penalty != 1.0 or self.presence_penalty or self.frequency_penalty
        )
