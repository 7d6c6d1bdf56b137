"""The llama.cpp runtime: GGUF models with an explicit KV cache, chat prompts, bundled models.

Shared by the edge and by ``relay-cloud`` (the one part of ``edge`` the cloud
package uses besides :mod:`edge.openai_compat`). llama_cpp itself is imported
only when a model is loaded.
"""

from edge.llama.bundled import (
    BUNDLED,
    BundledModel,
    WheelMember,
    is_present,
    model_path,
    models_dir,
    pull,
    resolve_model,
)
from edge.llama.chat import CHATML_TEMPLATE, LlamaChat, render_chat
from edge.llama.model import LlamaModel, Sampler
from edge.llama.worker import iterate_in_thread

__all__ = [
    "BUNDLED",
    "CHATML_TEMPLATE",
    "BundledModel",
    "LlamaChat",
    "LlamaModel",
    "Sampler",
    "WheelMember",
    "is_present",
    "iterate_in_thread",
    "model_path",
    "models_dir",
    "pull",
    "render_chat",
    "resolve_model",
]
