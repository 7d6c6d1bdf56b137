"""The difficulty-aware reward, judged per prompt group.

Each group holds the answers to one prompt. ``rho`` is the share of an
answer's tokens that came from the cloud (tokens actually received, not the
number asked for); an answer "called" when ``rho > 0``. The group decides
which case applies:

1. some answer is correct without calling: correct without a call earns
   ``solo`` (1.5), correct with a call ``1 - rho``, wrong 0;
2. else some answer that called is correct: correct with a call ``1 - rho``,
   wrong without a call ``stubborn`` (-1), wrong with a call 0;
3. else (nobody is right): a call earns ``rho`` (asking was the right idea),
   no call 0.

An optional format penalty is subtracted for malformed commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RewardWeights", "relay_rewards"]


@dataclass(frozen=True)
class RewardWeights:
    """The reward's constants (the method's values by default)."""

    solo: float = 1.5
    stubborn: float = -1.0
    format_penalty: float = 0.0


def relay_rewards(
    correct: list[bool],
    cloud_ratio: list[float],
    group_size: int,
    *,
    weights: RewardWeights = RewardWeights(),
    malformed: Sequence[int] | None = None,
) -> list[float]:
    """Rewards for a flat batch whose consecutive blocks of ``group_size`` are the groups."""
    if group_size < 1 or len(correct) % group_size or len(correct) != len(cloud_ratio):
        raise ValueError(
            f"{len(correct)} answers and {len(cloud_ratio)} ratios "
            f"do not make groups of {group_size}"
        )
    if any(not 0.0 <= rho <= 1.0 for rho in cloud_ratio):
        raise ValueError("cloud ratios must lie in [0, 1]")
    rewards: list[float] = []
    for start in range(0, len(correct), group_size):
        group = range(start, start + group_size)
        rewards += _group([correct[i] for i in group], [cloud_ratio[i] for i in group], weights)
    if malformed is not None:
        rewards = [
            r - weights.format_penalty * bad for r, bad in zip(rewards, malformed, strict=True)
        ]
    return rewards


def _group(correct: list[bool], rho: list[float], weights: RewardWeights) -> list[float]:
    called = [r > 0 for r in rho]
    if any(ok and not call for ok, call in zip(correct, called, strict=True)):
        return [
            (1.0 - r if call else weights.solo) if ok else 0.0
            for ok, call, r in zip(correct, called, rho, strict=True)
        ]
    if any(ok and call for ok, call in zip(correct, called, strict=True)):
        return [
            1.0 - r if ok else (0.0 if call else weights.stubborn)
            for ok, call, r in zip(correct, called, rho, strict=True)
        ]
    return [r if call else 0.0 for call, r in zip(called, rho, strict=True)]
