"""The embedded engine: a GGUF model in this process through llama.cpp.

Requests run one at a time on a single worker thread (others wait in its
queue). The KV cache survives between requests, so a prompt that extends the
previous one, the relay's pattern, evaluates only its new suffix; the re-used
count is reported as ``usage.prompt_tokens_details.cached_tokens``.
"""

from __future__ import annotations

import asyncio
import codecs
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cloud.engine import Delta, Generation
from cloud.stops import StopMatcher
from edge.chat_template import render_chat
from edge.llama_model import LlamaModel
from protocol.errors import ContextOverflow
from protocol.wire import ChatMessage, FinishReason, Usage

__all__ = ["LlamaEngine"]

_Emit = Callable[[Delta | BaseException], None]


class LlamaEngine:
    """Serves one :class:`LlamaModel` under ``model_id``."""

    def __init__(self, model: LlamaModel, model_id: str) -> None:
        self.model = model
        self.model_id = model_id
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-engine")

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        model_id: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
    ) -> LlamaEngine:
        model = LlamaModel(path, n_ctx=n_ctx, n_threads=n_threads)
        return cls(model, model_id or path.stem)

    def complete(self, prompt: str, generation: Generation) -> AsyncIterator[Delta]:
        return self._stream(lambda: self.model.tokenize_prompt(prompt), generation)

    def chat(
        self, messages: Sequence[ChatMessage], generation: Generation, *, continue_final: bool
    ) -> AsyncIterator[Delta]:
        def tokens() -> list[int]:
            prompt = render_chat(
                [m.model_dump() for m in messages],
                template=self.model.metadata.get("tokenizer.chat_template"),
                bos_token=self.model.special_token_text("bos"),
                eos_token=self.model.special_token_text("eos"),
                continue_final=continue_final,
            )
            return self.model.tokenize_prompt(prompt)

        return self._stream(tokens, generation)

    async def start(self) -> None:
        """Nothing to do: the model was loaded in the constructor."""

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.model.close)
        self._executor.shutdown(wait=True)

    async def _stream(
        self, tokenize: Callable[[], list[int]], generation: Generation
    ) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Delta | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        job = loop.run_in_executor(
            self._executor, self._generate, tokenize, generation, emit, cancelled
        )
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            cancelled.set()
            await job

    def _generate(
        self,
        tokenize: Callable[[], list[int]],
        generation: Generation,
        emit: _Emit,
        cancelled: threading.Event,
    ) -> None:
        """Worker thread: evaluate the prompt, then sample until a finish."""
        try:
            if cancelled.is_set():
                return
            prompt = tokenize()
            if len(prompt) >= self.model.n_ctx:
                raise ContextOverflow(len(prompt), self.model.n_ctx)
            cached = self.model.sync(prompt)
            emit(Delta())  # the prompt is accepted: the response can begin
            room = self.model.n_ctx - len(prompt)
            limit = min(generation.max_tokens or room, room)
            produced, finish = self._sample(generation, limit, emit, cancelled)
            emit(Delta(finish_reason=finish, usage=Usage.of(len(prompt), produced, cached)))
        except Exception as exc:  # handed to the awaiting coroutine
            emit(exc)

    def _sample(
        self, generation: Generation, limit: int, emit: _Emit, cancelled: threading.Event
    ) -> tuple[int, FinishReason]:
        sampler = self.model.sampler(generation.sampling)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(generation.stop)
        produced = 0
        try:
            while produced < limit and not cancelled.is_set():
                token = sampler.sample()
                if self.model.is_end_of_generation(token):
                    return produced, "stop"
                produced += 1
                text, hit = stops.feed(decoder.decode(self.model.detokenize([token])))
                if text:
                    emit(Delta(text=text))
                if hit:
                    return produced, "stop"
                if produced < limit:
                    self.model.eval([token])
            tail = stops.flush() + decoder.decode(b"", final=True)
            if tail:
                emit(Delta(text=tail))
            return produced, "length"
        finally:
            sampler.close()
