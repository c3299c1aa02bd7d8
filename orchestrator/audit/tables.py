"""What every table family of the audit store shares: the schema, the clock, the tables.

Tables are append-only: a status change is a new row and the latest row per key is the
current state, which suits BigQuery and leaves the full history for auditors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from orchestrator.warehouse.base import Warehouse

SCHEMA = "backfill_audit"

Columns = Sequence[
    tuple[str, str]
]  # (name, logical type): string, int, float, bool, date, timestamp


# Columns added to a table after it shipped: `ensure` adds them where they are missing.
ADDED_LATER: dict[str, tuple[str, ...]] = {"plans": ("category",)}


def utcnow() -> datetime:
    """UTC wall time, naive (DuckDB TIMESTAMP has no zone; every audit time is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def qualified(table: str) -> str:
    return f"{SCHEMA}.{table}"


class Tables:
    """The audit tables of one warehouse: created on paths that write, looked up once."""

    def __init__(self, warehouse: Warehouse, tables: Mapping[str, Columns]) -> None:
        self.wh = warehouse
        self._tables = tables
        self._ready = False  # ensure() made every table
        self._seen = False  # the store exists

    def ensure(self) -> None:
        if self._ready:
            return
        self.wh.ensure_schema(SCHEMA)
        for table, columns in self._tables.items():
            self.wh.create_table_if_missing(qualified(table), columns)
        for table, added in ADDED_LATER.items():  # a store made by an older version
            present = set(self.wh.columns(qualified(table)))
            kinds = dict(self._tables.get(table, ()))
            for column in added:
                if column not in present:
                    self.wh.add_column(qualified(table), column, kinds[column])
        self._ready = True

    def exists(self) -> bool:
        # Audit tables are never dropped: once seen, they need not be looked up again.
        if not self._seen:
            self._seen = self._ready or self.wh.relation_exists(qualified("backfill_log"))
        return self._seen


class Family:
    """One table family: the only code that reads or writes its tables."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self.wh = tables.wh

    def exists(self) -> bool:
        return self._tables.exists()

    @staticmethod
    def t(table: str) -> str:
        return qualified(table)
