"""The SQLite state store: one file (WAL), shared by the processes on one machine.

``BEGIN IMMEDIATE`` takes the file's write lock before the key's spend is
read, so reservations from every process sharing the file are serialised.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cloud.state import SCHEMA, SqlStore
from protocol.errors import SetupError

__all__ = ["SqliteStore"]


class SqliteStore(SqlStore):
    """Usage in the SQLite file at ``path`` (created with its directory when missing)."""

    placeholder = "?"
    errors = (sqlite3.Error,)

    def __init__(self, path: Path, *, stale_after_s: float = 3600.0) -> None:
        super().__init__(stale_after_s)
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = self._connect()
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA.format(id="INTEGER"))
            finally:
                db.close()
        except (OSError, sqlite3.Error) as exc:
            raise SetupError(f"cannot use the state store {path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _transaction(self, db: sqlite3.Connection, key: str) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")  # the whole file's write lock: every key at once
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
