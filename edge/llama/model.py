"""A GGUF model in llama.cpp whose KV cache is an explicit list of tokens.

:class:`LlamaModel` is the one place relayllm touches llama-cpp-python's model
state. It keeps the cache and the token list in step so callers can

* ``sync(tokens)``: make the cache hold exactly ``tokens``, re-using the longest
  common prefix and evaluating only the rest (a prompt that extends the
  previous one, as every relay call and chat turn does);
* ``eval(tokens)``: append tokens to the cache (the relay's splice);
* ``rewind(n)``: drop the last ``n`` cached tokens;
* ``snapshot()`` / ``restore()``: set a context aside and take it up again
  (the cloud engine keeps several conversations' contexts this way);
* ``sampler(params)`` / ``Sampler.sample()``: draw the next token.

It is the relay loop's ``LocalModel`` on the edge and the cloud's embedded
engine. ``evaluated_tokens`` counts every token ever evaluated, so tests can
check that nothing is re-read.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.core.local_model import common_prefix
from edge.llama.gpu import GpuLayers, plan_gpu_layers
from edge.llama.threads import ThreadShare, machine_load, performance_cores, usable_cpus
from protocol.errors import ContextOverflow, ModelUnavailable
from protocol.sampling import SamplingParams

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["EXACT_BLOCK", "KV_CACHE_TYPES", "LlamaModel", "Sampler", "Snapshot"]

_CONTROL = 1 << 3  # LLAMA_TOKEN_ATTR_CONTROL
KV_CACHE_TYPES = {"q8_0": ("Q8_0", "Q8_0"), "q8_0/q4_0": ("Q8_0", "Q4_0"), "f16": ("F16", "F16")}
"""Cache choices: the llama.cpp types of the keys and of the values (``K/V``; one name: both)."""
_BYTES_PER_VALUE = {"F16": 2.0, "Q8_0": 34 / 32, "Q4_0": 18 / 32}  # blocks of 32 values
EXACT_BLOCK = 64
"""Tokens per batch when a sync must be reproducible (divides llama.cpp's n_batch)."""


@dataclass(frozen=True)
class Snapshot:
    """A saved context: its tokens and llama.cpp's serialized keys and values."""

    tokens: tuple[int, ...]
    data: bytes


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


class LlamaModel:
    """One llama.cpp model and context; not thread-safe (callers serialise)."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        kv_cache: str = "q8_0",
        n_gpu_layers: GpuLayers = "auto",
    ) -> None:
        """``kv_cache`` (see :data:`KV_CACHE_TYPES`): ``q8_0`` (default: half the memory of
        ``f16``, with flash attention, no slower on a CPU); ``q8_0/q4_0`` (values in 4 bits:
        39 % of ``f16``, but decoding slows down as the context fills); or ``f16``.
        ``n_gpu_layers``: see :mod:`edge.llama.gpu` (``gpu`` says what was done, ``note``
        why a request could not be honoured). ``n_threads``: a fixed count, or ``None`` for
        the physical performance cores less those other processes keep busy, measured
        while the model decodes (:mod:`edge.llama.threads`)."""
        import llama_cpp
        from llama_cpp import Llama

        path = Path(path)
        if not path.is_file():
            raise ModelUnavailable(f"no model file at {path}")
        if n_threads:
            self.share, threads = None, n_threads
        else:
            self.share = ThreadShare(performance_cores(), usable_cpus(), others=machine_load())
            threads = self.share.threads
        if n_batch % EXACT_BLOCK:
            raise ValueError(f"n_batch must be a multiple of {EXACT_BLOCK}, not {n_batch}")
        if kv_cache not in KV_CACHE_TYPES:
            raise ValueError(f"kv_cache must be one of {', '.join(KV_CACHE_TYPES)}, not {kv_cache}")
        type_k, type_v = (getattr(llama_cpp, f"GGML_TYPE_{t}") for t in KV_CACHE_TYPES[kv_cache])
        self.gpu = plan_gpu_layers(n_gpu_layers)
        try:
            self.llama: Llama = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=n_batch,
                type_k=type_k,
                type_v=type_v,
                flash_attn=kv_cache != "f16",  # llama.cpp quantizes V only with flash attention
                n_gpu_layers=self.gpu.n_gpu_layers,
                verbose=False,
            )
        except ValueError as exc:
            raise ModelUnavailable(f"llama.cpp could not load {path}: {exc}") from exc
        self.path = path
        self.kv_cache = kv_cache
        self.evaluated_tokens = 0
        self._evaluated_at_draw = 0
        self._exact = 0  # leading cached tokens evaluated in aligned blocks

    @property
    def n_ctx(self) -> int:
        return self.llama.n_ctx()

    @property
    def layers(self) -> int:
        """Layers llama.cpp can offload: the model's blocks and its output layer."""
        arch = self.metadata.get("general.architecture", "")
        return int(self.metadata.get(f"{arch}.block_count", 0)) + 1

    def placement(self) -> dict[str, int | str]:
        """Where the model runs: the backend, how many of its layers are on the GPU, and the
        CPU threads it decodes with now."""
        return {"backend": self.gpu.backend, "gpu_layers": self.gpu.offloaded(self.layers),
                "layers": self.layers, "threads": self.threads}  # fmt: skip

    @property
    def threads(self) -> int:
        """CPU threads llama.cpp decodes with now."""
        return int(self.llama.context_params.n_threads)

    def share_cores(self) -> None:
        """Before a token is drawn: follow the cores other processes leave free (when
        ``n_threads`` was not fixed)."""
        if self.share is None:
            return
        fresh = self.evaluated_tokens - self._evaluated_at_draw > 1
        self._evaluated_at_draw = self.evaluated_tokens
        if (threads := self.share.tick(fresh)) is not None:
            self.set_threads(threads)

    def set_threads(self, threads: int) -> None:
        """Decode (and evaluate prompts) with ``threads`` CPU threads from now on."""
        self.llama._ctx.set_n_threads(threads, threads)
        self.llama.context_params.n_threads = threads
        self.llama.context_params.n_threads_batch = threads

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

    def tokenize(self, text: str) -> list[int]:
        """Tokens of plain ``text``: no BOS, and ``<|im_end|>``-like text stays plain text."""
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def tokenize_prompt(self, text: str) -> list[int]:
        """Tokens of a rendered prompt: special-token text is parsed, BOS added if wanted."""
        bos = self.special_token_text("bos")
        add_bos = self.llama._model.add_bos_token() and not (bos and text.startswith(bos))
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        """Bytes of ``tokens`` (a token may hold part of a UTF-8 character)."""
        return self.llama.detokenize(list(tokens), special=False)

    def token_text(self, token: int) -> str:
        """The vocabulary text of one token (special tokens included)."""
        return self.llama._model.token_get_text(token)

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, end of turn)."""
        from llama_cpp import llama_vocab_is_eog

        return bool(llama_vocab_is_eog(self.llama._model.vocab, token))

    def control_texts(self, tokens: Sequence[int]) -> list[str]:
        """The texts of the control tokens (``<|im_start|>`` and the like) among ``tokens``."""
        model = self.llama._model
        found = {t for t in tokens if model.token_get_attr(t) & _CONTROL}
        return [self.token_text(t) for t in sorted(found)]

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

    def rewind(self, n: int) -> None:
        """Drop the last ``n`` cached tokens."""
        self.truncate(self.n_tokens - n)

    def truncate(self, n_tokens: int) -> None:
        """Drop every cached token after the first ``n_tokens``."""
        if not 0 <= n_tokens <= self.n_tokens:
            raise ValueError(f"cannot truncate {self.n_tokens} cached tokens to {n_tokens}")
        self.llama.n_tokens = n_tokens
        self.llama._ctx.kv_cache_seq_rm(-1, n_tokens, -1)
        self._exact = min(self._exact, n_tokens)

    def sync(self, tokens: Sequence[int], *, exact: bool = False) -> int:
        """Make the cache hold exactly ``tokens``; return how many were re-used.

        The longest common prefix with the cache is kept; at least the last
        token is evaluated again so the next token can be sampled.

        llama.cpp's results depend slightly on how tokens were grouped into
        batches, so a re-used prefix can change what a seeded sampler draws.
        With ``exact`` the tokens are evaluated in blocks of
        :data:`EXACT_BLOCK` aligned to their positions, and only whole blocks
        evaluated that way are re-used: the same tokens then always give
        bit-identical logits, whatever the cache held before.
        """
        if not tokens:
            raise ValueError("cannot sync to an empty token list")
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(len(tokens), self.n_ctx)
        reused = min(common_prefix(self.tokens, tokens), len(tokens) - 1)
        if not exact:
            self.truncate(reused)
            self.eval(tokens[reused:])
            return reused
        reused = min(reused, self._exact)
        reused -= reused % EXACT_BLOCK
        self.truncate(reused)
        for start in range(reused, len(tokens), EXACT_BLOCK):
            self.eval(tokens[start : start + EXACT_BLOCK])
        self._exact = len(tokens) - len(tokens) % EXACT_BLOCK
        return reused

    def snapshot(self) -> Snapshot:
        """The cached tokens and their keys and values, to :meth:`restore` later."""
        import llama_cpp

        ctx = self.llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        return Snapshot(tuple(self.tokens), bytes(buffer)[:written])

    def restore(self, snapshot: Snapshot) -> None:
        """Make the cache hold a snapshot's tokens again, without evaluating them."""
        import llama_cpp

        self.truncate(0)
        data = (ctypes.c_uint8 * len(snapshot.data)).from_buffer_copy(snapshot.data)
        if llama_cpp.llama_state_seq_set_data(self.llama._ctx.ctx, data, len(data), 0) == 0:
            raise ModelUnavailable("llama.cpp could not restore a saved context")
        count = len(snapshot.tokens)
        self.llama.input_ids[:count] = snapshot.tokens
        self.llama.n_tokens = count

    def kv_bytes(self) -> int:
        """Memory of the KV cache for the whole context: what one conversation costs."""
        meta = self.metadata
        arch = meta.get("general.architecture", "llama")

        def number(key: str, default: int = 0) -> int:
            return int(meta.get(f"{arch}.{key}", default))

        heads = number("attention.head_count", 1) or 1
        kv_dim = number("embedding_length") // heads * number("attention.head_count_kv", heads)
        per_position = sum(_BYTES_PER_VALUE[name] for name in KV_CACHE_TYPES[self.kv_cache])
        return int(number("block_count") * self.n_ctx * kv_dim * per_position)

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
