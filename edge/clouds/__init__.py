"""The cloud client: guards that wrap it, and one HTTP client per API family.

Each implements :class:`edge.core.cloud.CloudClient`, the interface the relay
loop calls. ``apis/`` holds a module per API family (raw completions, chat with
continuation, chat with prefix, Anthropic's Messages, plain chat); ``http``
speaks one cloud in its family, which ``resolver`` finds (with ``probe``,
``providers`` and ``memory``); ``chain``, ``fallback``, ``budget``, ``breaker``,
``audit`` and ``privacy`` wrap it; ``settings`` says what a cloud is (URL, model,
prices, caps). The device app assembles the stack (:mod:`edge.app.cloud_stack`).
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.clouds.http": ["HttpCloud"],
    },
)
