"""The relay loop's transformers backend: rows of one model, a ragged KV cache, torch sampling.

:class:`HFBatch` is an :class:`edge.core.batch.BatchModel`: each row is one answer's
context. Rows grow by different numbers of tokens per step (one sampled token,
a spliced cloud answer), so every forward pads the new tokens on the right and
masks the padding; a rewound token is masked, never re-computed. Positions are
counted per row over real tokens only, so a row's logits are those of its
sequence alone. :class:`HFModel` is one row as an :class:`edge.core.local_model.LocalModel`
(for :class:`edge.core.loop.RelayLoop`). Tokens and prompts come from
:mod:`training.hf_text`; each row draws its tokens as :mod:`training.hf_sampling` says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from protocol.sampling import SamplingParams
from training.hf_sampling import sample_token, seeded_generator
from training.hf_text import HFCodec, end_token_ids

__all__ = ["HFBatch", "HFModel"]


class HFBatch(HFCodec):
    """A causal LM from transformers serving many contexts (rows) at once."""

    def __init__(self, model: Any, tokenizer: Any, *, n_ctx: int | None = None) -> None:
        super().__init__(tokenizer, end_token_ids(model, tokenizer))
        self.model = model
        config = model.config
        self._n_ctx = n_ctx or int(getattr(config, "max_position_embeddings", 4096))
        self.device = next(model.parameters()).device
        self.start([[tokenizer.eos_token_id or 0]], [SamplingParams()])

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def start(self, prompts: Sequence[Sequence[int]], sampling: Sequence[SamplingParams]) -> None:
        from transformers import DynamicCache

        self.cache = DynamicCache()
        self.mask = torch.zeros((len(prompts), 0), dtype=torch.long, device=self.device)
        self.columns: list[list[int]] = [[] for _ in prompts]  # mask column of each real token
        self.pending: list[list[int]] = [list(p) for p in prompts]
        self.logits: list[torch.Tensor | None] = [None] * len(prompts)
        self.params = list(sampling)
        self.drawn: list[list[int]] = [[] for _ in prompts]
        self.generators = [seeded_generator(p.seed, self.device) for p in self.params]

    def extend(self, row: int, tokens: Sequence[int]) -> None:
        self.pending[row] += tokens

    def rewind(self, row: int, n: int) -> None:
        """Forget the last ``n`` tokens of ``row`` (queued ones first, then evaluated ones)."""
        queued = min(n, len(self.pending[row]))
        del self.pending[row][len(self.pending[row]) - queued :]
        for column in self.columns[row][len(self.columns[row]) - (n - queued) :]:
            self.mask[row, column] = 0
        del self.columns[row][len(self.columns[row]) - (n - queued) :]

    def forward(self) -> None:
        width = max(len(p) for p in self.pending)
        if width == 0:
            return
        rows = len(self.pending)
        ids = torch.zeros((rows, width), dtype=torch.long, device=self.device)
        new_mask = torch.zeros((rows, width), dtype=torch.long, device=self.device)
        positions = torch.zeros((rows, width), dtype=torch.long, device=self.device)
        base = self.mask.shape[1]
        for row, tokens in enumerate(self.pending):
            done = len(self.columns[row])
            if done + len(tokens) > self._n_ctx:
                raise ValueError(f"row {row} would exceed the context of {self._n_ctx} tokens")
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            new_mask[row, : len(tokens)] = 1
            positions[row] = done + torch.arange(width).clamp(max=max(len(tokens) - 1, 0))
            self.columns[row] += range(base, base + len(tokens))
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        training = self.model.training
        self.model.eval()  # no dropout while decoding; the caller's mode comes back after
        try:
            with torch.inference_mode():
                out = self.model(
                    input_ids=ids,
                    attention_mask=self.mask,
                    position_ids=positions,
                    past_key_values=self.cache,
                    use_cache=True,
                )
        finally:
            self.model.train(training)
        for row, tokens in enumerate(self.pending):
            if tokens:
                self.logits[row] = out.logits[row, len(tokens) - 1].float()
            self.pending[row] = []

    def sample(self, row: int) -> int:
        logits = self._logits(row)
        token = sample_token(logits, self.params[row], self.drawn[row], self.generators[row])
        self.drawn[row].append(token)
        return token

    def entropy(self, row: int) -> float:
        logprobs = torch.log_softmax(self._logits(row).double(), dim=-1)
        return float(-(logprobs.exp() * logprobs).nansum())

    def _logits(self, row: int) -> torch.Tensor:
        if self.pending[row]:
            self.forward()
        logits = self.logits[row]
        if logits is None:
            raise RuntimeError(f"row {row} has no logits yet")
        return logits


class HFModel:
    """One sequence of an :class:`HFBatch`, as the relay loop's ``LocalModel``."""

    def __init__(self, batch: HFBatch) -> None:
        self.batch = batch
        self.tokens: list[int] = []

    @property
    def n_ctx(self) -> int:
        return self.batch.n_ctx

    def tokenize(self, text: str) -> list[int]:
        return self.batch.tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        return self.batch.detokenize(tokens)

    def is_end(self, token: int) -> bool:
        return self.batch.is_end(token)

    def sync(self, tokens: Sequence[int], *, exact: bool = False) -> int:
        self.batch.start([tokens], [self.batch.params[0]])
        self.tokens = list(tokens)
        return 0

    def eval(self, tokens: Sequence[int]) -> None:
        self.batch.extend(0, tokens)
        self.tokens += tokens

    def rewind(self, n: int) -> None:
        self.batch.rewind(0, n)
        del self.tokens[len(self.tokens) - n :]

    def sampler(self, params: SamplingParams) -> _RowSampler:
        self.batch.params[0] = params
        self.batch.drawn[0] = []
        self.batch.generators[0] = seeded_generator(params.seed, self.batch.device)
        return _RowSampler(self.batch)

    def next_token_entropy(self) -> float:
        return self.batch.entropy(0)


class _RowSampler:
    def __init__(self, batch: HFBatch) -> None:
        self.batch = batch

    def sample(self) -> int:
        return self.batch.sample(0)

    def close(self) -> None:
        """Nothing to free."""
