"""The small protocol every warehouse backend implements.

The audit store and write-audit-publish speak only this protocol, so the CLI and the
library never branch on the warehouse type. SQL passed in uses `$name` parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

Params = Mapping[str, Any]


@dataclass(frozen=True)
class PartitionStats:
    """Row count and an order-independent checksum of every row of one partition."""

    partition: date
    rows: int
    checksum: str


@dataclass(frozen=True)
class ColumnProfile:
    """One column over a range of partitions: how many values, nulls and negatives, and
    for numbers the mean and two quantiles (None where there is no value or no number)."""

    rows: int
    nulls: int
    numeric: bool = False
    negatives: int = 0
    mean: float | None = None
    p50: float | None = None
    p99: float | None = None


@dataclass(frozen=True)
class SqlAlchemySource:
    """How a SQLAlchemy client (Great Expectations) reaches a relation of the warehouse."""

    key: str  # one client datasource per key
    owner: object  # the live connection it borrows from: a new owner means a new datasource
    url: str
    engine_kwargs: dict[str, Any]
    table_name: Callable[[str], str]  # the relation's name as that datasource knows it


class Warehouse(Protocol):
    """One warehouse (DuckDB file or BigQuery project) as seen by the orchestrator."""

    name: str
    namespace: str  # the OpenLineage dataset namespace, e.g. duckdb://rideshare.duckdb

    def execute(self, sql: str, params: Params | None = None) -> None: ...

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def ensure_schema(self, schema: str) -> None: ...

    def create_table_if_missing(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        """Create `table` with (name, logical type) columns; types: string, int, float,
        bool, date, timestamp."""
        ...

    def add_column(self, table: str, column: str, kind: str) -> None:
        """Add a column of a logical type (as in create_table_if_missing) to a table."""
        ...

    def relation_exists(self, relation: str) -> bool: ...

    def columns(self, relation: str) -> list[str]: ...

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def partition_stats(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[date, PartitionStats]: ...

    def partition_rows(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[date, int]:
        """Rows per non-empty partition in [start, end], as cheaply as the warehouse can
        (BigQuery: partition metadata, no bytes billed)."""
        ...

    def profile(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[str, ColumnProfile]:
        """Every column's profile over the [start, end] partitions, in one query."""
        ...

    def table_checksum(self, relation: str) -> tuple[int, str]:
        """Row count and order-independent checksum of a whole table."""
        ...

    def estimate_rows_read(self, sql: str) -> int | None: ...

    def dry_run_bytes(self, sql: str) -> int | None:
        """Bytes the query would process, where the warehouse bills by bytes (else None)."""
        ...

    def create_table_as(self, relation: str, sql: str, *, shaped_like: str | None = None) -> None:
        """Create (or replace) `relation` from `sql`; with `shaped_like`, partitioned and
        clustered like that table where the warehouse partitions tables (BigQuery), so
        partitions can be copied between the two."""
        ...

    def transient_relation(self, relation: str) -> str:
        """The name under which to build `relation` when it is needed only while this
        command runs (e.g. in memory); the name itself where the warehouse has no such place."""
        ...

    def copy_range(
        self, source: str, target: str, partition_field: str, start: date, end: date
    ) -> int:
        """Replace the [start, end] partitions of `target` with those of `source`.

        Creates `target` shaped like `source` if missing; returns rows copied. Callers wrap
        it in `transaction()` with the audit rows, so the swap and its record are atomic.
        """
        ...

    def backup_range(
        self, source: str, backup: str, partition_field: str, start: date, end: date
    ) -> int:
        """`copy_range` from a table into its backup. A backup is written once and read
        rarely (rollback, export), so a warehouse may store it for write speed over size."""
        ...

    def copy_partition(self, source: str, target: str, partition_field: str, day: date) -> None:
        """Replace the `day` partition of `target` with that of `source`, atomically for
        that partition alone (BigQuery: a copy job, no bytes billed). It commits on its own:
        never call it inside `transaction()`."""
        ...

    def delete_partition(self, target: str, partition_field: str, day: date) -> None:
        """Empty the `day` partition of `target` (a day the source no longer has)."""
        ...

    def drop_relation(self, relation: str) -> None: ...

    def tag_relation(self, relation: str, labels: Mapping[str, str]) -> None:
        """Mark a table with the backfill that last wrote it (comment or labels)."""
        ...

    def export_parquet(self, sql: str, path: str) -> int:
        """Write the rows of `sql` to a local Parquet file; return the row count."""
        ...

    def list_relations(self, schema: str) -> list[tuple[str, datetime | None]]:
        """Tables in a schema with their creation time where the warehouse knows it."""
        ...

    def sqlalchemy_source(self, relation: str) -> SqlAlchemySource:
        """The SQLAlchemy URL, engine options and table naming with which validation
        (Great Expectations) reads `relation`, seeing what this warehouse has committed."""
        ...

    def principal(self) -> str | None:
        """Who the warehouse authenticated (BigQuery: SESSION_USER(), the credentials'
        user or service account); None where the warehouse is no security boundary (an
        embedded file anyone who can open it can change)."""
        ...

    def close(self) -> None: ...


def profile_sql(
    relation: str,
    partition_field: str,
    columns: Sequence[tuple[str, bool]],
    aggregates: Callable[[str, bool], list[str]],
) -> str:
    """The one query of a `profile`: count(*), then each column's aggregates in the order
    `profiles_from_row` reads them (count(c); for a number its negatives, mean, p50, p99),
    as the backend spells them (`aggregates(column, numeric)`)."""
    parts = [a for name, numeric in columns for a in aggregates(name, numeric)]
    return (
        f"select count(*), {', '.join(parts)} from {relation} "
        f"where {partition_field} between $start and $end"
    )


def profiles_from_row(
    row: Sequence[Any], columns: Sequence[tuple[str, bool]]
) -> dict[str, ColumnProfile]:
    """Read back a profile query's one row: count(*), then per column count(c) and, for a
    numeric column, its negatives, mean, p50 and p99 (`profile` writes them in that order)."""
    total, index, out = int(row[0] or 0), 1, {}
    for name, numeric in columns:
        values = int(row[index] or 0)
        if numeric:
            negatives, mean, p50, p99 = row[index + 1 : index + 5]
            out[name] = ColumnProfile(
                total, total - values, True, int(negatives or 0), _float(mean), _float(p50),
                _float(p99),
            )  # fmt: skip
            index += 5
        else:
            out[name] = ColumnProfile(total, total - values)
            index += 1
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def quote_literal(value: str) -> str:
    """A single-quoted SQL string literal (only for values the orchestrator validated)."""
    return "'" + value.replace("'", "''") + "'"


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for offset in range(0, len(items), size):
        yield items[offset : offset + size]
