"""Several sequences in one llama.cpp context: their KV cells, and one decode for them all.

llama-cpp-python's ``Llama`` keeps one sequence. :class:`Sequences` re-opens
its context so that up to ``n_seq`` sequences share the ``n_ctx`` cells of one
unified KV cache, and gives the embedded engine what continuous batching needs:

* ``decode(chunks)``: one ``llama_decode`` of a ``llama_batch`` holding tokens
  of several sequences, each at its own positions; the logits of a chunk's
  last token are kept when it asks, and their output index returned;
* ``remove(seq_id, start)``: free a sequence's cells from ``start`` on
  (``llama_memory_seq_rm``);
* ``copy(src, dst, count)``: let ``dst`` share the first ``count`` cells of
  ``src`` (``llama_memory_seq_cp``: a shared prefix is stored once);
* ``clear()``: empty the cache, so that cells are placed from cell 0 again as
  in a fresh context (``llama_memory_clear``);
* ``first_position(seq_id)``: the earliest position a sequence still holds.
  A sliding-window layer's cells outside a sequence's window may be taken by
  other sequences (llama.cpp then drops that sequence's earlier positions), so
  a prefix is re-usable only while the window before its end is still held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.llama import LlamaModel
from protocol.errors import ModelUnavailable

__all__ = ["Chunk", "Sequences"]


@dataclass(frozen=True)
class Chunk:
    """Tokens of one sequence for one decode, the first at position ``start``."""

    seq_id: int
    tokens: Sequence[int]
    start: int
    logits: bool = False
    """Keep the logits of the last token (to sample what follows it)."""


class Sequences:
    """The sequences of ``model``'s context; on the model's own thread only."""

    def __init__(self, model: LlamaModel, n_seq: int, n_batch: int = 512) -> None:
        import llama_cpp

        self.model = model
        self.n_seq = n_seq
        self.n_batch = n_batch
        if n_seq > 1:
            _reopen(model, n_seq)
        self._ctx = model.llama._ctx
        self.window = int(llama_cpp.llama_model_n_swa(model.llama._model.model))
        """The sliding-window layers' window in tokens (0: the model has none)."""
        self._batch: Any = llama_cpp.llama_batch_init(n_batch, 0, 1)  # None once closed

    def decode(self, chunks: Sequence[Chunk]) -> list[int]:
        """Evaluate ``chunks`` in one step; the output index of each chunk's logits (-1: none)."""
        import llama_cpp

        batch, outputs, n = self._batch, [], 0
        for chunk in chunks:
            for offset, token in enumerate(chunk.tokens):
                batch.token[n] = token
                batch.pos[n] = chunk.start + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = chunk.seq_id
                batch.logits[n] = 0
                n += 1
            if chunk.logits:
                batch.logits[n - 1] = 1
            outputs.append(n - 1 if chunk.logits else -1)
        if n > self.n_batch:
            raise ValueError(f"a step of {n} tokens is over the batch size {self.n_batch}")
        batch.n_tokens = n
        code = llama_cpp.llama_decode(self._ctx.ctx, batch)
        if code != 0:
            raise ModelUnavailable(f"llama.cpp could not evaluate a batch (llama_decode: {code})")
        self.model.evaluated_tokens += n
        return outputs

    def remove(self, seq_id: int, start: int = 0) -> None:
        """Free the cells of ``seq_id`` from position ``start`` on."""
        import llama_cpp

        if not llama_cpp.llama_memory_seq_rm(self._ctx.memory, seq_id, start, -1):
            raise ModelUnavailable(f"llama.cpp could not cut sequence {seq_id} at {start}")

    def copy(self, src: int, dst: int, count: int) -> None:
        """Give ``dst`` the first ``count`` cells of ``src`` (shared, not duplicated)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_cp(self._ctx.memory, src, dst, 0, count)

    def clear(self) -> None:
        """Free every sequence's cells; the next cells are placed from cell 0 on."""
        import llama_cpp

        llama_cpp.llama_memory_clear(self._ctx.memory, False)

    def first_position(self, seq_id: int) -> int:
        """The earliest position ``seq_id`` still holds in every layer (-1: none)."""
        import llama_cpp

        return int(llama_cpp.llama_memory_seq_pos_min(self._ctx.memory, seq_id))

    def reusable(self, seq_id: int, count: int) -> bool:
        """Whether ``seq_id``'s first ``count`` positions can be gone on from: the positions
        a sliding window reaches back to from ``count`` are all still held."""
        return count == 0 or self.first_position(seq_id) <= max(0, count - self.window)

    def close(self) -> None:
        import llama_cpp

        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None


def _reopen(model: LlamaModel, n_seq: int) -> None:
    """Replace ``model``'s context by one of ``n_seq`` sequences over one unified cache."""
    from llama_cpp import _internals

    llama = model.llama
    params = llama.context_params
    params.n_seq_max = n_seq
    params.kv_unified = True  # n_ctx is shared by all sequences, not split between them
    llama._ctx.close()
    try:
        llama._ctx = _internals.LlamaContext(model=llama._model, params=params, verbose=False)
    except ValueError as exc:
        raise ModelUnavailable(f"llama.cpp could not open {n_seq} sequences: {exc}") from exc
