"""What was learned about each cloud, remembered per URL and model in the data dir.

``auto`` probes an unknown URL once; the family it found and every quirk a 400
taught (:class:`edge.clouds.apis.Quirks`) are kept in ``clouds.json``, so later
runs pay nothing extra. Writes replace the file atomically; a file that cannot
be read or written is ignored (the cloud is then probed again next time).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.clouds.apis import API_ORDER, CloudApi, Quirks

__all__ = ["ApiMemory", "Learned"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Learned:
    """A cloud's family, how it was found (``probed``, ``known host``, ``configured``), quirks."""

    api: CloudApi
    how: str
    quirks: Quirks


class ApiMemory:
    """``clouds.json``: ``{"URL MODEL": {"api", "how", "quirks", "time"}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def get(self, url: str, model: str) -> Learned | None:
        entry = self._read().get(_key(url, model))
        if not isinstance(entry, dict) or entry.get("api") not in API_ORDER:
            return None
        return Learned(entry["api"], str(entry.get("how", "probed")),
                       Quirks.from_json(entry.get("quirks") or {}))  # fmt: skip

    def put(self, url: str, model: str, learned: Learned) -> None:
        entry = {"api": learned.api, "how": learned.how, "quirks": learned.quirks.to_json(),
                 "time": time.time()}  # fmt: skip
        with self._lock:
            data = self._read()
            data[_key(url, model)] = entry
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
                temporary.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
                os.replace(temporary, self.path)
            except OSError as exc:
                log.warning("cannot remember what %s takes in %s: %s", url, self.path, exc)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _key(url: str, model: str) -> str:
    return f"{url.rstrip('/')} {model}"
