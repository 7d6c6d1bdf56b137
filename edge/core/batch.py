"""Many answers at once: the relay loop over a batched model, one forward per step.

:func:`relay_batch` runs the same :class:`edge.core.relay.RelayAnswer` steps as
:class:`edge.core.loop.RelayLoop`, for many prompts together (the rollouts of
training, evaluation at scale). Each round it advances every answer until it
needs logits (a sample or an entropy) or the cloud; calls of that round run
concurrently; then one batched forward evaluates every answer's new tokens.
A model implements :class:`BatchModel`: rows with their own contexts, which
grow by different numbers of tokens per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from edge.core.cloud import CloudClient, CloudItem
from edge.core.local_model import TextCodec
from edge.core.policies import CallPolicy
from edge.core.prompt import RelayPrompt
from edge.core.record import AnswerRecord
from edge.core.relay import ENTROPY, SAMPLE, CallCloud, Extend, RelayAnswer, RelayLimits, Rewind
from protocol.events import RelayEvent
from protocol.sampling import SamplingParams

__all__ = ["BatchModel", "relay_batch"]


class BatchModel(TextCodec, Protocol):
    """A model holding one context per row; tokens are queued, then evaluated together."""

    @property
    def n_ctx(self) -> int: ...

    def start(self, prompts: Sequence[Sequence[int]], sampling: Sequence[SamplingParams]) -> None:
        """Fresh rows, one per prompt, each with its own sampler."""
        ...

    def extend(self, row: int, tokens: Sequence[int]) -> None: ...

    def rewind(self, row: int, n: int) -> None: ...

    def forward(self) -> None:
        """Evaluate every row's queued tokens in one batched pass."""
        ...

    def sample(self, row: int) -> int: ...

    def entropy(self, row: int) -> float: ...


def relay_batch(
    model: BatchModel,
    cloud: CloudClient,
    policy: CallPolicy,
    prompts: Sequence[RelayPrompt],
    *,
    limits: RelayLimits = RelayLimits(),
    sampling: SamplingParams = SamplingParams(temperature=1.0),
    seeds: Sequence[int | None] | None = None,
    on_event: Callable[[int, RelayEvent], None] | None = None,
    concurrency: int = 8,
) -> list[AnswerRecord]:
    """Answer every prompt; ``seeds[i]`` seeds answer ``i`` (its SLM and its calls)."""
    seeds = list(seeds) if seeds is not None else [sampling.seed] * len(prompts)
    answers = [
        RelayAnswer(prompt, model, policy, limits=limits, n_ctx=model.n_ctx, seed=seed)
        for prompt, seed in zip(prompts, seeds, strict=True)
    ]
    model.start([p.tokens for p in prompts], [replace(sampling, seed=s) for s in seeds])
    steps = [answer.steps() for answer in answers]
    replies: dict[int, Any] = dict.fromkeys(range(len(steps)))
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="relay-call") as pool:
        while replies:
            needs: dict[int, Any] = {}
            for row in list(replies):
                need = _advance(model, row, steps[row], replies.pop(row), on_event)
                if need is not None:
                    needs[row] = need
            calls = {row: n for row, n in needs.items() if isinstance(n, CallCloud)}
            for row, items in zip(calls, pool.map(lambda c: _collect(cloud, c), calls.values())):
                replies[row] = items
            if len(calls) < len(needs):
                model.forward()
            for row, need in needs.items():
                if need is SAMPLE:
                    replies[row] = model.sample(row)
                elif need is ENTROPY:
                    replies[row] = model.entropy(row)
    return [answer.record for answer in answers]


def _advance(
    model: BatchModel,
    row: int,
    steps: Iterator[Any],
    reply: Any,
    on_event: Callable[[int, RelayEvent], None] | None,
) -> Any:
    """Run one answer until it needs logits or the cloud (returned) or ends (``None``)."""
    send = steps.send  # type: ignore[attr-defined]
    while True:
        try:
            step = send(reply)
        except StopIteration:
            return None
        reply = None
        if isinstance(step, Extend):
            model.extend(row, step.tokens)
        elif isinstance(step, Rewind):
            model.rewind(row, step.n)
        elif step is SAMPLE or step is ENTROPY or isinstance(step, CallCloud):
            return step
        elif on_event is not None:
            on_event(row, step)


def _collect(cloud: CloudClient, call: CallCloud) -> Iterator[CloudItem]:
    return iter(list(cloud.stream(call.request)))
