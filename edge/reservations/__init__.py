"""Cloud spend reserved before a call and settled after: the device's ledger and relay-cloud's
per-key quotas keep it in one :class:`ReservationStore`, on SQLite or PostgreSQL.

``store`` is the store itself (reserve, settle, expire stale, spend queries); ``databases``
the table and what differs between SQLite and PostgreSQL; ``rules`` what counts toward a
budget: UTC periods, :class:`Price`, and the one affordability check, :func:`room`.

A token budget counts the tokens the cloud generated (completion tokens); dollars cover the
prompt tokens too. A reservation older than :data:`STALE_AFTER_S` (an hour: longer than any
call may last) was left by a crash and no longer counts.
"""

from edge.reservations.databases import DamagedStore, PostgresDatabase, SqliteFile
from edge.reservations.rules import Period, Price, Spend, periods, room, until_next_day
from edge.reservations.store import (
    STALE_AFTER_S,
    Claim,
    Grant,
    Recent,
    ReservationStore,
    Spending,
    Usage,
)

__all__ = [
    "STALE_AFTER_S", "Claim", "DamagedStore", "Grant", "Period", "PostgresDatabase", "Price",
    "Recent", "ReservationStore", "Spend", "Spending", "SqliteFile", "Usage", "periods", "room",
    "until_next_day",
]  # fmt: skip
