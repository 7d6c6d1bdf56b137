"""The relay loop's transformers backend: rows of one model, a ragged KV cache, torch sampling.

:class:`HFBatch` is an :class:`edge.core.batch.BatchModel`: each row is one answer's
context. Rows grow by different numbers of tokens per step (one sampled token,
a spliced cloud answer), so every forward pads the new tokens on the right and
masks the padding; a rewound token is masked, never re-computed. Positions are
counted per row over real tokens only, so a row's logits are those of its
sequence alone. :class:`HFModel` is one row as an :class:`edge.core.local_model.LocalModel`
(for :class:`edge.core.loop.RelayLoop`), and :class:`HFChat` renders prompts with the
same Jinja template code as the edge.

Sampling follows :mod:`protocol.sampling` in llama.cpp's order: penalties over
the row's drawn tokens, top-k, top-p, min-p, temperature, then a draw from the
row's own seeded generator (greedy takes the arg-max).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import torch

from edge.llama.chat import MARKER_PROBE, render_chat
from protocol.sampling import SamplingParams

__all__ = ["HFBatch", "HFChat", "HFCodec", "HFModel", "token_bytes"]


def token_bytes(tokenizer: Any) -> list[bytes]:
    """The bytes of every token id (special tokens: ``b""``), for byte-exact decoding.

    Byte-level BPE vocabularies (GPT-2, SmolLM, Qwen) map bytes to printable
    characters; SentencePiece ones use ``▁`` for a space and ``<0xNN>`` tokens.
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = {char: byte for byte, char in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    table = []
    for token_id, piece in enumerate(pieces):
        if token_id in special or piece is None:
            table.append(b"")
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            table.append(bytes([int(piece[3:5], 16)]))
        elif all(char in chars for char in piece):
            table.append(bytes(chars[char] for char in piece))
        else:
            table.append(piece.replace("\u2581", " ").encode("utf-8"))
    return table


class HFCodec:
    """A transformers tokenizer as the relay loop's ``TextCodec`` (byte-exact, plain text)."""

    def __init__(self, tokenizer: Any, end_ids: frozenset[int] | None = None) -> None:
        self.tokenizer = tokenizer
        self._end = end_ids if end_ids is not None else _end_ids(None, tokenizer)

    @cached_property
    def _bytes(self) -> list[bytes]:
        return token_bytes(self.tokenizer)

    def tokenize(self, text: str) -> list[int]:
        """Tokens of plain text: no BOS, special-token text stays text."""
        encoded = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)
        return list(encoded["input_ids"])

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        return b"".join(self._bytes[t] for t in tokens)

    def is_end(self, token: int) -> bool:
        return token in self._end


class HFBatch(HFCodec):
    """A causal LM from transformers serving many contexts (rows) at once."""

    def __init__(self, model: Any, tokenizer: Any, *, n_ctx: int | None = None) -> None:
        super().__init__(tokenizer, _end_ids(model, tokenizer))
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
        self.generators = [_generator(p.seed, self.device) for p in self.params]

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


def sample_token(
    logits: torch.Tensor, params: SamplingParams, drawn: Sequence[int], generator: torch.Generator
) -> int:
    """One token from ``logits`` (a 1-D tensor) by ``params``; see the module docstring."""
    x = logits.clone()
    for token, bias in params.logit_bias:
        x[token] += bias
    if params.penalised and drawn:
        counts = Counter(drawn[-params.penalty_last_n :])
        ids = torch.tensor(list(counts), device=x.device)
        seen = torch.tensor(list(counts.values()), dtype=x.dtype, device=x.device)
        values = x[ids]
        values = torch.where(values <= 0, values * params.repeat_penalty,
                             values / params.repeat_penalty)  # fmt: skip
        x[ids] = values - seen * params.frequency_penalty - params.presence_penalty
    if params.greedy:
        return int(torch.argmax(x))
    if 0 < params.top_k < x.numel():
        x[x < torch.topk(x, params.top_k).values[-1]] = -math.inf
    if params.top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=True)
        cumulative = torch.softmax(sorted_x, dim=-1).cumsum(dim=-1)
        cut = int(torch.searchsorted(cumulative, torch.tensor(params.top_p))) + 1
        x[order[cut:]] = -math.inf
    if params.min_p > 0.0:
        x[x < x.max() + math.log(params.min_p)] = -math.inf
    probs = torch.softmax(x / params.temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


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
        self.batch.generators[0] = _generator(params.seed, self.batch.device)
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


class HFChat:
    """Prompts for a transformers tokenizer (an :class:`edge.core.prompt.ChatFormat`).

    ``template`` defaults to the tokenizer's chat template; pass the GGUF's own
    (its ``tokenizer.chat_template`` metadata) to render exactly as the edge does.
    """

    def __init__(
        self, tokenizer: Any, *, template: str | None = None, enable_thinking: bool = False
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template or tokenizer.chat_template
        self.enable_thinking = enable_thinking

    def render(self, messages: Sequence[Mapping[str, str]], *, continue_final: bool = False) -> str:
        return render_chat(
            messages,
            template=self.template,
            bos_token=self.tokenizer.bos_token or "",
            eos_token=self.tokenizer.eos_token or "",
            continue_final=continue_final,
            enable_thinking=self.enable_thinking,
        )

    def encode(self, prompt: str) -> list[int]:
        tokens = list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        bos = self.tokenizer.bos_token_id
        wants_bos = bool(getattr(self.tokenizer, "add_bos_token", False))
        return [bos, *tokens] if wants_bos and bos is not None and tokens[:1] != [bos] else tokens

    def markers(self) -> tuple[str, ...]:
        special = set(self.tokenizer.all_special_ids)
        tokens = self.encode(self.render(MARKER_PROBE))
        found = sorted({t for t in tokens if t in special} | {self.tokenizer.eos_token_id} - {None})
        return tuple(self.tokenizer.convert_ids_to_tokens(found))


END_TEXTS = frozenset(
    {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
     "<EOT>", "<|eom_id|>", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<end_of_utterance>",
     "<|fim_pad|>", "<fim_pad>", "<|repo_name|>", "<reponame>", "<|file_sep|>"}
)  # fmt: skip
"""Special tokens that end generation, as llama.cpp recognises them by their text."""


def _end_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """EOS, the generation config's end tokens, and special tokens named in ``END_TEXTS``."""
    ids = {tokenizer.eos_token_id}
    generation = getattr(model, "generation_config", None)
    configured = getattr(generation, "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list) else {configured}
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if str(added) in END_TEXTS:
            ids.add(token_id)
    return frozenset(i for i in ids if i is not None)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
