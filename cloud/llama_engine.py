"""The embedded engine: a GGUF model in this process through llama.cpp.

Requests run one at a time on the model's worker thread (others wait their
turn in arrival order); a client that goes away, or a passed deadline, stops
its generation after the current token. The KV cache survives between requests, so a prompt that
extends an earlier one, the relay's pattern, evaluates only its new suffix,
even when other users' requests came in between (:mod:`cloud.prompt_slots`);
the re-used count is reported as ``usage.prompt_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cloud.engine import Delta, Generation
from cloud.prompt_slots import PromptSlots
from edge.llama import LlamaChat, LlamaModel, iterate_in_thread
from edge.llama.gpu import GpuLayers
from protocol.errors import ContextOverflow
from protocol.stops import StopMatcher
from protocol.wire import ChatMessage, FinishReason, Usage

__all__ = ["LlamaEngine"]

log = logging.getLogger(__name__)


class LlamaEngine:
    """Serves one :class:`LlamaModel` under ``model_id``."""

    def __init__(self, model: LlamaModel, model_id: str, *, prompt_slots: int = 4) -> None:
        self.model = model
        self.model_id = model_id
        self.slots = PromptSlots(model, prompt_slots)
        self._chat = LlamaChat(model)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-engine")

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        model_id: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        prompt_slots: int = 4,
        n_gpu_layers: GpuLayers = "auto",
    ) -> LlamaEngine:
        model = LlamaModel(path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers)
        if model.gpu.note:
            log.warning("%s", model.gpu.note)
        return cls(model, model_id or path.stem, prompt_slots=prompt_slots)

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
        """Free the model once the worker is idle; awaited, so answers being cancelled at
        shutdown can still stop their generation meanwhile."""
        await asyncio.wrap_future(self._executor.submit(self.model.close))
        self._executor.shutdown(wait=True)

    def _stream(
        self, tokenize: Callable[[], list[int]], generation: Generation
    ) -> AsyncIterator[Delta]:
        return iterate_in_thread(self._executor, lambda: self._generate(tokenize, generation))

    def _generate(
        self, tokenize: Callable[[], list[int]], generation: Generation
    ) -> Iterator[Delta]:
        """On the worker thread: evaluate the prompt, then sample until a finish."""
        prompt = tokenize()
        if len(prompt) >= self.model.n_ctx:
            raise ContextOverflow(len(prompt), self.model.n_ctx)
        self.slots.prepare(prompt)
        cached = self.model.sync(prompt, exact=generation.sampling.seed is not None)
        yield Delta()  # the prompt is accepted: the response can begin
        room = self.model.n_ctx - len(prompt)
        limit = min(generation.max_tokens or room, room)
        produced: list[int] = []
        finish = yield from self._sample(generation, limit, produced)
        yield Delta(finish_reason=finish, usage=Usage.of(len(prompt), len(produced), cached))

    def _sample(
        self, generation: Generation, limit: int, produced: list[int]
    ) -> Generator[Delta, None, FinishReason]:
        sampler = self.model.sampler(generation.sampling)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(generation.stop)
        finish: FinishReason = "length"
        try:
            while len(produced) < limit and not generation.expired:
                token = sampler.sample()
                if self.model.is_end(token):
                    finish = "stop"
                    break
                produced.append(token)
                text, hit = stops.feed(decoder.decode(self.model.detokenize([token])))
                if text:
                    yield Delta(text=text)
                if hit:
                    return "stop"
                if len(produced) < limit:
                    self.model.eval([token])
        finally:
            sampler.close()
        tail = stops.flush()  # a character the last token left unfinished is not sent (no U+FFFD)
        if tail:
            yield Delta(text=tail)
        return finish
