"""The audit log of what left the device: one JSON line per request body sent.

The HTTP client writes it just before each request leaves (probes and re-sends
included), so it records exactly what each cloud was sent: the cloud's name,
URL and API family, the call, and the size and SHA-256 of the body. The body
itself (system text, conversation, partial answer, as the family phrased
them) is kept only when ``full_text`` is set. Keys never appear: they travel
in headers, which are not logged.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protocol.errors import SetupError

__all__ = ["AuditLog"]


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

    def write(
        self, *, cloud: str, url: str, api: str, call_id: str, context_tokens: int,
        payload: bytes, body: Mapping[str, Any],
    ) -> None:  # fmt: skip
        """Record one request about to be sent: ``payload`` is its body's bytes, as sent."""
        data = payload
        record: dict[str, Any] = {
            "time": time.time(), "call_id": call_id, "cloud": cloud, "endpoint": url,
            "api": api, "context_tokens": context_tokens, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }  # fmt: skip
        if self.full_text:
            record["body"] = body
        with self._lock, self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
