"""relay-cloud's usage store: the reservation store (:mod:`edge.reservations`) that
``--state-url`` names, with each request billed to its key's name.

``--state-url``: ``sqlite://PATH`` (``sqlite:///var/lib/x.db`` is absolute; the default is a
file in the user data directory), shared by the processes of one machine, or
``postgresql://…`` for replicas behind a load balancer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from edge.reservations import PostgresDatabase, ReservationStore, SqliteFile
from protocol.errors import SetupError

__all__ = ["KeyUsage", "default_state_path", "key_usage", "open_store"]

_LABEL = "state store"


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


def default_state_path() -> Path:
    """The SQLite file used without ``--state-url`` (``RELAYLLM_DATA_DIR`` moves it)."""
    base = os.environ.get("RELAYLLM_DATA_DIR") or platformdirs.user_data_dir("relayllm")
    return Path(base) / "cloud-state.sqlite3"


def open_store(url: str | None) -> ReservationStore:
    """The store ``url`` names (``None``: SQLite in the user data directory)."""
    if url is None or url.startswith("sqlite://"):
        path = Path(url.removeprefix("sqlite://")) if url else default_state_path()
        return ReservationStore(SqliteFile(path), label=_LABEL)
    if url.startswith(("postgresql://", "postgres://")):
        return ReservationStore(PostgresDatabase(url), label=_LABEL)
    scheme = url.partition(":")[0]
    raise SetupError(
        f"unknown --state-url scheme {scheme!r}: use sqlite:///PATH or postgresql://HOST/DB"
    )


def key_usage(store: ReservationStore, since_day: str) -> list[KeyUsage]:
    """Use per key and UTC day, from ``since_day`` on."""
    found = []
    for use in store.usage(since_day):
        settled = use.settled
        requests = settled.calls + use.unsettled
        found.append(KeyUsage(use.key, use.day, requests, settled.prompt_tokens, settled.tokens,
                              settled.usd, use.unsettled))  # fmt: skip
    return found
