"""The llama.cpp runtime: GGUF models with an explicit KV cache, chat prompts, bundled models.

Shared by the edge and by ``relay-cloud`` (the one part of ``edge`` the cloud
package uses besides :mod:`edge.openai_compat`). llama_cpp itself is imported
only when a model is loaded.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.llama.bundled": [
            "BUNDLED",
            "is_present",
            "model_path",
            "models_dir",
            "pull",
            "resolve_model",
        ],
        "edge.llama.chat": ["CHATML_TEMPLATE", "LlamaChat", "render_chat"],
        "edge.llama.model": ["LlamaModel"],
        "edge.llama.sampler": ["Sampler"],
        "edge.llama.wheels": ["BundledModel", "WheelMember"],
        "edge.llama.worker": ["iterate_in_thread"],
    },
)
