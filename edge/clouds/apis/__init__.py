"""The API families a relay cloud can be spoken to in, one module each (see ``base``).

Adding a provider whose API is one of these is a row in :mod:`edge.clouds.providers`;
adding an API is one module here and a line in :func:`family`.
"""

from __future__ import annotations

from edge.clouds.apis.anthropic import Anthropic
from edge.clouds.apis.base import API_ORDER, ApiCall, ApiFamily, CloudApi, Target
from edge.clouds.apis.chat import Chat
from edge.clouds.apis.chat_continue import ChatContinue
from edge.clouds.apis.chat_prefix import ChatPrefix
from edge.clouds.apis.completions import Completions
from edge.clouds.apis.quirks import Quirks

__all__ = ["API_ORDER", "ApiCall", "ApiFamily", "CloudApi", "Quirks", "Target", "family"]


def family(name: CloudApi) -> ApiFamily:
    """A new speaker of the family ``name`` (each keeps its own small per-answer state)."""
    kinds: dict[CloudApi, type[ApiFamily]] = {
        "completions": Completions,
        "chat-continue": ChatContinue,
        "chat-prefix": ChatPrefix,
        "anthropic": Anthropic,
        "chat": Chat,
    }
    return kinds[name]()
