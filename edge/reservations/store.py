"""The reservation store: cloud spend reserved before a call and settled after, on SQLite or
PostgreSQL.

The device's ledger (:mod:`edge.app.ledger`: a row per cloud call, billed to the cloud's name)
and relay-cloud's per-key quotas (:mod:`cloud.quota`: a row per request, billed to the key's
name) keep their spend here, in one table ``calls`` (:mod:`edge.reservations.databases`:
the table, and what differs between SQLite and PostgreSQL).

A call *reserves* its worst case inside one transaction that also reads the spend so far
(:class:`Spending`), so callers in threads, processes or replicas never both take the last of
a budget: on SQLite ``BEGIN IMMEDIATE`` takes the file's write lock; on PostgreSQL an advisory
lock on the account's name serialises that account's reservations while others proceed (spend
across accounts is read under a lock only on SQLite). *Settling* replaces the reservation with
what the call used; settled rows are never rewritten. A reservation older than
:data:`STALE_AFTER_S` was left by a crash and stops counting.

What a budget counts: a token budget counts the tokens the cloud generated (completion
tokens); prompt tokens are paid for in dollars, at a :class:`~edge.reservations.rules.Price`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

from edge.reservations.databases import PostgresDatabase, SqliteFile
from edge.reservations.rules import Period, Spend, periods
from protocol.errors import CloudUnavailable

__all__ = ["STALE_AFTER_S", "Claim", "Grant", "Recent", "ReservationStore", "Spending", "Usage"]

STALE_AFTER_S = 3600.0
"""A reservation older than this is dropped: no cloud call lasts longer (the edge's bound on
a call's total timeout)."""

_SUMS = ("COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_usd), 0), COUNT(*),"
         " COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0)")  # fmt: skip
_COUNTED = "(outcome <> 'reserved' OR time > ?)"  # settled, or reserved and not stale
_INSERT = (
    "INSERT INTO calls (time, day, month, account, endpoint, model, prompt_tokens,"
    " completion_tokens, cost_usd, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved')"
    " RETURNING id"
)
_SETTLE = (
    "UPDATE calls SET prompt_tokens = ?, completion_tokens = ?, cost_usd = ?, outcome = ?,"
    " model = COALESCE(?, model), cached_tokens = ?, cache_write_tokens = ?"
    " WHERE id = ? AND outcome = 'reserved'"
)
_RECENT = "SELECT COUNT(*), MIN(time) FROM calls WHERE account = ? AND time > ?"
_USAGE = (
    "SELECT {by}, day, outcome = 'reserved', " + _SUMS + " FROM calls WHERE day >= ?"
    " GROUP BY 1, 2, 3 ORDER BY 2, 1, 3"
)


@dataclass(frozen=True)
class Claim:
    """What a reservation holds until it is settled: the tokens the call may generate, its
    worst-case dollars and, where it is known, a bound on its prompt."""

    completion_tokens: int
    usd: float
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Recent:
    """An account's calls in a recent window (reservations included), and when the oldest began."""

    calls: int
    oldest: float | None


@dataclass(frozen=True)
class Usage:
    """Settled spend of one account (or model: ``key``) on one UTC day; ``unsettled``: its
    reservations still open."""

    key: str
    day: str
    settled: Spend
    unsettled: int


_Read = Callable[[str, tuple[Any, ...]], list[Any]]


class Spending:
    """The spend before a reservation, read inside its transaction when the grant asks."""

    def __init__(self, read: _Read, now: float, stale_after_s: float) -> None:
        self._read, self.now, self._stale_after_s = read, now, stale_after_s

    def spend(self, period: Period, account: str | None = None) -> Spend:
        """This UTC ``period``'s spend of every account, or of ``account`` (reservations under
        way included)."""
        day, month = periods(self.now)
        column, key = ("day", day) if period == "day" else ("month", month)
        where, args = f"{column} = ? AND {_COUNTED}", (key, self.now - self._stale_after_s)
        if account is not None:
            where, args = where + " AND account = ?", (*args, account)
        return _spend_of(self._read(f"SELECT {_SUMS} FROM calls WHERE {where}", args)[0])

    def recent(self, account: str, seconds: float) -> Recent:
        """``account``'s calls in the last ``seconds``."""
        calls, oldest = self._read(_RECENT, (account, self.now - seconds))[0]
        return Recent(int(calls), oldest)


Grant = Callable[[Spending], Claim]
"""Given the spend so far, what a call may reserve (or raise to refuse it)."""


class ReservationStore:
    """Reservations and spend in ``database``; safe to share between threads (a pool of
    connections, each used by one thread at a time). ``label`` names it in errors."""

    def __init__(
        self,
        database: SqliteFile | PostgresDatabase,
        *,
        label: str = "reservation store",
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        database.create(label)
        self.database, self.label, self.stale_after_s = database, label, stale_after_s
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._open: list[Any] = []
        self._lock = threading.Lock()

    def reserve(
        self, account: str, grant: Grant, *, endpoint: str = "", model: str = "",
        now: float | None = None,
    ) -> tuple[int, Claim]:  # fmt: skip
        """Reserve what ``grant`` claims, given the spend so far, for a call billed to
        ``account``; return ``(row, claim)``. Read and write are one transaction."""
        now = time.time() if now is None else now
        day, month = periods(now)
        with self._connection() as read, self.database.transaction(read.db, account):
            claim = grant(Spending(read, now, self.stale_after_s))
            values = (now, day, month, account, endpoint, model, claim.prompt_tokens,
                      claim.completion_tokens, claim.usd)  # fmt: skip
            row = read(_INSERT, values)[0][0]
        return int(row), claim

    def settle(
        self, row: int, *, prompt_tokens: int, completion_tokens: int, usd: float,
        outcome: str = "ok", model: str | None = None, cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:  # fmt: skip
        """Replace a reservation with what the call used (and the model, once known)."""
        values = (prompt_tokens, completion_tokens, usd, outcome, model, cached_tokens,
                  cache_write_tokens, row)  # fmt: skip
        with self._connection() as read:
            read.db.execute(read.sql(_SETTLE), values)

    def spend(
        self, period: Period = "day", account: str | None = None, *, when: float | None = None
    ) -> Spend:
        """The UTC ``period`` containing ``when`` (default: now): every account's spend, or
        ``account``'s (reservations under way included)."""
        now = time.time() if when is None else when
        with self._connection() as read:
            return Spending(read, now, self.stale_after_s).spend(period, account)

    def usage(self, since_day: str, *, by: Literal["account", "model"] = "account") -> list[Usage]:
        """Use per account (or model) and UTC day, from ``since_day`` on."""
        with self._connection() as read:
            rows = read(_USAGE.format(by="model" if by == "model" else "account"), (since_day,))
        found: dict[tuple[str, str], Usage] = {}
        for key, day, reserved, *sums in rows:
            was = found.get((key, day), Usage(key, day, Spend(0, 0.0), 0))
            if reserved:
                found[(key, day)] = Usage(key, day, was.settled, was.unsettled + int(sums[2]))
            else:
                found[(key, day)] = Usage(key, day, was.settled + _spend_of(sums), was.unsettled)
        return list(found.values())

    def close(self) -> None:
        """Close every connection (a later use opens new ones)."""
        with self._lock:
            opened, self._open = self._open, []
        with suppress(queue.Empty):
            while True:
                self._idle.get_nowait()
        for db in opened:
            with suppress(*self.database.errors):
                db.close()

    @contextmanager
    def _connection(self) -> Iterator[_Reader]:
        """A pooled connection; one that failed is closed, not reused."""
        errors = self.database.errors
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            try:
                db = self.database.connect()
            except errors as exc:
                raise CloudUnavailable(f"the {self.label} failed: {exc}") from exc
            with self._lock:
                self._open.append(db)
        try:
            yield _Reader(db, self.database.placeholder)
        except errors as exc:
            self._put_back(db, broken=True)
            raise CloudUnavailable(f"the {self.label} failed: {exc}") from exc
        except BaseException:
            self._put_back(db)
            raise
        self._put_back(db)

    def _put_back(self, db: Any, *, broken: bool = False) -> None:
        with self._lock:
            kept = any(db is other for other in self._open)  # not closed meanwhile
            if broken:
                self._open = [other for other in self._open if other is not db]
        if broken:
            with suppress(*self.database.errors):
                db.close()
        elif kept:
            self._idle.put(db)


class _Reader:
    """One connection, running SQL written with ``?`` in its dialect's paramstyle."""

    def __init__(self, db: Any, placeholder: str) -> None:
        self.db, self._placeholder = db, placeholder

    def sql(self, text: str) -> str:
        return text.replace("?", self._placeholder)

    def __call__(self, text: str, args: tuple[Any, ...]) -> list[Any]:
        return self.db.execute(self.sql(text), args).fetchall()


def _spend_of(row: Any) -> Spend:
    tokens, usd, calls, prompt, cached = (value or 0 for value in row)
    return Spend(int(tokens), float(usd), int(calls), int(prompt), int(cached))
