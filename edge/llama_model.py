"""A GGUF model in llama.cpp whose KV cache is an explicit list of tokens.

:class:`LlamaModel` is the one place relayllm touches llama-cpp-python's model
state. It keeps the cache and the token list in step so callers can

* ``sync(tokens)``: make the cache hold exactly ``tokens``, re-using the longest
  common prefix and evaluating only the rest (how the cloud engine serves a
  prompt that extends the previous one);
* ``eval(tokens)``: append tokens to the cache (the relay's splice);
* ``sampler(...)`` / ``Sampler.sample()``: draw the next token.

Both the cloud engine and the edge runtime build on it. ``evaluated_tokens``
counts every token ever evaluated, so tests can check that nothing is re-read.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.errors import ContextOverflow, ModelUnavailable

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LlamaModel", "Sampler", "SamplingParams"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    """How to draw tokens: OpenAI semantics (temperature 0 is greedy)."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


class Sampler:
    """A sampler chain bound to one model; keep one per generation."""

    def __init__(self, model: LlamaModel, params: SamplingParams) -> None:
        from llama_cpp._internals import LlamaSampler

        self._model = model
        self._chain = LlamaSampler()
        if params.temperature == 0.0:
            self._chain.add_greedy()
        else:
            if params.top_p < 1.0:
                self._chain.add_top_p(params.top_p, 1)
            self._chain.add_temp(params.temperature)
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            self._chain.add_dist(seed)

    def sample(self) -> int:
        """Draw the token that follows the model's current context."""
        return self._chain.sample(self._model.llama._ctx, -1)

    def close(self) -> None:
        self._chain.close()


class LlamaModel:
    """One llama.cpp model and context; not thread-safe (callers serialise)."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
    ) -> None:
        from llama_cpp import Llama

        path = Path(path)
        if not path.is_file():
            raise ModelUnavailable(f"no model file at {path}")
        threads = n_threads or max(1, os.cpu_count() or 1)
        try:
            self.llama: Llama = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=n_batch,
                verbose=False,
            )
        except ValueError as exc:
            raise ModelUnavailable(f"llama.cpp could not load {path}: {exc}") from exc
        self.path = path
        self.evaluated_tokens = 0

    @property
    def n_ctx(self) -> int:
        return self.llama.n_ctx()

    @property
    def tokens(self) -> list[int]:
        """The tokens whose keys and values are in the cache, in order."""
        return self.llama._input_ids.tolist()

    @property
    def n_tokens(self) -> int:
        return self.llama.n_tokens

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.llama.metadata)

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Tokens of ``text``; special-token text such as ``<|im_end|>`` is parsed."""
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def tokenize_prompt(self, text: str) -> list[int]:
        """Tokens of a whole prompt: BOS added when the model wants one and ``text`` lacks it."""
        bos = self.special_token_text("bos")
        return self.tokenize(text, add_bos=not (bos and text.startswith(bos)))

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        """Bytes of ``tokens`` (a token may hold part of a UTF-8 character)."""
        return self.llama.detokenize(list(tokens), special=False)

    def token_text(self, token: int) -> str:
        """The vocabulary text of one token (special tokens included)."""
        return self.llama._model.token_get_text(token)

    def is_end_of_generation(self, token: int) -> bool:
        from llama_cpp import llama_vocab_is_eog

        return bool(llama_vocab_is_eog(self.llama._model.vocab, token))

    def special_token_text(self, which: str) -> str:
        """The text of the model's ``bos`` or ``eos`` token ('' if it has none)."""
        token = self.llama.token_bos() if which == "bos" else self.llama.token_eos()
        return self.token_text(token) if token >= 0 else ""

    def eval(self, tokens: Sequence[int]) -> None:
        """Append ``tokens`` to the cache, evaluating only them."""
        if not tokens:
            return
        if self.n_tokens + len(tokens) > self.n_ctx:
            raise ContextOverflow(self.n_tokens + len(tokens), self.n_ctx)
        self.llama.eval(list(tokens))
        self.evaluated_tokens += len(tokens)

    def truncate(self, n_tokens: int) -> None:
        """Drop every cached token after the first ``n_tokens``."""
        if not 0 <= n_tokens <= self.n_tokens:
            raise ValueError(f"cannot truncate {self.n_tokens} cached tokens to {n_tokens}")
        self.llama.n_tokens = n_tokens
        self.llama._ctx.kv_cache_seq_rm(-1, n_tokens, -1)

    def sync(self, tokens: Sequence[int]) -> int:
        """Make the cache hold exactly ``tokens``; return how many were re-used.

        The longest common prefix with the cache is kept; at least the last
        token is evaluated again so the next token can be sampled.
        """
        if not tokens:
            raise ValueError("cannot sync to an empty token list")
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(len(tokens), self.n_ctx)
        reused = 0
        for cached, new in zip(self.llama._input_ids, tokens, strict=False):
            if cached != new:
                break
            reused += 1
        reused = min(reused, len(tokens) - 1)
        self.truncate(reused)
        self.eval(tokens[reused:])
        return reused

    def next_token_entropy(self) -> float:
        """Entropy (nats) of the next-token distribution after the cached context."""
        import numpy as np

        logits = np.ctypeslib.as_array(
            self.llama._ctx.get_logits_ith(-1), shape=(self.llama.n_vocab(),)
        ).astype(np.float64)
        logits -= logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        nonzero = probs[probs > 0]
        return float(-(nonzero * np.log(nonzero)).sum())

    def sampler(self, params: SamplingParams) -> Sampler:
        return Sampler(self, params)

    def close(self) -> None:
        self.llama.close()
