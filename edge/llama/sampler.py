"""A llama.cpp sampler chain: how a :class:`~edge.llama.model.LlamaModel` draws its next token."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from protocol.sampling import SamplingParams

if TYPE_CHECKING:
    from edge.llama.model import LlamaModel

__all__ = ["Sampler"]


class Sampler:
    """A llama.cpp sampler chain bound to one model; keep one per answer.

    Stages in llama.cpp's order (see :mod:`protocol.sampling`). The chain
    remembers the tokens it drew, which the repetition penalties look at.
    """

    def __init__(self, model: LlamaModel, params: SamplingParams) -> None:
        from llama_cpp._internals import LlamaSampler

        self._model = model
        self._chain = LlamaSampler()
        chain = self._chain
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
            return
        if params.top_k > 0:
            chain.add_top_k(params.top_k)
        if params.top_p < 1.0:
            chain.add_top_p(params.top_p, 1)
        if params.min_p > 0.0:
            chain.add_min_p(params.min_p, 1)
        chain.add_temp(params.temperature)
        chain.add_dist(params.seed if params.seed is not None else random.getrandbits(32))

    def sample(self) -> int:
        """Draw the token that follows the model's current context."""
        self._model.share_cores()
        return self._chain.sample(self._model.llama._ctx, -1)

    def sample_at(self, index: int) -> int:
        """Draw the token that follows output ``index`` of the last decode of several sequences."""
        return self._chain.sample(self._model.llama._ctx, index)

    def close(self) -> None:
        self._chain.close()
