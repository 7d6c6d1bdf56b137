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

__all__ = ["Grant", "Ledger", "Spend"]

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


@dataclass(frozen=True)
class Spend:
    """Cloud tokens and dollars over a period."""

    tokens: int
    usd: float
    calls: int = 0


Grant = Callable[[Spend, Spend], int]
"""Given the day's and the month's spend so far, how many tokens a call may have."""


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
        self, *, endpoint: str, model: str, tokens: int, usd: float, grant: Grant
    ) -> tuple[int, int]:
        """Reserve a call of at most ``tokens``; return ``(row id, tokens granted)``.

        ``grant(day, month)`` is given the spend so far and returns how many of
        the tokens may be reserved; the row is written in the same transaction.
        """
        now = time.time()
        day, month = _periods(now)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                spent_day = self._spend(db, "day", day, now)
                granted = grant(spent_day, self._spend(db, "month", month, now))
                granted = max(0, min(tokens, granted))
                cost = usd * granted / tokens if tokens else 0.0
                row = db.execute(
                    "INSERT INTO calls (time, day, month, endpoint, model, completion_tokens,"
                    " cost_usd, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, 'reserved')",
                    (now, day, month, endpoint, model, granted, cost),
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
    ) -> None:
        """Replace a reservation with what the call really used (and the model, once known)."""
        with self._connect() as db:
            db.execute(
                "UPDATE calls SET prompt_tokens=?, completion_tokens=?, cost_usd=?, outcome=?,"
                " model=COALESCE(?, model) WHERE id=? AND outcome='reserved'",
                (prompt_tokens, completion_tokens, usd, outcome, model, row),
            )

    def spend(self, period: str = "day", when: float | None = None) -> Spend:
        """Spend of the UTC ``day`` or ``month`` containing ``when`` (default: now)."""
        now = time.time() if when is None else when
        key = _periods(now)[0 if period == "day" else 1]
        with self._connect() as db:
            return self._spend(db, period, key, now)

    def by_model(self, period: str = "month") -> dict[str, Spend]:
        now = time.time()
        key = _periods(now)[0 if period == "day" else 1]
        column = "day" if period == "day" else "month"
        with self._connect() as db:
            rows = db.execute(
                f"SELECT model, SUM(completion_tokens), SUM(cost_usd), COUNT(*) FROM calls"
                f" WHERE {column}=? AND outcome!='reserved' GROUP BY model ORDER BY model",
                (key,),
            ).fetchall()
        return {model: Spend(int(t or 0), float(u or 0), int(n)) for model, t, u, n in rows}

    def _spend(self, db: sqlite3.Connection, period: str, key: str, now: float) -> Spend:
        column = "day" if period == "day" else "month"
        tokens, usd, calls = db.execute(
            f"SELECT SUM(completion_tokens), SUM(cost_usd), COUNT(*) FROM calls WHERE {column}=?"
            " AND (outcome!='reserved' OR time>?)",
            (key, now - self.stale_after_s),
        ).fetchone()
        return Spend(int(tokens or 0), float(usd or 0.0), int(calls))


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
