"""Hosted APIs relayllm knows by their host: which API family each speaks, where its key lives.

``cloud_api = "auto"`` (the default) takes the family from this table for a
known host and probes any other URL (:mod:`edge.clouds.resolver`). A provider's
quirks are what its reference documents it refusing, so that even its first
call is accepted. A provider that speaks one of the families is one row here
and one in the README's table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from edge.clouds.apis import CloudApi, Quirks

__all__ = ["PROVIDERS", "Provider", "provider_for"]


@dataclass(frozen=True)
class Provider:
    """A hosted API: its short name, family, key variable, and what its requests need.

    ``base_url`` replaces the configured one when the family is the provider's
    own (DeepSeek's prefix completion lives on its beta path).
    """

    name: str
    api: CloudApi
    key_env: str
    quirks: Quirks = field(default_factory=Quirks)
    base_url: str | None = None


PROVIDERS: dict[str, Provider] = {
    # https://platform.openai.com/docs/api-reference/chat/create: max_tokens is deprecated and
    # refused by reasoning models in favour of max_completion_tokens
    "api.openai.com": Provider(
        "openai",
        "chat",
        "OPENAI_API_KEY",
        Quirks(rename={"max_tokens": "max_completion_tokens"}),
    ),
    # https://docs.anthropic.com/en/api/messages
    "api.anthropic.com": Provider("anthropic", "anthropic", "ANTHROPIC_API_KEY"),
    # https://api-docs.deepseek.com/guides/chat_prefix_completion: prefix needs the beta base
    # URL; the request schema has no seed
    "api.deepseek.com": Provider(
        "deepseek",
        "chat-prefix",
        "DEEPSEEK_API_KEY",
        Quirks(drop=frozenset({"seed"})),
        base_url="https://api.deepseek.com/beta",
    ),
    # https://docs.mistral.ai/api/: random_seed, not seed; stream_options is refused (422);
    # https://docs.mistral.ai/guides/prefix/: the reply starts with the prefix itself
    "api.mistral.ai": Provider(
        "mistral",
        "chat-prefix",
        "MISTRAL_API_KEY",
        Quirks(
            drop=frozenset({"stream_options"}),
            rename={"seed": "random_seed"},
            flags=frozenset({"echoes-prefix"}),
        ),
    ),
    # https://ai.google.dev/gemini-api/docs/openai: unknown fields are refused
    "generativelanguage.googleapis.com": Provider(
        "gemini", "chat", "GEMINI_API_KEY", Quirks(drop=frozenset({"prompt_cache_key"}))
    ),
    # https://console.groq.com/docs/openai
    "api.groq.com": Provider("groq", "chat", "GROQ_API_KEY"),
    # https://openrouter.ai/docs/api-reference/overview
    "openrouter.ai": Provider("openrouter", "chat", "OPENROUTER_API_KEY"),
}


def provider_for(url: str) -> Provider | None:
    """The provider whose API lives at ``url``, if it is a known host."""
    return PROVIDERS.get((urlsplit(url).hostname or "").lower())
