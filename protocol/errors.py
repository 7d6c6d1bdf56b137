"""The error tree shared by every relayllm package.

::

    RelayError
    ├── RequestError               the caller sent something we refuse (4xx)
    │   ├── InvalidRequest         400: malformed JSON or fields
    │   ├── ContextOverflow        400: prompt longer than the model's context
    │   ├── AuthenticationFailed   401: missing or wrong API key
    │   ├── ModelNotFound          404: no such model served here
    │   ├── PayloadTooLarge        413: request body over the size limit
    │   └── Overloaded             429: too many requests waiting; retry after a while
    │       └── RateLimited        429: one API key is over its budget or request rate
    ├── CloudError                 the cloud side failed
    │   ├── CloudUnavailable       an outage: unreachable, timed out, 429 or 5xx, broken stream
    │   └── UpstreamError          the server refused our request (another 4xx)
    ├── ModelUnavailable           a model file is missing, damaged or could not be fetched
    └── SetupError                 this machine is not usable as set up: a port in use, a
                                   ledger or log that cannot be written

Each request error carries the HTTP status and the OpenAI error ``type`` the
cloud endpoint answers with, so one handler maps the whole tree.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "CloudError",
    "CloudUnavailable",
    "ContextOverflow",
    "InvalidRequest",
    "ModelNotFound",
    "ModelUnavailable",
    "Overloaded",
    "PayloadTooLarge",
    "RateLimited",
    "RelayError",
    "RequestError",
    "SetupError",
    "ShuttingDown",
    "UpstreamError",
]


class RelayError(Exception):
    """Base of every error relayllm raises on purpose.

    A subclass names its HTTP status and OpenAI error ``type`` where they differ from
    its parent's, on its first line: ``class Gone(RequestError, status_code=410)``.
    """

    status_code: int = 500
    error_type: str = "server_error"

    def __init_subclass__(
        cls, *, status_code: int | None = None, error_type: str | None = None, **kwargs: object
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if error_type is not None:
            cls.error_type = error_type

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class RequestError(RelayError, status_code=400, error_type="invalid_request_error"):
    """The request is at fault; retrying it unchanged will fail again."""


class InvalidRequest(RequestError):
    """Malformed JSON, a missing field, or a value out of range."""


class ContextOverflow(RequestError):
    """The prompt does not fit in the model's context window."""

    def __init__(self, prompt_tokens: int, n_ctx: int, *, reserve: int = 0) -> None:
        room = f" with room for {reserve} answer tokens" if reserve > 1 else ""
        super().__init__(
            f"the prompt has {prompt_tokens} tokens but the model's context holds {n_ctx}{room}",
            param="prompt",
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class AuthenticationFailed(RequestError, status_code=401, error_type="authentication_error"):
    """No API key, or one that is not accepted."""


class ModelNotFound(RequestError, status_code=404, error_type="not_found_error"):
    """The request names a model this server does not serve."""


class PayloadTooLarge(RequestError, status_code=413):
    """The request body is larger than the configured limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class Overloaded(RequestError, status_code=429, error_type="rate_limit_error"):
    """Too many requests are waiting; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(Overloaded):
    """One API key is over a limit; ``limit`` names it (``tokens_per_day``, ...)."""

    def __init__(self, message: str, *, limit: str, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.limit = limit


class CloudError(RelayError, status_code=502):
    """The cloud model could not produce an answer."""


class CloudUnavailable(CloudError, status_code=503):
    """An outage: unreachable, timed out, rate-limited (429), a 5xx, or a broken stream.

    Only these count as failures for the circuit breaker. ``retry_after_s`` is
    the server's ``Retry-After``, when it sent one.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UpstreamError(CloudError):
    """An upstream OpenAI-compatible server answered with an error status.

    Request errors (400, 404, 413, 422) pass through with their status; the
    upstream refusing our own credentials (401, 403) or failing is a 502.
    ``reason`` is the server's own message and ``param`` the request field it
    names, when it names one.
    """

    def __init__(
        self, message: str, *, status_code: int, reason: str = "", param: str | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.reason = reason
        self.upstream_status = status_code
        if status_code in (400, 404, 413, 422):
            self.status_code = 400 if status_code == 422 else status_code
            self.error_type = "invalid_request_error"


class ModelUnavailable(RelayError):
    """A model file is missing and could not be fetched or verified."""


class ShuttingDown(RelayError, status_code=503):
    """The server stopped before it answered; the same request may be sent again later."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SetupError(RelayError):
    """Something on this machine stands in the way: a busy port, an unwritable file."""
