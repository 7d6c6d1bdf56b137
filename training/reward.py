"""The difficulty-aware reward, judged per prompt group, with the cloud's cost in tokens.

Each group holds the answers to one prompt. An answer "called" when it
received cloud tokens. Its ``cost`` is what the call spent, on a 0-1 scale:
``token_cost`` per cloud token received (never the number asked for) plus
``call_cost`` per call, at most 1. The group decides which case applies:

1. some answer is correct without calling: correct without a call earns
   ``solo`` (1.5), correct with a call ``1 - cost``, wrong 0;
2. else some answer that called is correct: correct with a call ``1 - cost``,
   wrong without a call ``stubborn`` (-1), wrong with a call 0;
3. else (nobody is right): a call earns ``cost`` (asking was the right idea),
   no call 0.

The method's own cost is the cloud's share of the answer's tokens (``ratio``),
which pays an SLM for writing more of its own text before a small late call;
it stays available as ``cost = "ratio"``. An optional format penalty is
subtracted for malformed commands. :func:`informative_groups` says which
groups teach anything: a group whose rewards are all equal has no advantage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["AnswerCost", "RewardWeights", "informative_groups", "relay_rewards"]


@dataclass(frozen=True)
class RewardWeights:
    """The reward's constants (the method's values for the three cases by default)."""

    solo: float = 1.5
    stubborn: float = -1.0
    format_penalty: float = 0.0
    cost: Literal["tokens", "ratio"] = "tokens"
    token_cost: float = 0.01
    call_cost: float = 0.05


@dataclass(frozen=True)
class AnswerCost:
    """What one answer took from the cloud."""

    cloud_tokens: int
    calls: int
    ratio: float  # cloud tokens / all answer tokens

    def value(self, weights: RewardWeights) -> float:
        """The cost on a 0-1 scale (see the module docstring); 0 without a call."""
        if self.cloud_tokens <= 0:
            return 0.0
        if weights.cost == "ratio":
            return self.ratio
        return min(1.0, weights.token_cost * self.cloud_tokens + weights.call_cost * self.calls)


def relay_rewards(
    correct: Sequence[bool],
    costs: Sequence[AnswerCost],
    group_size: int,
    *,
    weights: RewardWeights = RewardWeights(),
    malformed: Sequence[int] | None = None,
) -> list[float]:
    """Rewards for a flat batch whose consecutive blocks of ``group_size`` are the groups."""
    if group_size < 1 or len(correct) % group_size or len(correct) != len(costs):
        raise ValueError(
            f"{len(correct)} answers and {len(costs)} costs do not make groups of {group_size}"
        )
    if any(not 0.0 <= c.ratio <= 1.0 or c.cloud_tokens < 0 for c in costs):
        raise ValueError("cloud ratios must lie in [0, 1] and cloud tokens be >= 0")
    rewards: list[float] = []
    for start in range(0, len(correct), group_size):
        group = range(start, start + group_size)
        values = [costs[i].value(weights) for i in group]
        called = [costs[i].cloud_tokens > 0 for i in group]
        rewards += _group([correct[i] for i in group], called, values, weights)
    if malformed is not None:
        rewards = [
            r - weights.format_penalty * bad for r, bad in zip(rewards, malformed, strict=True)
        ]
    return rewards


def _group(
    correct: list[bool], called: list[bool], cost: list[float], weights: RewardWeights
) -> list[float]:
    answers = list(zip(correct, called, cost, strict=True))
    if any(ok and not call for ok, call, _ in answers):
        return [(1.0 - c if call else weights.solo) if ok else 0.0 for ok, call, c in answers]
    if any(ok and call for ok, call, _ in answers):
        return [1.0 - c if ok else (0.0 if call else weights.stubborn) for ok, call, c in answers]
    return [c if call else 0.0 for _, call, c in answers]


def informative_groups(rewards: Sequence[float], group_size: int) -> list[bool]:
    """For each group, whether its rewards differ (a group of equal rewards teaches nothing)."""
    return [
        max(rewards[i : i + group_size]) - min(rewards[i : i + group_size]) > 1e-9
        for i in range(0, len(rewards), group_size)
    ]
