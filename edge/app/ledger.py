"""The spend ledger: every cloud call in SQLite (WAL), reserved before and settled after.

A call first *reserves* its worst case inside one ``BEGIN IMMEDIATE``
transaction that also reads what is already spent, so concurrent answers, in
threads or processes, can never both take the last of a cap. Settling replaces
the reservation with what the call really used. A reservation left by a crash
stops counting after ``stale_after_s``; settled rows are never rewritten. A
damaged file is moved aside (never silently reset) and opening it fails with
one line that says where it went.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from protocol.errors import SetupError

__all__ = ["Grant", "Ledger", "Spend", "Spending"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_day ON calls(day);
CREATE INDEX IF NOT EXISTS calls_month ON calls(month);
"""
_ADDED_COLUMNS = {  # columns later versions added; an older ledger gains them on open
    "cloud": "TEXT NOT NULL DEFAULT ''",
    "cached_tokens": "INTEGER NOT NULL DEFAULT 0",
    "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0",
}


@dataclass(frozen=True)
class Spend:
    """Cloud tokens (completion) and dollars over a period; the prompt tokens billed and the
    part of them read from a cache."""

    tokens: int
    usd: float
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Spending:
    """What was spent before a reservation: in all, and at the cloud it is for."""

    day: Spend
    month: Spend
    cloud_day: Spend
    cloud_month: Spend


Grant = Callable[[Spending], int]
"""Given the spend so far, how many tokens a call may have."""


class Ledger:
    """One SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path, *, stale_after_s: float = 600.0) -> None:
        self.path = path
        self.stale_after_s = stale_after_s
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                _add_columns(db)
                damage = db.execute("PRAGMA quick_check").fetchone()[0]
        except (OSError, sqlite3.OperationalError) as exc:  # unreadable, unwritable, locked
            raise SetupError(f"cannot use the ledger at {path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            damage = str(exc)
        if damage != "ok":
            self.close()
            raise SetupError(_move_aside(path, damage))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (WAL: a crash loses at most the last call, never the file)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        yield db

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def reserve(
        self, *, endpoint: str, model: str, tokens: int, usd: float, grant: Grant, cloud: str = ""
    ) -> tuple[int, int]:
        """Reserve a call of at most ``tokens`` to ``cloud``; return ``(row id, tokens granted)``.

        ``grant(spending)`` is given the spend so far and returns how many of the
        tokens may be reserved; the row is written in the same transaction.
        """
        now = time.time()
        day, month = _periods(now)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                spending = Spending(*(
                    self._spend(db, period, key, now, scope)
                    for scope in (None, cloud) for period, key in (("day", day), ("month", month))
                ))  # fmt: skip
                granted = max(0, min(tokens, grant(spending)))
                cost = usd * granted / tokens if tokens else 0.0
                row = db.execute(
                    "INSERT INTO calls (time, day, month, endpoint, model, cloud,"
                    " completion_tokens, cost_usd, outcome)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'reserved')",
                    (now, day, month, endpoint, model, cloud, granted, cost),
                ).lastrowid
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        assert row is not None
        return row, granted

    def settle(
        self,
        row: int,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        usd: float,
        outcome: str,
        model: str | None = None,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """Replace a reservation with what the call really used (and the model, once known)."""
        with self._connect() as db:
            db.execute(
                "UPDATE calls SET prompt_tokens=?, completion_tokens=?, cost_usd=?, outcome=?,"
                " model=COALESCE(?, model), cached_tokens=?, cache_write_tokens=?"
                " WHERE id=? AND outcome='reserved'",
                (prompt_tokens, completion_tokens, usd, outcome, model, cached_tokens,
                 cache_write_tokens, row),
            )  # fmt: skip

    def spend(self, period: str = "day", when: float | None = None) -> Spend:
        """Spend of the UTC ``day`` or ``month`` containing ``when`` (default: now)."""
        now = time.time() if when is None else when
        key = _periods(now)[0 if period == "day" else 1]
        with self._connect() as db:
            return self._spend(db, period, key, now)

    def by_model(self, period: str = "month") -> dict[str, Spend]:
        """Settled spend of this UTC ``day`` or ``month``, per cloud model."""
        return self._grouped("model", period)

    def by_cloud(self, period: str = "month") -> dict[str, Spend]:
        """Settled spend of this UTC ``day`` or ``month``, per cloud (by name)."""
        return self._grouped("cloud", period)

    def _grouped(self, by: str, period: str) -> dict[str, Spend]:
        key = _periods(time.time())[0 if period == "day" else 1]
        column = "day" if period == "day" else "month"
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {by}, {_SUMS} FROM calls WHERE {column}=? AND outcome!='reserved'"
                f" GROUP BY {by} ORDER BY {by}",
                (key,),
            ).fetchall()
        return {name: _spend_of(row) for name, *row in rows}

    def _spend(
        self, db: sqlite3.Connection, period: str, key: str, now: float, cloud: str | None = None
    ) -> Spend:
        column = "day" if period == "day" else "month"
        where = f"{column}=? AND (outcome!='reserved' OR time>?)"
        args: tuple[object, ...] = (key, now - self.stale_after_s)
        if cloud is not None:
            where, args = where + " AND cloud=?", (*args, cloud)
        row = db.execute(f"SELECT {_SUMS} FROM calls WHERE {where}", args).fetchone()
        return _spend_of(row)


_SUMS = "SUM(completion_tokens), SUM(cost_usd), COUNT(*), SUM(prompt_tokens), SUM(cached_tokens)"


def _spend_of(row: tuple[object, ...]) -> Spend:
    tokens, usd, calls, prompt, cached = (value or 0 for value in row)
    return Spend(int(tokens), float(usd), int(calls), int(prompt), int(cached))  # type: ignore[arg-type]


def _add_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")


def _move_aside(path: Path, damage: str) -> str:
    """Rename a damaged ledger (and its WAL files) out of the way; say where it went."""
    lines = [line for line in damage.splitlines() if line.strip() and not line.startswith("*")]
    damage = lines[0] if lines else "damaged"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(aside.with_name(aside.name + suffix))
    return (
        f"the ledger at {path} is damaged ({damage}); it was moved to {aside} and the next run "
        "starts a new one (spend recorded in the old file no longer counts toward the caps)"
    )


def _periods(when: float) -> tuple[str, str]:
    moment = datetime.fromtimestamp(when, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m")
