"""Call policies: when the relay asks the cloud for tokens, and for how many.

One interface, five policies, and ``auto`` to choose between two of them.
``on_command`` is asked when the SLM wrote a complete command; ``before_token``
before each SLM token. Each returns the number of tokens to ask the cloud for
(0: no call). A policy that reads the
SLM's next-token entropy says so with ``uses_entropy``, so the entropy is
computed only for it.

* ``auto`` (default, :func:`choose_policy`): ``learned`` for an SLM whose GGUF says it
  was trained to call, ``entropy`` (at the SLM's calibrated threshold) otherwise.
* ``learned``: the SLM's own ``<call>N</call>`` commands.
* ``entropy``: training-free; calls when the next-token entropy passes a
  threshold, so an untrained SLM can relay (and an evaluation baseline).
* ``random``: the paper's query-level random router: with probability ``p``
  the cloud answers the whole query, otherwise the SLM answers alone. The
  draw depends only on the answer's seed, so a seeded answer routes the same
  way every time.
* ``never``: SLM only; commands are shown as skipped (the device app keeps an SLM
  trained to call from writing them, see below).
* ``cloud``: the LLM writes the whole answer.

:func:`quiet_commands` gives the logit biases that keep an SLM from starting a
command, for the policies that ignore commands: a trained SLM run by them
would otherwise write commands that go nowhere.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.core.local_model import TextCodec
from protocol.calls import CALL_OPEN, CallCommand

__all__ = [
    "DEFAULT_THRESHOLD",
    "QUIET_BIAS",
    "CallPolicy",
    "CloudOnlyPolicy",
    "EntropyPolicy",
    "LearnedPolicy",
    "NeverPolicy",
    "PolicyChoice",
    "PolicyState",
    "RandomRouter",
    "choose_policy",
    "make_policy",
    "quiet_commands",
]

DEFAULT_THRESHOLD = 4.0
"""Nats, for an SLM with no calibration (``relay calibrate`` measures one)."""


@dataclass(frozen=True)
class PolicyState:
    """What a policy may look at before the next SLM token.

    ``entropy`` is set only for policies with ``uses_entropy``; ``seed`` is the
    answer's seed (``None`` when unseeded).
    """

    answer_tokens: int
    tokens_left: int
    tokens_since_call: int
    calls: int
    entropy: float | None = None
    seed: int | None = None


class CallPolicy(Protocol):
    name: str
    uses_entropy: bool

    def on_command(self, command: CallCommand) -> int: ...

    def before_token(self, state: PolicyState) -> int: ...


class _Declines:
    """Skips every command and calls unasked for nothing: what a policy does unless it says
    otherwise."""

    uses_entropy = False

    def on_command(self, command: CallCommand) -> int:
        return 0

    def before_token(self, state: PolicyState) -> int:
        return 0


class LearnedPolicy(_Declines):
    name = "learned"

    def on_command(self, command: CallCommand) -> int:
        return command.n


class NeverPolicy(_Declines):
    name = "never"


class CloudOnlyPolicy(_Declines):
    name = "cloud"

    def before_token(self, state: PolicyState) -> int:
        return state.tokens_left if state.calls == 0 and state.answer_tokens == 0 else 0


class EntropyPolicy(_Declines):
    """Call for ``n`` tokens when entropy exceeds ``threshold`` nats (at most once per ``n``)."""

    name = "entropy"
    uses_entropy = True

    def __init__(self, threshold: float, n: int) -> None:
        self.threshold = threshold
        self.n = n

    def before_token(self, state: PolicyState) -> int:
        if state.calls and state.tokens_since_call < self.n:
            return 0
        return self.n if (state.entropy or 0.0) > self.threshold else 0


class RandomRouter(_Declines):
    """With probability ``p`` the cloud answers the whole query; otherwise the SLM alone."""

    name = "random"

    def __init__(self, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"the routing probability must be in [0, 1], not {p}")
        self.p = p

    def routes_to_cloud(self, seed: int | None) -> bool:
        """The draw for an answer with this seed (a fresh draw when unseeded)."""
        rng = random.Random(f"relayllm-router-{seed}") if seed is not None else random
        return rng.random() < self.p

    def before_token(self, state: PolicyState) -> int:
        if state.answer_tokens or state.calls or not self.routes_to_cloud(state.seed):
            return 0
        return state.tokens_left


def make_policy(
    name: str, *, threshold: float = DEFAULT_THRESHOLD, p: float = 0.1, n: int = 16
) -> CallPolicy:
    """The policy called ``name``."""
    policies: dict[str, Callable[[], CallPolicy]] = {
        "learned": LearnedPolicy,
        "never": NeverPolicy,
        "cloud": CloudOnlyPolicy,
        "entropy": lambda: EntropyPolicy(threshold, n),
        "random": lambda: RandomRouter(p),
    }
    if name not in policies:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(policies)}")
    return policies[name]()


@dataclass(frozen=True)
class PolicyChoice:
    """The policy an answer runs, its entropy threshold, and why it was chosen."""

    name: str
    why: str = ""
    threshold: float = DEFAULT_THRESHOLD

    @property
    def label(self) -> str:
        """``entropy 4.67 nats (auto: …)``: what a summary line says."""
        shown = f"{self.name} {self.threshold:.2f} nats" if self.name == "entropy" else self.name
        return f"{shown} ({self.why})" if self.why else shown


def choose_policy(
    requested: str,
    *,
    trained: bool,
    threshold: float | None = None,
    calibrated: float | None = None,
    offline: bool = False,
) -> PolicyChoice:
    """What ``requested`` means for an SLM (``trained`` to call or not); ``auto`` never calls
    ``offline``.

    The entropy threshold is ``threshold`` when set, else the SLM's ``calibrated``
    one, else :data:`DEFAULT_THRESHOLD`.
    """
    if threshold is not None:
        chosen, source = threshold, "set"
    elif calibrated is not None:
        chosen, source = calibrated, "calibrated for this SLM"
    else:
        chosen, source = DEFAULT_THRESHOLD, "not calibrated: see relay calibrate"
    if requested != "auto":
        why = source if requested == "entropy" else ""
        return PolicyChoice(requested, why, chosen)
    if offline:
        return PolicyChoice("never", "auto: offline", chosen)
    if trained:
        return PolicyChoice("learned", "auto: the SLM was trained to call", chosen)
    return PolicyChoice("entropy", f"auto: the SLM was not trained to call; {source}", chosen)


QUIET_BIAS = -100.0
"""The logit bias that keeps a token from being sampled (llama.cpp's and our bound)."""


def quiet_commands(codec: TextCodec) -> tuple[tuple[int, float], ...]:
    """Logit biases on the tokens a command starts with (at a line's start or after a space)."""
    first = {codec.tokenize(text)[0] for text in (CALL_OPEN, f" {CALL_OPEN}")}
    return tuple((token, QUIET_BIAS) for token in sorted(first))
