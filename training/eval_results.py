"""``results.jsonl`` of ``relay eval``: one line per answered question, so a stopped run resumes."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from protocol.calls import malformed_commands
from training.evaluate import QuestionResult
from training.problems import Problem

__all__ = ["Results"]


class Results:
    """What is done survives a stopped run: rows by (system, question id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.rows: dict[tuple[str, str], QuestionResult] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = _row(json.loads(line))
                    self.rows[(row.system, row.id)] = row

    def add(self, row: QuestionResult) -> None:
        with self._lock:
            self.rows[(row.system, row.id)] = row
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(row.to_json()) + "\n")

    def of(self, system: str, problems: Sequence[Problem]) -> list[QuestionResult]:
        return [self.rows[(system, p.id)] for p in problems if (system, p.id) in self.rows]


def _row(data: dict[str, object]) -> QuestionResult:
    """A ``results.jsonl`` line; one written before commands were counted counts its answer."""
    data.setdefault("malformed_commands", malformed_commands(str(data["answer"])))
    return QuestionResult(**data)  # type: ignore[arg-type]
