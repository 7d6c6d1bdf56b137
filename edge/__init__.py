"""On-device runtime, as its parts (each a subpackage):

- ``core``: the relay itself, backend-neutral (imports only :mod:`protocol`);
- ``llama``: the llama.cpp backend (GGUF models, chat prompts, bundled models);
- ``clouds``: the guarded cloud client, one HTTP module per API family;
- ``app``: the device app (runtime, settings, ledger, metrics, server, ``relay`` CLI);
- ``openai_compat``: OpenAI-compatible HTTP both servers share (relay serve, relay-cloud);
- ``reservations``: the reservation store both budgets keep their spend in (the device's
  ledger, relay-cloud's per-key quotas), on SQLite or PostgreSQL.

Never imports torch or transformers; llama_cpp is imported only when a model is loaded.
The names below are the relay core's.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.core.cloud": ["CloudClient", "CloudEnd", "CloudRequest", "CloudText"],
        "edge.core.local_model": ["LocalModel", "TextCodec"],
        "edge.core.loop": ["RelayLoop"],
        "edge.core.policies": ["CallPolicy", "make_policy"],
        "edge.core.prompt": ["ChatFormat", "RelayPrompt", "build_prompt"],
        "edge.core.record": ["AnswerRecord", "CallRecord"],
        "edge.core.relay": ["RelayAnswer", "RelayLimits"],
    },
)
