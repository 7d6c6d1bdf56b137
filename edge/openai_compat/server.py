"""The server side of OpenAI compatibility: error bodies and event streams.

Both HTTP servers (``relay serve`` and ``relay-cloud``) install
:func:`add_error_handlers`, so every error leaves as the OpenAI envelope
``{"error": {...}}`` with the status its :mod:`protocol.errors` class names,
and stream with :func:`event_stream`. :func:`until_disconnected` stops work for
a client that went away, :func:`check_api_key` checks a bearer key in constant
time, and :func:`serve_app` stops within seconds of SIGTERM even mid-answer.
Needs the ``cloud`` extra (FastAPI).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from edge.openai_compat.logs import LogFormat, configure_logging, current_request_id
from protocol.errors import (
    AuthenticationFailed,
    InvalidRequest,
    RelayError,
    RequestError,
    SetupError,
    ShuttingDown,
)
from protocol.wire import ErrorBody

__all__ = [
    "SHUTDOWN_GRACE_S",
    "AnswerWhenStopping",
    "add_error_handlers",
    "check_api_key",
    "error_response",
    "error_responses",
    "event_stream",
    "is_loopback",
    "key_digest",
    "serve_app",
    "until_disconnected",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

SHUTDOWN_GRACE_S = 2
"""Seconds a stopping server lets running answers finish before it cancels them."""

CLIENT_CLOSED_REQUEST = 499
"""The status logged for a request whose client went away (nobody receives it)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): no key needed there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_digest(key: str) -> bytes:
    """The SHA-256 digest a key is kept and compared as (the key itself is never stored)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def check_api_key(authorization: str | None, digests: Sequence[bytes]) -> int:
    """Which of ``digests`` the ``Authorization: Bearer KEY`` header's key has, by index;
    :class:`AuthenticationFailed` if none. Every digest is compared in constant time
    with no early exit, so the time tells nothing about the keys."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer KEY'")
    raw = token.strip().encode("latin-1", errors="replace")  # headers arrive as latin-1
    given, found = hashlib.sha256(raw).digest(), -1  # so a UTF-8 key is hashed as sent
    for index, digest in enumerate(digests):
        found = index if hmac.compare_digest(digest, given) else found
    if found < 0:
        raise AuthenticationFailed("the API key is not valid")
    return found


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """The result of ``work``, or :class:`ClientDisconnect` as soon as the client goes away.

    ``work`` is cancelled then, so an answer being generated or waiting its turn for
    the model stops at once instead of running for nobody. Call it after the body
    was read: it listens for the ``http.disconnect`` message.
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise ClientDisconnect()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def error_response(exc: RelayError) -> JSONResponse:
    """The OpenAI-shaped JSON answer for ``exc`` (with ``Retry-After`` when it has one)."""
    body = ErrorBody.of(exc, current_request_id()).model_dump(exclude_none=True)
    retry = getattr(exc, "retry_after_s", None)
    headers = {"Retry-After": str(max(1, round(retry)))} if retry is not None else None
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    """A server-sent event stream that proxies do not buffer."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route answers, each an OpenAI error body."""
    return {status: {"model": ErrorBody, "description": _ERROR_MEANING[status]}
            for status in statuses}  # fmt: skip


_ERROR_MEANING = {
    400: "Invalid request: a field, or a prompt longer than the context (with both numbers).",
    401: "Missing or wrong API key.",
    404: "No such model served here.",
    413: "Request body over the size limit.",
    429: "Too many requests waiting, or a key over its limits; see Retry-After.",
    503: "Unavailable for now: the server is stopping, or its upstream is down.",
}


def _without_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The app's OpenAPI schema without FastAPI's 422: invalid input is a 400 here."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error with an OpenAI error body and the right status (and say so in the
    OpenAPI schema)."""
    app.openapi = _without_422(app)  # type: ignore[method-assign]

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

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> Response:
        log.info("client left before %s %s was answered", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(RelayError(f"internal error: {type(exc).__name__}"))


class AnswerWhenStopping:
    """ASGI wrapper for a stopping server: a request cancelled before it was answered gets a
    503 (:class:`ShuttingDown`, ``Retry-After``) instead of the ASGI server's bare 500 and
    traceback; a stream under way ends where it is (without its ``[DONE]``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "done": False}

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                state["done"] = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            if state["done"]:
                return
            if state["started"]:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            stopping = ShuttingDown("the server is shutting down; try again", retry_after_s=5)
            await error_response(stopping)(scope, receive, send)


def serve_app(
    app: FastAPI,
    host: str,
    port: int,
    *,
    announce: Callable[[str], None],
    log_level: str = "warning",
    log_format: LogFormat = "text",
) -> None:
    """Serve ``app`` until stopped; the address is announced only once the port is bound.

    A port that cannot be bound is a :class:`SetupError` naming it; port 0 takes a free one.
    SIGTERM or Ctrl-C stops it within :data:`SHUTDOWN_GRACE_S` seconds plus a token:
    answers still running then are cancelled, which stops their generation, and a request
    not yet answered gets a 503 (:class:`AnswerWhenStopping`).
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
    configure_logging(log_level, log_format)
    config = uvicorn.Config(AnswerWhenStopping(app), log_level=log_level,
                            log_config=None, access_log=False,
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)  # fmt: skip
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
