"""The audit log of what left the device: one JSON line per request body sent.

:class:`AuditedCloud` wraps the HTTP client and writes each request body to the
:class:`AuditLog` just before it leaves (probes and re-sends included), so the
log records exactly what each cloud was sent: the cloud's name, URL and API
family, the call, and the size and SHA-256 of the body. The body itself (system
text, conversation, partial answer, as the family phrased them) is kept only
when ``full_text`` is set. Keys never appear: they travel in headers, which are
not logged.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from edge.clouds.http import OnSend, SentRequest
from edge.core.cloud import CloudItem, CloudRequest
from protocol.errors import SetupError

__all__ = ["AuditLog", "AuditedCloud"]


class AuditLog:
    """Appends to ``path``; fails at once, naming the path, when it cannot be written."""

    def __init__(self, path: Path, *, full_text: bool = False) -> None:
        self.path = path
        self.full_text = full_text
        self._lock = threading.Lock()
        try:  # fail now, with the path, rather than in the middle of an answer
            path.parent.mkdir(parents=True, exist_ok=True)
            path.open("a", encoding="utf-8").close()
        except OSError as exc:
            raise SetupError(f"cannot write the audit log at {path}: {exc}") from exc

    def write(self, sent: SentRequest) -> None:
        """Record one request about to be sent."""
        record: dict[str, Any] = {
            "time": time.time(), "call_id": sent.call_id, "cloud": sent.cloud,
            "endpoint": sent.url, "api": sent.api, "context_tokens": sent.context_tokens,
            "bytes": len(sent.payload), "sha256": hashlib.sha256(sent.payload).hexdigest(),
        }  # fmt: skip
        if self.full_text:
            record["body"] = sent.body
        with self._lock, self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")


class SendsRequests(Protocol):
    """A cloud client that tells ``on_send`` of each request body before it leaves."""

    def stream(
        self, request: CloudRequest, *, on_send: OnSend | None = None
    ) -> Iterator[CloudItem]: ...


class AuditedCloud:
    """Streams calls through ``inner``, writing each request it sends to ``log`` first."""

    def __init__(self, inner: SendsRequests, log: AuditLog) -> None:
        self.inner = inner
        self.log = log

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        return self.inner.stream(request, on_send=self.log.write)
