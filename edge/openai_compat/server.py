"""The server side of OpenAI compatibility: error bodies and event streams.

Both HTTP servers (``relay serve`` and ``relay-cloud``) install
:func:`add_error_handlers`, so every error leaves as the OpenAI envelope
``{"error": {...}}`` with the status its :mod:`protocol.errors` class names,
and stream with :func:`event_stream`. Needs the ``cloud`` extra (FastAPI).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from protocol.errors import InvalidRequest, RelayError, RequestError, SetupError
from protocol.wire import ErrorBody

__all__ = ["add_error_handlers", "error_response", "event_stream", "is_loopback", "serve_app"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): no key needed there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_response(exc: RelayError) -> JSONResponse:
    """The OpenAI-shaped JSON answer for ``exc`` (with ``Retry-After`` when it has one)."""
    body = ErrorBody.of(exc).model_dump(exclude_none=True)
    retry = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(max(1, round(retry)))} if retry is not None else None
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    """A server-sent event stream that proxies do not buffer."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error with an OpenAI error body and the right status."""

    @app.exception_handler(RelayError)
    async def relay_error(_: Request, exc: RelayError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                reasons.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error')})")
                continue
            where = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
            reasons.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(InvalidRequest("invalid request: " + "; ".join(reasons)))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        error = RequestError(str(exc.detail))
        error.status_code = exc.status_code
        return error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(RelayError(f"internal error: {type(exc).__name__}"))


def serve_app(
    app: FastAPI,
    host: str,
    port: int,
    *,
    announce: Callable[[str], None],
    log_level: str = "warning",
) -> None:
    """Serve ``app`` until stopped; the address is announced only once the port is bound.

    A port that cannot be bound is a :class:`SetupError` naming it; port 0 takes a free one.
    """
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SetupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    announce(f"http://{shown}:{bound}")
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level))
    server.run(sockets=[sock])
