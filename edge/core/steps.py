"""The steps of one relay answer: what it asks of its driver, and what the driver replies.

An answer (:class:`edge.core.relay.RelayAnswer`) is a generator of steps; a
driver owns the model and the cloud and answers each one:

* :class:`Extend` / :class:`Rewind`: append tokens to / drop tokens from the
  model's context (the answer part of it); no reply;
* ``SAMPLE``: reply with the token the model samples next;
* ``ENTROPY``: reply with the entropy of the next-token distribution;
* :class:`CallCloud`: reply with the cloud's items for the request;
* anything else is a :mod:`protocol.events` event for the user; no reply.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from edge.core.cloud import CloudRequest
from protocol.events import RelayEvent

__all__ = ["ENTROPY", "SAMPLE", "CallCloud", "Extend", "Rewind", "Step", "Steps"]


@dataclass(frozen=True)
class Extend:
    tokens: list[int]


@dataclass(frozen=True)
class Rewind:
    n: int


@dataclass(frozen=True)
class CallCloud:
    request: CloudRequest


SAMPLE = "sample"
ENTROPY = "entropy"
Step = RelayEvent | Extend | Rewind | CallCloud | str
Steps = Generator[Step, Any, None]
"""Steps that return nothing to their caller."""
