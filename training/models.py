"""Loading the small model for training: from a GGUF file or a Hugging Face directory.

A GGUF file (the bundled SmolLM2 by default) is read by transformers, which
dequantizes it; the model is then rebuilt from its config and state dict, so
it carries no quantization settings and can be trained and saved like any
other. The chat template comes from the GGUF metadata, exactly the one the
edge renders with, so training prompts match inference prompts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import ModelUnavailable

__all__ = ["LoadedSLM", "load_slm"]

log = logging.getLogger(__name__)


@dataclass
class LoadedSLM:
    """A trainable causal LM, its tokenizer, and the chat template the edge will use."""

    model: Any
    tokenizer: Any
    chat_template: str | None
    source: Path


def load_slm(source: str | Path | None = None, *, dtype: str = "float32") -> LoadedSLM:
    """The SLM at ``source``: a ``.gguf`` file, a model directory, or a bundled name."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edge.llama import resolve_model

    path = Path(source) if source and Path(source).exists() else None
    if path is None:
        path = resolve_model(str(source) if source else None, default="slm")
    torch_dtype = getattr(torch, dtype)
    if path.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        return LoadedSLM(model, tokenizer, tokenizer.chat_template, path)
    if path.suffix != ".gguf":
        raise ModelUnavailable(f"{path} is neither a .gguf file nor a model directory")
    log.info("reading %s with transformers (dequantizing)", path.name)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch_dtype
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    return LoadedSLM(model, tokenizer, _gguf_template(path) or tokenizer.chat_template, path)


def _gguf_template(path: Path) -> str | None:
    """The chat template stored in a GGUF file's metadata, if any."""
    from gguf import GGUFReader

    field = GGUFReader(path).get_field("tokenizer.chat_template")
    return field.contents() if field is not None else None
