"""Where reservations are kept: the table ``calls``, in a SQLite file or a PostgreSQL database.

Each database says how to connect, how to create the table, and how a reservation's
transaction is serialised (its dialect's differences); the reserving and settling are
:class:`~edge.reservations.store.ReservationStore`'s. ``psycopg`` (the ``cloud`` extra) is
imported only when a PostgreSQL database is opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from protocol.errors import SetupError

__all__ = ["DamagedStore", "PostgresDatabase", "SqliteFile"]

_TABLE = """CREATE TABLE IF NOT EXISTS calls (
    id {id} PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    account TEXT NOT NULL DEFAULT '',
    endpoint TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL
)"""
_INDEXES = [f"CREATE INDEX IF NOT EXISTS calls_{'_'.join(on)} ON calls ({', '.join(on)})"
            for on in (("day",), ("month",), ("account", "day"), ("account", "time"))]  # fmt: skip
_ADDED_COLUMNS = {  # columns a ledger of an older version gains when opened
    "account": "TEXT NOT NULL DEFAULT ''",
    "cached_tokens": "INTEGER NOT NULL DEFAULT 0",
    "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0",
}


class DamagedStore(SetupError):
    """The SQLite file is not a sound database (``damage``: the first thing the check found)."""

    def __init__(self, message: str, damage: str) -> None:
        super().__init__(message)
        self.damage = damage


class SqliteFile:
    """A SQLite file (WAL), created with its directory; shared by the processes of one machine."""

    placeholder = "?"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        """A connection any thread may use (WAL: a crash loses at most the last call)."""
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def create(self, label: str) -> None:
        """The table (an older ledger gains its new columns); :class:`DamagedStore` if damaged."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self.connect()
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_TABLE.format(id="INTEGER"))
                have = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
                if "cloud" in have and "account" not in have:  # the ledger's name before
                    db.execute("ALTER TABLE calls RENAME COLUMN cloud TO account")
                    have.add("account")
                for name, kind in _ADDED_COLUMNS.items():
                    if name not in have:
                        db.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")
                for index in _INDEXES:
                    db.execute(index)
                damage = db.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                db.close()
        except (OSError, sqlite3.OperationalError) as exc:  # unreadable, unwritable, locked
            raise SetupError(f"cannot use the {label} at {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            damage = str(exc)
        if damage != "ok":
            lines = [ln for ln in damage.splitlines() if ln.strip() and not ln.startswith("*")]
            damage = lines[0] if lines else "damaged"
            raise DamagedStore(f"the {label} at {self.path} is damaged ({damage})", damage)

    @contextmanager
    def transaction(self, db: sqlite3.Connection, account: str) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")  # the whole file's write lock: every account at once
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class PostgresDatabase:
    """A PostgreSQL database shared by replicas; needs ``psycopg`` 3 (the ``cloud`` extra)."""

    placeholder = "%s"
    _SCHEMA_LOCK = 0x72656C6179  # one replica at a time creates the table

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise SetupError(
                "a postgresql:// store needs psycopg: pip install 'relayllm[cloud]'"
            ) from exc
        self.url, self._psycopg = url, psycopg
        self.errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def create(self, label: str) -> None:
        try:
            db = self.connect()
            try:
                with db.transaction():
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (self._SCHEMA_LOCK,))
                    db.execute(_TABLE.format(id="BIGINT GENERATED ALWAYS AS IDENTITY"))
                    for index in _INDEXES:
                        db.execute(index)
            finally:
                db.close()
        except self._psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SetupError(f"cannot use the PostgreSQL {label}: {first}") from exc

    @contextmanager
    def transaction(self, db: Any, account: str) -> Iterator[None]:
        with db.transaction():  # the account's lock ends with the transaction
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (account,))
            yield
