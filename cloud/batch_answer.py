"""One request in the embedded engine's batch: its sequence, prompt chunks, sampling and text.

An :class:`Answer` lives on the engine's thread from admission to its last
delta. The scheduler asks it for the next piece of its prompt to evaluate
(:meth:`Answer.next_chunk`), or the token it sampled last, and hands it each
token it samples (:meth:`Answer.take`): the text is decoded incrementally (a
character split across tokens is sent whole), stop sequences are held back,
and the answer ends on an end-of-generation token, a stop, its token limit
or its deadline, exactly as a lone request always has.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import TYPE_CHECKING

from cloud.engine import Delta, Generation
from cloud.prompt_slots import Cells
from cloud.sequences import Chunk
from edge.llama.model import EXACT_BLOCK
from protocol.stops import StopMatcher
from protocol.wire import FinishReason, Usage

if TYPE_CHECKING:
    from edge.llama import LlamaModel, Sampler

__all__ = ["Answer"]

Emit = Callable[[Delta | BaseException], None]


class Answer:
    """A request's state while the engine answers it."""

    def __init__(self, tokenize: Callable[[], list[int]], generation: Generation, emit: Emit):
        self.tokenize = tokenize
        self.generation = generation
        self.emit = emit
        self.cancelled = False
        self.prompt: list[int] = []
        self.limit = 0
        self.cells = Cells(-1)
        self.cached = 0
        self.produced: list[int] = []
        self.pending: int | None = None  # sampled, evaluated in the next step
        self.finished = False
        self._sampler: Sampler | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(generation.stop)

    @property
    def exact(self) -> bool:
        """Whether a seed asks for reproducible text (prompts then re-use whole blocks only)."""
        return self.generation.sampling.seed is not None

    @property
    def needs(self) -> int:
        """Cells the answer may fill: its prompt and its token limit."""
        return len(self.prompt) + self.limit

    def start(self, model: LlamaModel, cells: Cells, cached: int) -> None:
        """Take up ``cells`` (its first ``cached`` tokens re-used) and accept the prompt."""
        self.cells, self.cached = cells, cached
        self._sampler = model.sampler(self.generation.sampling)
        self.emit(Delta())  # the prompt is accepted: the response can begin

    def next_chunk(self, budget: int) -> Chunk | None:
        """The next tokens to evaluate, at most ``budget`` of them (a prompt is cut at aligned
        block ends; a seeded one a block at a time), or ``None``."""
        held = len(self.cells.tokens)
        if self.pending is not None:
            tokens = [self.pending]
            self.pending = None
        elif held < len(self.prompt) and budget > 0:
            end = min(len(self.prompt), held - held % EXACT_BLOCK + EXACT_BLOCK)
            if not self.exact:
                fit = held + budget
                end = max(end, min(len(self.prompt), fit - fit % EXACT_BLOCK))
            if end - held > budget:
                return None
            tokens = self.prompt[held:end]
            if self.cells.exact == held and held % EXACT_BLOCK == 0 and end == held + EXACT_BLOCK:
                self.cells.exact = end  # one aligned block alone: the next request may re-use it
        else:
            return None
        self.cells.tokens += tokens
        last = len(self.cells.tokens) >= len(self.prompt)
        return Chunk(self.cells.seq_id, tokens, held, logits=last)

    def take(self, model: LlamaModel, index: int) -> None:
        """Sample at output ``index`` and send the text; end the answer when it is done."""
        assert self._sampler is not None
        if self.generation.expired or len(self.produced) >= self.limit:
            self.finish("length")
            return
        token = self._sampler.sample_at(index)
        if model.is_end(token):
            self.finish("stop")
            return
        self.produced.append(token)
        text, hit = self._stops.feed(self._decoder.decode(model.detokenize([token])))
        if text:
            self.emit(Delta(text=text))
        if hit:
            self.finish("stop", flush=False)
        elif len(self.produced) >= self.limit or self.generation.expired:
            self.finish("length")
        else:
            self.pending = token

    def finish(self, reason: FinishReason, *, flush: bool = True) -> None:
        """Send the last delta (and a stop-free tail unless a stop matched)."""
        tail = self._stops.flush() if flush else ""  # a half character is not sent (no U+FFFD)
        if tail:
            self.emit(Delta(text=tail))
        self.finished = True
        usage = Usage.of(len(self.prompt), len(self.produced), self.cached)
        self.emit(Delta(finish_reason=reason, usage=usage))

    def close(self) -> None:
        """Free the sampler (on the engine's thread)."""
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None
