"""API-key auth: ``Authorization: Bearer KEY`` checked in constant time, keys never logged."""

from __future__ import annotations

import hmac

from fastapi import Request

from protocol.errors import AuthenticationFailed

__all__ = ["ApiKeys", "require_api_key"]


class ApiKeys:
    """The accepted keys; with none, every request is let in (loopback demos only)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode("utf-8") for k in keys)

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None) -> None:
        """Raise :class:`AuthenticationFailed` unless the header holds an accepted key."""
        if not self._keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("missing API key: send 'Authorization: Bearer KEY'")
        given = token.strip().encode("utf-8")
        accepted = False
        for key in self._keys:  # no early exit: time does not depend on which key matched
            accepted |= hmac.compare_digest(key, given)
        if not accepted:
            raise AuthenticationFailed("the API key is not valid")


def require_api_key(request: Request) -> None:
    """FastAPI dependency guarding the ``/v1`` routes."""
    request.app.state.api_keys.check(request.headers.get("authorization"))
