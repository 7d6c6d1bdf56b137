"""The device's spend ledger: every cloud call in one SQLite file (WAL), reserved before and
settled after, billed to the cloud's name.

The reserving and settling are :class:`edge.reservations.ReservationStore`'s; what the ledger
adds is the device's own: a damaged file is moved aside (never silently reset) and opening it
fails with one line that says where it went; and the month's spend per cloud and per model
that ``relay stats`` shows.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from edge.reservations import (
    STALE_AFTER_S,
    DamagedStore,
    Period,
    ReservationStore,
    Spend,
    SqliteFile,
    periods,
)
from protocol.errors import SetupError

__all__ = ["Ledger"]


class Ledger(ReservationStore):
    """The reservation store in the SQLite file at ``path``; safe to share between threads and
    processes. The runtime opens one (:attr:`edge.app.runtime.Relay.ledger`)."""

    def __init__(self, path: Path, *, stale_after_s: float = STALE_AFTER_S) -> None:
        self.path = path
        try:
            super().__init__(SqliteFile(path), label="ledger", stale_after_s=stale_after_s)
        except DamagedStore as exc:
            raise SetupError(_move_aside(path, exc.damage)) from exc

    def by_model(self, period: Period = "month") -> dict[str, Spend]:
        """Settled spend of this UTC ``day`` or ``month``, per cloud model."""
        return self._settled("model", period)

    def by_cloud(self, period: Period = "month") -> dict[str, Spend]:
        """Settled spend of this UTC ``day`` or ``month``, per cloud (by name)."""
        return self._settled("account", period)

    def _settled(self, by: Literal["account", "model"], period: Period) -> dict[str, Spend]:
        day, month = periods(time.time())
        since = day if period == "day" else f"{month}-01"
        found: dict[str, Spend] = {}
        for use in self.usage(since, by=by):
            if use.settled.calls:
                found[use.key] = found.get(use.key, Spend(0, 0.0)) + use.settled
        return dict(sorted(found.items()))


def _move_aside(path: Path, damage: str) -> str:
    """Rename a damaged ledger (and its WAL files) out of the way; say where it went."""
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
