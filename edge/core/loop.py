"""The relay loop on one local model: :class:`RelayLoop` drives one answer at a time.

It owns the model and the cloud client and answers the steps of
:class:`edge.core.relay.RelayAnswer`: context edits go to the model, samples and
entropies come from it, calls go to the cloud, and events go to the caller.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any, Generic, Protocol, TypeVar

from edge.core.cloud import CloudClient
from edge.core.local_model import LocalModel
from edge.core.policies import CallPolicy
from edge.core.prompt import RelayPrompt
from edge.core.record import AnswerRecord
from edge.core.relay import ENTROPY, SAMPLE, CallCloud, Extend, RelayAnswer, RelayLimits, Rewind
from protocol.events import RelayEvent
from protocol.sampling import SamplingParams

T = TypeVar("T")
_END = object()
_NOTHING = object()
READY_WAIT_S = 0.002
"""How long the relay waits for a next piece before evaluating what it has: long enough
to catch the end of a stream that follows its last text at once."""

__all__ = ["AnswerSpan", "Prefetched", "RelayLoop"]


class AnswerSpan(Protocol):
    """A trace span around one answer, current while the cloud is called (see tracing)."""

    def current(self) -> AbstractContextManager[None]: ...

    def end(self, attributes: Mapping[str, Any]) -> None: ...


AnswerTracer = Callable[..., "AnswerSpan | None"]
"""``tracer(name, attributes=...)``: a started span, or ``None`` when traces are off."""


class RelayLoop:
    """Answers prompts with one :class:`LocalModel`, calling ``cloud`` as ``policy`` decides.

    ``record`` is the latest answer's :class:`AnswerRecord`; ``tracer`` (the device
    app's OpenTelemetry spans) wraps each answer when given.
    """

    def __init__(
        self,
        model: LocalModel,
        cloud: CloudClient,
        policy: CallPolicy,
        *,
        limits: RelayLimits = RelayLimits(),
        sampling: SamplingParams = SamplingParams(temperature=0.7),
        tracer: AnswerTracer | None = None,
    ) -> None:
        self.model, self.cloud, self.policy, self.tracer = model, cloud, policy, tracer
        self.limits, self.sampling = limits, sampling
        self.record: AnswerRecord | None = None
        path = getattr(model, "path", None)
        self.model_name = getattr(path, "name", "") or type(model).__name__

    def run(
        self,
        prompt: RelayPrompt,
        *,
        prefix: str = "",
        seed: int | None = None,
        sampling: SamplingParams | None = None,
        limits: RelayLimits | None = None,
    ) -> Iterator[RelayEvent]:
        """Answer ``prompt``; ``prefix`` is answer text taken as the SLM's own (commands act).

        ``seed`` (default: the sampling seed) seeds the SLM and, per call, the cloud;
        ``sampling`` and ``limits`` replace the loop's own for this answer.
        """
        sampling = sampling or self.sampling
        seed = sampling.seed if seed is None else seed
        answer = RelayAnswer(prompt, self.model, self.policy, limits=limits or self.limits,
                             n_ctx=self.model.n_ctx, seed=seed, prefix=prefix)  # fmt: skip
        self.record = answer.record
        self.model.sync(prompt.tokens, exact=seed is not None)
        sampler = self.model.sampler(replace(sampling, seed=seed))
        steps = answer.steps()
        traced = self.tracer and self.tracer("relay answer", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": self.model_name,
            "relayllm.policy": self.policy.name})  # fmt: skip
        try:
            reply = None
            while (step := steps.send(reply)) is not None:
                reply = None
                if isinstance(step, Extend):
                    self.model.eval(step.tokens)
                elif step is SAMPLE:
                    reply = sampler.sample()
                elif step is ENTROPY:
                    reply = self.model.next_token_entropy()
                elif isinstance(step, CallCloud):
                    with traced.current() if traced else nullcontext():  # its span's parent
                        reply = Prefetched(self.cloud.stream(step.request))
                elif isinstance(step, Rewind):
                    self.model.rewind(step.n)
                else:
                    yield step  # type: ignore[misc]
        except StopIteration:
            return
        finally:
            steps.close()
            sampler.close()
            if traced is not None:
                traced.end(_answer_attributes(answer.record))


def _answer_attributes(record: AnswerRecord) -> dict[str, Any]:
    """What an answer's span says once it is done (GenAI conventions and the relay's own)."""
    cloud = record.mask.count(0)
    return {
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": len(record.tokens),
        "gen_ai.response.finish_reasons": [record.finish_reason or "length"],
        "relayllm.slm_tokens": len(record.tokens) - cloud,
        "relayllm.llm_tokens": cloud,
        "relayllm.calls": len(record.calls),
    }


class Prefetched(Generic[T]):
    """An iterator read ahead on a thread, so its consumer can tell whether more is waiting.

    The relay evaluates cloud tokens while the next piece is on its way
    (``ready()`` false) and leaves them for one batch when it is already here.
    Closing it stops the reading after the current item and closes the source on
    its own thread (a budget reservation is settled there).
    """

    def __init__(self, source: Iterator[T]) -> None:
        self._items: queue.Queue[object] = queue.Queue()
        self._ahead: object = _NOTHING
        self._stop = threading.Event()
        context = contextvars.copy_context()  # the reader sees the caller's trace
        self._thread = threading.Thread(target=context.run, args=(self._read, source),
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _read(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                self._items.put(item)
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer
            self._items.put(_Failure(exc))
        finally:
            getattr(source, "close", lambda: None)()
            self._items.put(_END)

    def ready(self, wait_s: float = READY_WAIT_S) -> bool:
        """Whether the next item has arrived (waiting up to ``wait_s`` for it)."""
        if self._ahead is _NOTHING:
            try:
                self._ahead = self._items.get(timeout=wait_s)
            except queue.Empty:
                return False
        return True

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        item, self._ahead = (self._items.get(), _NOTHING) if self._ahead is _NOTHING else (
            self._ahead, _NOTHING)  # fmt: skip
        if item is _END:
            self._ahead = _END
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
