"""A transformers tokenizer as the relay's text side: byte-exact tokens and chat prompts.

:class:`HFCodec` is the relay loop's ``TextCodec`` for a transformers tokenizer
(plain text in, the exact bytes of each token out, the model's end tokens known);
:class:`HFChat` renders prompts with the same Jinja template code as the edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from edge.llama.chat import MARKER_PROBE, render_chat

__all__ = ["END_TEXTS", "HFChat", "HFCodec", "end_token_ids", "token_bytes"]


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
        self._end = end_ids if end_ids is not None else end_token_ids(None, tokenizer)

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


def end_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """EOS, the generation config's end tokens, and special tokens named in ``END_TEXTS``."""
    ids = {tokenizer.eos_token_id}
    generation = getattr(model, "generation_config", None)
    configured = getattr(generation, "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list) else {configured}
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if str(added) in END_TEXTS:
            ids.add(token_id)
    return frozenset(i for i in ids if i is not None)
