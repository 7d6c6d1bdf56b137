"""On-device runtime: bundled models, the local model, the relay loop, the cloud client, the CLI.

Never imports torch or transformers; llama_cpp is imported only when a model is loaded.
"""

from edge.bundled import (
    BUNDLED,
    BundledModel,
    WheelMember,
    is_present,
    model_path,
    models_dir,
    pull,
    resolve_model,
)
from edge.llama_model import LlamaModel, SamplingParams

__all__ = [
    "BUNDLED",
    "BundledModel",
    "LlamaModel",
    "SamplingParams",
    "WheelMember",
    "is_present",
    "model_path",
    "models_dir",
    "pull",
    "resolve_model",
]
