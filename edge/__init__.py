"""On-device runtime: the local model, the relay loop, the cloud client and its guards, the CLI.

Never imports torch or transformers.
"""

from edge.bundled import BUNDLED, model_path, pull, resolve_model
from edge.llama_model import LlamaModel, SamplingParams

__all__ = ["BUNDLED", "LlamaModel", "SamplingParams", "model_path", "pull", "resolve_model"]
