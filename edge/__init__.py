"""On-device runtime: the relay loop, the local model, the guarded cloud client, the CLI.

Never imports torch or transformers; llama_cpp is imported only when a model is loaded.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.clouds.client": ["CloudClient", "CloudEnd", "CloudRequest", "CloudText"],
        "edge.local_model": ["LocalModel", "TextCodec"],
        "edge.loop": ["RelayLoop"],
        "edge.policies": ["CallPolicy", "make_policy"],
        "edge.prompt": ["ChatFormat", "RelayPrompt", "build_prompt"],
        "edge.record": ["AnswerRecord", "CallRecord"],
        "edge.relay": ["RelayAnswer", "RelayLimits"],
    },
)
