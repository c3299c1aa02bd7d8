"""The embedded DuckDB warehouse: one file, no server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

DEFAULT_PATH = "rideshare.duckdb"


def default_path() -> Path:
    """The DuckDB file dbt's `duckdb` target writes to (same env var as profiles.yml)."""
    return Path(os.environ.get("RIDESHARE_DUCKDB_PATH", DEFAULT_PATH))


@dataclass(frozen=True)
class PartitionStats:
    """Row count and an order-independent checksum of every row of one partition."""

    partition: date
    rows: int
    checksum: str


@contextmanager
def connect(path: Path | None = None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file for the duration of one operation."""
    con = duckdb.connect(str(path or default_path()), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def partition_stats(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    partition_field: str,
    start: date | None = None,
    end: date | None = None,
) -> dict[date, PartitionStats]:
    """Rows and checksum per partition of `relation`, optionally within [start, end].

    The checksum sums a 64-bit hash of each whole row, so it ignores row order but
    changes when any value changes or a row is duplicated or lost.
    """
    where = ""
    params: list[object] = []
    if start is not None and end is not None:
        where = f"where {partition_field} between ? and ?"
        params = [start, end]
    rows = con.execute(
        f"""
        select {partition_field} as partition_value,
               count(*) as row_count,
               coalesce(sum(hash(t)::hugeint), 0)::varchar as checksum
        from {relation} as t
        {where}
        group by 1
        order by 1
        """,
        params,
    ).fetchall()
    return {row[0]: PartitionStats(row[0], int(row[1]), str(row[2])) for row in rows}
