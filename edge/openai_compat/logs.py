"""Request ids and structured logs for both servers.

:class:`RequestLog` (ASGI middleware) gives every request an id (the client's
``X-Request-ID`` when it is a plain token, else a new one), returns it in the
``X-Request-ID`` response header and in error bodies, and logs one line per
request when its response is done: method, route, status, latency, key name and
what handlers added with :func:`annotate` (tokens). :func:`configure_logging`
writes every log record as text, or (``--log-format json``) as one JSON object
a line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.wire import new_id

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "LogFormat",
    "RequestLog",
    "TextFormatter",
    "annotate",
    "configure_logging",
    "current_request_id",
]

REQUEST_ID_HEADER = "x-request-id"
LogFormat = Literal["text", "json"]
_GIVEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_FIELDS: ContextVar[dict[str, Any] | None] = ContextVar("relayllm_request", default=None)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of its message
}
log = logging.getLogger("relayllm.access")


def annotate(**fields: Any) -> None:
    """Add ``fields`` (tokens, calls) to the log line of the request being served."""
    current = _FIELDS.get()
    if current is not None:
        current.update(fields)


def current_request_id() -> str | None:
    """The id of the request being served (``None`` outside one)."""
    current = _FIELDS.get()
    return current.get("request_id") if current else None


class RequestLog:
    """ASGI middleware: a request id for every HTTP request, and its log line once done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _GIVEN_ID.fullmatch(given) else new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        fields: dict[str, Any] = {"request_id": request_id}
        token = _FIELDS.set(fields)
        started, status = time.perf_counter(), 500

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(),
                                                         request_id.encode())]  # fmt: skip
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            route = getattr(scope.get("route"), "path", scope.get("path", ""))
            key = scope["state"].get("key_name")
            fields |= {"method": scope["method"], "route": route, "status": status,
                       "latency_ms": round((time.perf_counter() - started) * 1000, 1)}  # fmt: skip
            if key:
                fields["key"] = key
            log.info("%s %s %d", scope["method"], route, status, extra=fields)
            _FIELDS.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := current_request_id()) and "request_id" not in vars(record):
            entry["request_id"] = request_id
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``LEVEL: message key=value …``: the record's extra fields after its message."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = f"{record.levelname}: {record.getMessage()}" + (f"  {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send every log record (uvicorn's included) to stderr, as text or one JSON object a
    line, at ``level``; relayllm's request lines take the place of uvicorn's access log."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
