"""The OpenAI error envelope that carries one of relayllm's errors over HTTP."""

from __future__ import annotations

from pydantic import Field

from protocol.errors import RelayError
from protocol.wire.base import WireModel

__all__ = ["ErrorBody", "ErrorDetail"]


class ErrorDetail(WireModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    request_id: str | None = Field(
        None, description="relayllm: the request's id, as in X-Request-ID and the server log."
    )


class ErrorBody(WireModel):
    """The OpenAI error envelope: ``{"error": {...}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, exc: RelayError, request_id: str | None = None) -> ErrorBody:
        """The envelope for one of relayllm's errors (of the request ``request_id``)."""
        detail = ErrorDetail(message=exc.message, type=exc.error_type, param=exc.param,
                             code=type(exc).__name__, request_id=request_id)  # fmt: skip
        return cls(error=detail)
