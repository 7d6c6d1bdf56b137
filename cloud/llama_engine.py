"""The embedded engine: a GGUF model in this process through llama.cpp, answers batched.

Up to ``parallel`` requests are answered at once, each a sequence of one
llama.cpp context; every step evaluates one token of each in a single decode,
and new requests join (their prompts evaluated in pieces between the others'
tokens) and finished ones leave between steps (:mod:`cloud.batch_scheduler`).
Requests beyond ``parallel``, or whose prompt and ``max_tokens`` do not fit in
the context the running ones leave, wait their turn in arrival order. A client
that goes away, or a passed deadline, stops its answer after the current step.

Finished answers' KV cells are kept (``prompt_slots`` of them), so a prompt
that extends an earlier one, the relay's pattern, evaluates only its new
suffix, even when other users' requests came in between
(:mod:`cloud.prompt_slots`); the re-used count is reported as
``usage.prompt_tokens_details.cached_tokens``.

With a ``seed``, the same request gives the same text whenever it runs alone
(always at ``parallel = 1``): its cells are laid out as in a fresh context
(:mod:`cloud.batch_scheduler`). With several answers in one decode, llama.cpp's
CPU kernels may round differently with the batch's size, so a seeded answer
can then differ slightly from the same answer alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from cloud.batch_answer import Answer
from cloud.batch_scheduler import BatchScheduler
from cloud.engine import Delta, Generation
from edge.llama import LlamaChat, LlamaModel
from edge.llama.gpu import GpuLayers
from protocol.wire import ChatMessage

__all__ = ["LlamaEngine", "default_parallel"]

log = logging.getLogger(__name__)


def default_parallel(n_ctx: int) -> int:
    """Answers at once when ``parallel`` is not set: one per 512 tokens of context, at most 8
    (beyond 8, a CPU's step takes as much longer as it adds tokens)."""
    return max(1, min(8, n_ctx // 512))


class LlamaEngine:
    """Serves one :class:`LlamaModel` under ``model_id``."""

    def __init__(
        self,
        model: LlamaModel,
        model_id: str,
        *,
        prompt_slots: int = 4,
        parallel: int | None = None,
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.parallel = parallel or default_parallel(model.n_ctx)
        self.scheduler = BatchScheduler(model, self.parallel, prompt_slots)
        self.slots = self.scheduler.slots
        self._chat = LlamaChat(model)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        model_id: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        prompt_slots: int = 4,
        parallel: int | None = None,
        n_gpu_layers: GpuLayers = "auto",
    ) -> LlamaEngine:
        model = LlamaModel(path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers)
        if model.gpu.note:
            log.warning("%s", model.gpu.note)
        return cls(model, model_id or path.stem, prompt_slots=prompt_slots, parallel=parallel)

    def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        return self._stream(lambda: self.model.tokenize_prompt(prompt), generation)

    def chat(
        self, messages: Sequence[ChatMessage], generation: Generation, *, continue_final: bool
    ) -> AsyncIterator[Delta]:
        def tokens() -> list[int]:
            dumped = [m.model_dump() for m in messages]
            return self._chat.encode(self._chat.render(dumped, continue_final=continue_final))

        return self._stream(tokens, generation)

    async def start(self) -> None:
        """Nothing to do: the model was loaded in the constructor."""

    async def aclose(self) -> None:
        """Free the model once no answer is running or waiting; awaited, so answers being
        cancelled at shutdown can still stop their generation meanwhile."""
        await asyncio.to_thread(self.scheduler.close)

    async def _stream(
        self, tokenize: Callable[[], list[int]], generation: Generation
    ) -> AsyncIterator[Delta]:
        """The deltas the scheduler's thread sends for one request; closing this early (the
        client went away) frees the request's sequence at the next step."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException] = asyncio.Queue()

        def emit(item: Delta | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop is gone
                loop.call_soon_threadsafe(queue.put_nowait, item)

        answer = Answer(tokenize, generation, emit)
        self.scheduler.submit(answer)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            answer.cancelled = True
