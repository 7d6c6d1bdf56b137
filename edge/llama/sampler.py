"""How a :class:`~edge.llama.model.LlamaModel` draws its next token.

A llama.cpp sampler chain does it, in llama.cpp's order (see
:mod:`protocol.sampling`), except for the most common request, a draw from the
whole vocabulary at a temperature (or greedy): :class:`FullDraw` does that
with vectorised NumPy on the logits in place. llama.cpp's ``dist`` stage walks
the vocabulary one token at a time, 3 ms a token for Gemma 3's 262,144 tokens
on one CPU core, an eighth of that model's decode step on two; the vectorised
draw takes a quarter of that. Both are seeded: the same seed gives the same tokens.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

from protocol.sampling import SamplingParams

if TYPE_CHECKING:
    from llama_cpp._internals import LlamaSampler

    from edge.llama.model import LlamaModel

__all__ = ["FullDraw", "Sampler"]

BLOCK = 512
"""Tokens per block of the two-level search for the drawn token."""


class FullDraw:
    """Draws a token from ``softmax(logits / temperature)`` over the whole vocabulary
    (temperature 0: the most likely token, the first of equals)."""

    def __init__(self, n_vocab: int, temperature: float, seed: int | None) -> None:
        self.n_vocab = n_vocab
        self.temperature = temperature
        self._rng = np.random.default_rng(seed)
        self._weights = np.zeros(-(-n_vocab // BLOCK) * BLOCK, dtype=np.float32)
        """Unnormalised probabilities; the padding after ``n_vocab`` stays 0."""

    def __call__(self, logits: np.ndarray) -> int:
        if self.temperature == 0.0:
            return int(np.argmax(logits))
        weights = self._weights[: self.n_vocab]
        np.subtract(logits, logits.max(), out=weights)
        if self.temperature != 1.0:
            weights *= np.float32(1.0 / self.temperature)
        np.exp(weights, out=weights)
        # Inverse transform sampling: find the block the drawn mass falls in, then the token.
        blocks = self._weights.reshape(-1, BLOCK)
        ends = np.cumsum(blocks.sum(axis=1), dtype=np.float64)
        if not np.isfinite(ends[-1]):  # a NaN logit: take the most likely token
            return int(np.nanargmax(logits))
        target = self._rng.random() * ends[-1]
        block = min(int(np.searchsorted(ends, target, side="right")), len(ends) - 1)
        inner = np.cumsum(blocks[block], dtype=np.float64)
        offset = target - (ends[block - 1] if block else 0.0)
        token = block * BLOCK + min(int(np.searchsorted(inner, offset, side="right")), BLOCK - 1)
        while self._weights[token] == 0.0:  # rounding put the draw past the last likely token
            token -= 1
        return token


class Sampler:
    """Draws one answer's tokens from ``model``; keep one per answer.

    A llama.cpp chain remembers the tokens it drew, which the repetition
    penalties look at; :class:`FullDraw` needs no memory.
    """

    def __init__(self, model: LlamaModel, params: SamplingParams) -> None:
        self._model = model
        self._chain: LlamaSampler | None = None
        self._draw: FullDraw | None = None
        if params.full_distribution:
            self._draw = FullDraw(model.llama.n_vocab(), params.temperature, params.seed)
        else:
            self._chain = _chain(model, params)

    def sample(self) -> int:
        """Draw the token that follows the model's current context."""
        self._model.share_cores()
        return self._next(-1)

    def sample_at(self, index: int) -> int:
        """Draw the token that follows output ``index`` of the last decode of several sequences."""
        return self._next(index)

    def close(self) -> None:
        if self._chain is not None:
            self._chain.close()

    def _next(self, index: int) -> int:
        import llama_cpp

        ctx = self._model.llama._ctx
        if self._draw is None:
            assert self._chain is not None
            return self._chain.sample(ctx, index)
        logits = llama_cpp.llama_get_logits_ith(ctx.ctx, index)
        if not logits:
            raise ValueError(f"no logits at output {index} of the last decode")
        return self._draw(np.ctypeslib.as_array(logits, shape=(self._draw.n_vocab,)))


def _chain(model: LlamaModel, params: SamplingParams) -> LlamaSampler:
    """A llama.cpp sampler chain for ``params``, its stages in llama.cpp's order."""
    from llama_cpp._internals import LlamaSampler

    chain = LlamaSampler()
    if params.logit_bias:
        chain.add_logit_bias(model.llama.n_vocab(), dict(params.logit_bias))
    if params.penalised:
        chain.add_penalties(
            model.llama.n_vocab(),
            params.penalty_last_n,
            params.repeat_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        )
    if params.greedy:
        chain.add_greedy()
        return chain
    if params.top_k > 0:
        chain.add_top_k(params.top_k)
    if params.top_p < 1.0:
        chain.add_top_p(params.top_p, 1)
    if params.min_p > 0.0:
        chain.add_min_p(params.min_p, 1)
    chain.add_temp(params.temperature)
    chain.add_dist(params.seed if params.seed is not None else random.getrandbits(32))
    return chain
