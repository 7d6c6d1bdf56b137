"""The PostgreSQL state store: one database shared by every relay-cloud replica.

Each reservation runs in a transaction that first takes a transaction-level
advisory lock on the key's name, so two replicas reserving for one key are
serialised while other keys proceed; the lock ends with the transaction.
Needs ``psycopg`` 3 (in the ``cloud`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cloud.state import SCHEMA, SqlStore
from protocol.errors import SetupError

__all__ = ["PostgresStore"]

_SCHEMA_LOCK = 0x72656C6179  # one replica at a time creates the table
_KEY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


class PostgresStore(SqlStore):
    """Usage in the PostgreSQL database at ``url`` (the table is created when missing)."""

    def __init__(self, url: str, *, stale_after_s: float = 3600.0) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise SetupError(
                "a postgresql:// state store needs psycopg: pip install 'relayllm[cloud]'"
            ) from exc
        super().__init__(stale_after_s)
        self.errors = (psycopg.Error,)
        self._psycopg = psycopg
        self._url = url
        try:
            db = self._connect()
            try:
                with db.transaction():
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    schema = SCHEMA.format(id="BIGINT GENERATED ALWAYS AS IDENTITY")
                    for statement in filter(str.strip, schema.split(";")):
                        db.execute(statement)
            finally:
                db.close()
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SetupError(f"cannot use the PostgreSQL state store: {first}") from exc

    def _connect(self) -> Any:
        return self._psycopg.connect(self._url, autocommit=True, connect_timeout=10)

    @contextmanager
    def _transaction(self, db: Any, key: str) -> Iterator[None]:
        with db.transaction():
            db.execute(_KEY_LOCK, (key,))
            yield
