"""The cloud client: one interface, guards that wrap it, and one HTTP client per API family.

``client`` is the interface the relay loop calls; ``apis/`` holds a module per
API family (raw completions, chat with continuation, chat with prefix,
Anthropic's Messages, plain chat); ``http`` speaks one cloud in its family;
``chain``, ``fallback``, ``budget``, ``breaker`` and ``privacy`` wrap it;
``build`` assembles the stack from settings; ``probe``, ``providers`` and
``memory`` find a cloud's family; ``check`` is ``relay cloud check``.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.clouds.build": ["build_cloud", "http_clouds"],
        "edge.clouds.client": [
            "CloudBudget",
            "CloudClient",
            "CloudEnd",
            "CloudItem",
            "CloudRequest",
            "CloudSkip",
            "CloudText",
        ],
        "edge.clouds.http": ["HttpCloud"],
    },
)
