"""Continuous batching for the embedded engine: many answers, one ``llama_decode`` a step.

:class:`BatchScheduler` runs on its own thread, since llama.cpp's context is
not thread-safe. Each step it

1. drops answers whose client went away (their cells stay cached);
2. admits waiting requests in arrival order while fewer than ``parallel`` run
   and their cells fit (see below), each as a sequence of the shared context
   that starts from the longest prefix already held (:mod:`cloud.prompt_slots`);
3. evaluates, in one decode, the last sampled token of every generating answer
   and pieces of new prompts (at most ``PREFILL_TOKENS`` while others generate,
   so a long prompt slows the rest for a while instead of stalling them);
4. samples each answer's next token from its own logits with its own sampler.

Cells: the ``n_ctx`` cells are shared. An answer is admitted only when its
prompt plus its token limit (``max_tokens``, or the rest of the context) fit
beside those of the running answers; finished answers' cells are dropped,
oldest first, to make room. A request that does not fit waits, and the ones
behind it wait too (first come, first served); a prompt of ``n_ctx`` tokens or
more can never fit and fails at once with a context overflow.

Seeds: llama.cpp sums a sequence's attention over its cells in the order they
sit in the cache, and which cells a token gets depends on what the cache held
before, so the same tokens in other cells can give other logits. A seeded
answer that starts while no other answer runs is laid out as in a fresh
context, position ``i`` in cell ``i``: it goes on from the sequence held since
the cache was last emptied, as long as only seeded answers that ran alone have
placed cells since (re-using the whole aligned blocks they evaluated), and
otherwise empties the cache first (other requests' cached prefixes are
dropped). Its prompt is then evaluated a block of ``EXACT_BLOCK`` tokens at a
time, aligned to positions, and its decodes hold nothing else while it runs
alone, so it draws the same tokens every time.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from cloud.batch_answer import Answer
from cloud.prompt_slots import Cells, PromptSlots
from cloud.sequences import Chunk, Sequences
from edge.core.local_model import common_prefix
from edge.llama import LlamaModel
from edge.llama.model import EXACT_BLOCK
from protocol.errors import ContextOverflow

__all__ = ["PREFILL_TOKENS", "BatchScheduler"]

log = logging.getLogger(__name__)

PREFILL_TOKENS = 256
"""Most prompt tokens evaluated in one step while other answers are generating."""


class BatchScheduler:
    """Answers up to ``parallel`` requests of ``model`` at once, on one thread."""

    def __init__(self, model: LlamaModel, parallel: int = 1, prompt_slots: int = 4) -> None:
        self.model = model
        self.parallel = parallel
        self.slots = PromptSlots(prompt_slots)
        self.sequences = Sequences(model, parallel + prompt_slots)
        self._free = list(range(parallel + prompt_slots))[::-1]
        self._waiting: deque[Answer] = deque()
        self._running: list[Answer] = []
        self._lock = threading.Condition()
        self._closing = False
        self._fresh: int | None = None
        """The sequence laid out as in a fresh context, while the cache holds no other."""
        self._thread = threading.Thread(target=self._run, name="llama-engine", daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        """Answers being generated now."""
        return sum(not answer.finished for answer in self._running)

    def submit(self, answer: Answer) -> None:
        """Queue ``answer``; its deltas go to its ``emit`` from the engine's thread."""
        with self._lock:
            self._waiting.append(answer)
            self._lock.notify()

    def close(self) -> None:
        """Stop once nothing is waiting or running; free the sequences and the model."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join()
        self.sequences.close()
        self.model.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not (self._waiting or self._running or self._closing):
                    self._lock.wait()
                if self._closing and not (self._waiting or self._running):
                    return
            try:
                self._step()
            except Exception as exc:  # a failed decode ends the answers it held, not the engine
                log.exception("the embedded engine's step failed")
                self._fresh = None
                for answer in self._running:
                    if not answer.finished:
                        answer.finished = True
                        answer.emit(exc)
                self._release_finished(keep=False)  # what their cells hold is not known

    def _step(self) -> None:
        with self._lock:
            for answer in [a for a in self._waiting if a.cancelled]:
                self._waiting.remove(answer)
        for answer in self._running:
            answer.finished |= answer.cancelled
        self._release_finished()
        self._admit()
        chunks: list[tuple[Answer, Chunk]] = []
        for answer in self._running:
            if answer.pending is not None and (chunk := answer.next_chunk(0)) is not None:
                chunks.append((answer, chunk))
        budget = self.sequences.n_batch - len(chunks)
        if chunks:
            budget = min(budget, PREFILL_TOKENS)
        for answer in self._running:
            if answer.pending is None and (chunk := answer.next_chunk(budget)) is not None:
                chunks.append((answer, chunk))
                budget -= len(chunk.tokens)
        if not chunks:
            return
        self._share_cores(prefill=len(chunks) < sum(len(c.tokens) for _, c in chunks))
        outputs = self.sequences.decode([chunk for _, chunk in chunks])
        for (answer, _), index in zip(chunks, outputs, strict=True):
            if index >= 0:
                answer.take(self.model, index)
        self._release_finished()

    def _admit(self) -> None:
        """Start waiting answers, in arrival order, while there is a sequence and room."""
        while len(self._running) < self.parallel:
            with self._lock:
                if not self._waiting:
                    return
                answer = self._waiting[0]
            if not answer.prompt and not self._prepare(answer):
                with self._lock:
                    self._waiting.popleft()
                continue
            if not self._make_room(answer.needs):
                return
            with self._lock:
                self._waiting.popleft()
            alone = answer.exact and not self._running
            cells, cached = self._fresh_cells(answer) if alone else self._cells_for(answer)
            answer.start(self.model, cells, cached)
            self._running.append(answer)

    def _prepare(self, answer: Answer) -> bool:
        """Tokenize the prompt and set the token limit; ``False`` (error sent) when it can't."""
        n_ctx = self.model.n_ctx
        try:
            answer.prompt = answer.tokenize()
            if len(answer.prompt) >= n_ctx:
                raise ContextOverflow(len(answer.prompt), n_ctx)
        except Exception as exc:  # the request's own error, raised by its first delta
            answer.emit(exc)
            return False
        room = n_ctx - len(answer.prompt)
        answer.limit = min(answer.generation.max_tokens or room, room)
        return True

    def _make_room(self, needs: int) -> bool:
        """Drop finished sequences' cells until ``needs`` more fit; ``False`` if they can't."""
        taken = sum(a.needs for a in self._running)
        if taken + needs > self.model.n_ctx:
            return False
        while taken + needs + self.slots.cells > self.model.n_ctx:
            dropped = self.slots.drop_oldest()
            assert dropped is not None
            self._forget(dropped)
        return True

    def _cells_for(self, answer: Answer) -> tuple[Cells, int]:
        """A sequence for ``answer`` holding the longest re-usable prefix of its prompt."""
        self._fresh = None  # its cells go where they fit
        running = [a.cells for a in self._running]
        reuse = self.slots.best(answer.prompt, answer.exact, running)
        if reuse is not None and not self.sequences.reusable(reuse.source.seq_id, reuse.count):
            reuse = None
        if reuse is not None and reuse.take_over:
            cells = self.slots.take(reuse.source.seq_id)
            self.sequences.remove(cells.seq_id, reuse.count)
            del cells.tokens[reuse.count :]
            cells.exact = min(cells.exact, reuse.count)
            cells.exact -= cells.exact % EXACT_BLOCK
            return cells, reuse.count
        cells = Cells(self._free.pop())  # one is free: running + held < parallel + slots
        if reuse is not None:
            self.sequences.copy(reuse.source.seq_id, cells.seq_id, reuse.count)
            self.slots.touch(reuse.source.seq_id)
            cells.tokens = reuse.source.tokens[: reuse.count]
            cells.exact = min(reuse.source.exact, reuse.count)
            cells.exact -= cells.exact % EXACT_BLOCK
            return cells, reuse.count
        return cells, 0

    def _fresh_cells(self, answer: Answer) -> tuple[Cells, int]:
        """Cells for a seeded answer that starts alone: position ``i`` in cell ``i``, as in a
        fresh context (see the module's docstring)."""
        held = self.slots.get(self._fresh)
        if held is None:
            for cells in self.slots.clear():
                self._free.append(cells.seq_id)
            self.sequences.clear()
            self._fresh = self._free.pop()
            return Cells(self._fresh), 0
        count = min(common_prefix(held.tokens, answer.prompt), len(answer.prompt) - 1, held.exact)
        count -= count % EXACT_BLOCK
        cells = self.slots.take(held.seq_id)  # the only sequence held: its cells run from 0
        self.sequences.remove(cells.seq_id, count)
        del cells.tokens[count:]
        cells.exact = count
        return cells, count

    def _release_finished(self, *, keep: bool = True) -> None:
        """Hand finished answers' sequences to the prompt cache (``keep=False``: free them)."""
        for answer in [a for a in self._running if a.finished]:
            self._running.remove(answer)
            answer.close()
            if not keep or self.slots.slots == 0:
                self._forget(answer.cells)
                continue
            for dropped in self.slots.keep(answer.cells):
                self._forget(dropped)

    def _forget(self, cells: Cells) -> None:
        self.sequences.remove(cells.seq_id)
        self._free.append(cells.seq_id)

    def _share_cores(self, *, prefill: bool) -> None:
        """Follow the cores other processes leave free (when ``n_threads`` was not fixed)."""
        share = self.model.share
        if share is not None and (threads := share.tick(prefill)) is not None:
            self.model.set_threads(threads)
