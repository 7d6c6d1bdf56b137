"""The audit log of what left the device: one JSON line per request sent.

It wraps the HTTP client directly, so only what really goes out is logged. Size
and SHA-256 of the context are always recorded; the full text only when
``full_text`` is set.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edge.client import CloudClient, CloudItem, CloudRequest
from protocol.errors import SetupError

__all__ = ["AuditedCloud"]


class AuditedCloud:
    """Records every call to ``path`` before passing it to ``inner``."""

    def __init__(
        self,
        inner: CloudClient,
        path: Path,
        *,
        endpoint: str,
        full_text: bool = False,
    ) -> None:
        self.inner = inner
        self.path = path
        self.endpoint = endpoint
        self.full_text = full_text
        self._lock = threading.Lock()
        try:  # fail now, with the path, rather than in the middle of an answer
            path.parent.mkdir(parents=True, exist_ok=True)
            path.open("a", encoding="utf-8").close()
        except OSError as exc:
            raise SetupError(f"cannot write the audit log at {path}: {exc}") from exc

    def stream(self, request: CloudRequest) -> Iterator[CloudItem]:
        self._write(request)
        yield from self.inner.stream(request)

    def _write(self, request: CloudRequest) -> None:
        data = request.prompt.encode("utf-8")
        record = {
            "time": time.time(),
            "call_id": request.call_id,
            "endpoint": self.endpoint,
            "context_tokens": request.context_tokens,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if self.full_text:
            record["text"] = request.prompt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
