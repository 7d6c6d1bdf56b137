"""The relay core: one answer as backend-neutral steps, and the loops that drive them.

Imports only :mod:`protocol` and itself: no llama.cpp, HTTP, server or tracing
package. ``relay`` is one answer's steps (``steps``): the SLM's ``turn``, each
call's ``call_request`` and ``receipt``, both writing the answer's ``context``;
``loop`` drives them on one local model, ``batch`` on many rows at once;
``local_model`` and ``cloud`` are the two interfaces a backend and a cloud
client implement; ``policies`` decide when to call; ``prompt``, ``splice``,
``record`` and ``repetition`` are their parts.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.core.cloud": ["CloudClient", "CloudRequest"],
        "edge.core.local_model": ["LocalModel", "TextCodec", "common_prefix"],
        "edge.core.loop": ["RelayLoop"],
        "edge.core.batch": ["relay_batch"],
        "edge.core.policies": ["CallPolicy", "make_policy"],
        "edge.core.prompt": ["ChatFormat", "RelayPrompt", "build_prompt"],
        "edge.core.record": ["AnswerRecord", "CallRecord"],
        "edge.core.relay": ["RelayAnswer", "RelayLimits"],
    },
)
