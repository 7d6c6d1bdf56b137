"""The state store of relay-cloud: every request per key, reserved before and settled after.

A request is *reserved* inside one transaction that first takes the key's
lock, then reads the key's spend of the UTC day and its requests of the last
minute, and writes the reservation; so replicas sharing one store never both
take the last of a budget. *Settling* replaces the reservation with what was
used. A reservation left by a crash stops counting after ``stale_after_s``.

``--state-url``: ``sqlite://PATH`` (``sqlite:///var/lib/x.db`` is absolute; the
default is a file in the user data directory) or ``postgresql://…`` for
replicas behind a load balancer.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import platformdirs

from protocol.errors import CloudUnavailable, SetupError

__all__ = ["Claim", "KeyUsage", "SqlStore", "StateStore", "Window", "open_store", "utc_day"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_usage (
    id {id} PRIMARY KEY,
    key_name TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    day TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    usd DOUBLE PRECISION NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS relay_usage_key_day ON relay_usage (key_name, day);
CREATE INDEX IF NOT EXISTS relay_usage_key_started ON relay_usage (key_name, started);
"""
_SPENT = (
    "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0), COALESCE(SUM(usd), 0)"
    " FROM relay_usage WHERE key_name = %s AND day = %s AND (settled = 1 OR started > %s)"
)
_RECENT = "SELECT COUNT(*), MIN(started) FROM relay_usage WHERE key_name = %s AND started > %s"
_INSERT = (
    "INSERT INTO relay_usage (key_name, started, day, prompt_tokens, completion_tokens, usd)"
    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
)
_SETTLE = (
    "UPDATE relay_usage SET prompt_tokens = %s, completion_tokens = %s, usd = %s, settled = 1"
    " WHERE id = %s AND settled = 0"
)
_REPORT = (
    "SELECT key_name, day, COUNT(*),"
    " COALESCE(SUM(CASE WHEN settled = 1 THEN prompt_tokens ELSE 0 END), 0),"
    " COALESCE(SUM(CASE WHEN settled = 1 THEN completion_tokens ELSE 0 END), 0),"
    " COALESCE(SUM(CASE WHEN settled = 1 THEN usd ELSE 0 END), 0), SUM(1 - settled)"
    " FROM relay_usage WHERE day >= %s GROUP BY key_name, day ORDER BY day, key_name"
)


@dataclass(frozen=True)
class Window:
    """A key's use, as read inside the reserving transaction."""

    tokens_today: int
    usd_today: float
    requests_last_minute: int
    oldest_in_minute: float | None


@dataclass(frozen=True)
class Claim:
    """What a reservation holds until it is settled."""

    prompt_tokens: int
    completion_tokens: int
    usd: float


@dataclass(frozen=True)
class KeyUsage:
    """Settled use of one key on one UTC day (``unsettled``: requests still reserved)."""

    key: str
    day: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    usd: float
    unsettled: int


class StateStore(Protocol):
    """Where usage lives; shared by every replica that points at it."""

    def reserve(self, key: str, now: float, decide: Callable[[Window], Claim]) -> tuple[int, Claim]:
        """Record ``decide(window)`` for ``key`` atomically (``decide`` may raise to refuse)."""
        ...

    def settle(self, row: int, prompt_tokens: int, completion_tokens: int, usd: float) -> None:
        """Replace a reservation with what the request used."""
        ...

    def usage(self, since_day: str) -> list[KeyUsage]:
        """Use per key and UTC day, from ``since_day`` on."""
        ...

    def close(self) -> None:
        """Close every connection."""
        ...


def utc_day(when: float) -> str:
    """The UTC date of a moment, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%d")


class SqlStore:
    """The SQL both stores share; subclasses connect and open a transaction holding a key lock."""

    placeholder = "%s"
    errors: tuple[type[Exception], ...] = ()

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._open: list[Any] = []
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        raise NotImplementedError

    def _transaction(self, db: Any, key: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", self.placeholder)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection; one that failed is closed instead of reused."""
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            db = self._connect()
            with self._lock:
                self._open.append(db)
        try:
            yield db
        except self.errors as exc:
            self._discard(db)
            raise CloudUnavailable(f"the usage state store failed: {exc}") from exc
        except BaseException:
            self._idle.put(db)
            raise
        self._idle.put(db)

    def _discard(self, db: Any) -> None:
        with self._lock:
            self._open.remove(db)
        with suppress(*self.errors):
            db.close()

    def reserve(self, key: str, now: float, decide: Callable[[Window], Claim]) -> tuple[int, Claim]:
        day = utc_day(now)
        with self._connection() as db, self._transaction(db, key):
            spent = db.execute(self._sql(_SPENT), (key, day, now - self.stale_after_s)).fetchone()
            count, oldest = db.execute(self._sql(_RECENT), (key, now - 60.0)).fetchone()
            claim = decide(Window(int(spent[0]), float(spent[1]), int(count), oldest))
            values = (key, now, day, claim.prompt_tokens, claim.completion_tokens, claim.usd)
            row = db.execute(self._sql(_INSERT), values).fetchall()[0][0]
        return int(row), claim

    def settle(self, row: int, prompt_tokens: int, completion_tokens: int, usd: float) -> None:
        with self._connection() as db:
            db.execute(self._sql(_SETTLE), (prompt_tokens, completion_tokens, usd, row))

    def usage(self, since_day: str) -> list[KeyUsage]:
        with self._connection() as db:
            rows = db.execute(self._sql(_REPORT), (since_day,)).fetchall()
        return [
            KeyUsage(str(k), str(d), int(n), int(p), int(c), float(u), int(r))
            for k, d, n, p, c, u, r in rows
        ]

    def close(self) -> None:
        with self._lock:
            opened, self._open = self._open, []
        for db in opened:
            db.close()


def default_state_path() -> Path:
    """The SQLite file used without ``--state-url`` (``RELAYLLM_DATA_DIR`` moves it)."""
    base = os.environ.get("RELAYLLM_DATA_DIR") or platformdirs.user_data_dir("relayllm")
    return Path(base) / "cloud-state.sqlite3"


def open_store(url: str | None, *, stale_after_s: float = 3600.0) -> StateStore:
    """The store ``url`` names (``None``: SQLite in the user data directory)."""
    if url is None or url.startswith("sqlite://"):
        from cloud.state_sqlite import SqliteStore

        path = Path(url.removeprefix("sqlite://")) if url else default_state_path()
        return SqliteStore(path, stale_after_s=stale_after_s)
    if url.startswith(("postgresql://", "postgres://")):
        from cloud.state_postgres import PostgresStore

        return PostgresStore(url, stale_after_s=stale_after_s)
    scheme = url.partition(":")[0]
    raise SetupError(
        f"unknown --state-url scheme {scheme!r}: use sqlite:///PATH or postgresql://HOST/DB"
    )
