"""What the relay loop needs of the small model: a tokenizer and one growing context.

Two backends implement :class:`LocalModel`: llama.cpp on the edge
(:class:`edge.llama.LlamaModel`) and transformers in training
(:class:`training.hf_backend.HFModel`). The loop itself never sees either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from protocol.sampling import SamplingParams

__all__ = ["LocalModel", "TextCodec", "TokenSampler", "common_prefix"]


class TextCodec(Protocol):
    """The model's tokenizer, as the loop needs it."""

    def tokenize(self, text: str) -> list[int]:
        """Tokens of plain text (no BOS, no special-token parsing)."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> bytes: ...

    def is_end(self, token: int) -> bool: ...


class TokenSampler(Protocol):
    def sample(self) -> int: ...

    def close(self) -> None: ...


class LocalModel(TextCodec, Protocol):
    """One sequence of a local model: its context is a token list that grows."""

    @property
    def n_ctx(self) -> int: ...

    def sync(self, tokens: Sequence[int], *, exact: bool = False) -> int:
        """Make the context exactly ``tokens``; ``exact``: reproducibly (see LlamaModel)."""
        ...

    def eval(self, tokens: Sequence[int]) -> None: ...

    def rewind(self, n: int) -> None: ...

    def sampler(self, params: SamplingParams) -> TokenSampler: ...

    def next_token_entropy(self) -> float: ...


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    same = 0
    while same < min(len(a), len(b)) and a[same] == b[same]:
        same += 1
    return same
