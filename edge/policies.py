"""Call policies: when the relay asks the cloud for tokens, and for how many.

One interface, five policies. ``on_command`` is asked when the SLM wrote a
complete command; ``before_token`` before each SLM token. Each returns the
number of tokens to ask the cloud for (0: no call).

* ``learned`` (default): the SLM's own ``<call>N</call>`` commands.
* ``entropy``: training-free; calls when the next-token entropy passes a
  threshold, so an untrained SLM can relay (and an evaluation baseline).
* ``random``: calls at a target rate per token (baseline).
* ``never``: SLM only; commands are dropped unanswered and never shown.
* ``cloud``: the LLM writes the whole answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from protocol.calls import CallCommand

__all__ = [
    "CallPolicy",
    "CloudOnlyPolicy",
    "EntropyPolicy",
    "LearnedPolicy",
    "NeverPolicy",
    "PolicyState",
    "RandomPolicy",
    "make_policy",
]


@dataclass(frozen=True)
class PolicyState:
    """What a policy may look at before the next SLM token."""

    answer_tokens: int
    tokens_left: int
    tokens_since_call: int
    calls: int
    entropy: Callable[[], float]


class CallPolicy(Protocol):
    name: str

    def on_command(self, command: CallCommand) -> int: ...

    def before_token(self, state: PolicyState) -> int: ...


class LearnedPolicy:
    name = "learned"

    def on_command(self, command: CallCommand) -> int:
        return command.n

    def before_token(self, state: PolicyState) -> int:
        return 0


class NeverPolicy:
    name = "never"

    def on_command(self, command: CallCommand) -> int:
        return 0

    def before_token(self, state: PolicyState) -> int:
        return 0


class CloudOnlyPolicy:
    name = "cloud"

    def on_command(self, command: CallCommand) -> int:
        return 0

    def before_token(self, state: PolicyState) -> int:
        return state.tokens_left if state.calls == 0 else 0


class EntropyPolicy:
    """Call for ``n`` tokens when entropy exceeds ``threshold`` nats (at most once per ``n``)."""

    name = "entropy"

    def __init__(self, threshold: float, n: int) -> None:
        self.threshold = threshold
        self.n = n

    def on_command(self, command: CallCommand) -> int:
        return 0

    def before_token(self, state: PolicyState) -> int:
        if state.calls and state.tokens_since_call < self.n:
            return 0
        return self.n if state.entropy() > self.threshold else 0


class RandomPolicy:
    """Call for ``n`` tokens with probability ``rate`` before each SLM token."""

    name = "random"

    def __init__(self, rate: float, n: int, seed: int | None = None) -> None:
        self.rate = rate
        self.n = n
        self._rng = random.Random(seed)

    def on_command(self, command: CallCommand) -> int:
        return 0

    def before_token(self, state: PolicyState) -> int:
        return self.n if self._rng.random() < self.rate else 0


def make_policy(
    name: str, *, threshold: float = 4.0, rate: float = 0.02, n: int = 16, seed: int | None = None
) -> CallPolicy:
    """The policy called ``name``."""
    policies: dict[str, Callable[[], CallPolicy]] = {
        "learned": LearnedPolicy,
        "never": NeverPolicy,
        "cloud": CloudOnlyPolicy,
        "entropy": lambda: EntropyPolicy(threshold, n),
        "random": lambda: RandomPolicy(rate, n, seed),
    }
    if name not in policies:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(policies)}")
    return policies[name]()
