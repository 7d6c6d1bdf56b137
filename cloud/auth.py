"""API-key auth: ``Authorization: Bearer KEY`` hashed and checked in constant time, never logged."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request

from cloud.keys import ANONYMOUS, KeyPolicy, Limits
from edge.openai_compat.server import check_api_key

__all__ = ["ApiKeys", "require_api_key"]


class ApiKeys:
    """The accepted keys (as digests); with none, everyone is let in as ``anonymous``."""

    def __init__(self, keys: Sequence[KeyPolicy], defaults: Limits | None = None) -> None:
        self._keys = tuple(keys)
        self._anonymous = KeyPolicy(ANONYMOUS, b"", defaults or Limits())

    def check(self, authorization: str | None) -> KeyPolicy:
        """The key the header holds; :class:`AuthenticationFailed` unless it is accepted."""
        if not self._keys:
            return self._anonymous
        return self._keys[check_api_key(authorization, [key.digest for key in self._keys])]


def require_api_key(request: Request) -> KeyPolicy:
    """FastAPI dependency guarding the ``/v1`` routes; returns the caller's key (whose name
    is left in ``request.state.key_name`` for the metrics and logs)."""
    key = request.app.state.api_keys.check(request.headers.get("authorization"))
    request.state.key_name = key.name
    return key
