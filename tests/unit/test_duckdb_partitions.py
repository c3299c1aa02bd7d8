"""DuckDB's per-partition publish (`publish: partition_copy`) on a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from orchestrator.warehouse.duckdb import DuckDBWarehouse

DAYS = [date(2024, 1, d) for d in (1, 2, 3)]


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.execute("create schema s")
    warehouse.execute("create table s.facts (d date, id varchar, v integer)")
    warehouse.execute("create table s.staged (d date, id varchar, v integer)")
    warehouse.execute(
        "insert into s.facts values ('2024-01-01', 'f1', 1), ('2024-01-02', 'f2', 2), "
        "('2024-01-03', 'f3', 3)"
    )
    warehouse.execute(
        "insert into s.staged values ('2024-01-02', 's2', 20), ('2024-01-02', 't2', 21), "
        "('2024-01-03', 's3', 30)"
    )
    yield warehouse
    warehouse.close()


def ids(wh: DuckDBWarehouse) -> list[tuple[object, ...]]:
    return wh.query("select d, id from s.facts order by d, id")


def test_copy_partition_replaces_that_day_only(wh: DuckDBWarehouse) -> None:
    wh.copy_partition("s.staged", "s.facts", "d", DAYS[1])
    assert ids(wh) == [(DAYS[0], "f1"), (DAYS[1], "s2"), (DAYS[1], "t2"), (DAYS[2], "f3")]
    wh.copy_partition("s.staged", "s.facts", "d", DAYS[1])  # a resume redoes it: no change
    assert ids(wh) == [(DAYS[0], "f1"), (DAYS[1], "s2"), (DAYS[1], "t2"), (DAYS[2], "f3")]


def test_delete_partition_empties_that_day_only(wh: DuckDBWarehouse) -> None:
    wh.delete_partition("s.facts", "d", DAYS[0])
    assert ids(wh) == [(DAYS[1], "f2"), (DAYS[2], "f3")]


def test_a_failed_partition_copy_leaves_the_partition_as_it_was(wh: DuckDBWarehouse) -> None:
    wh.execute("create table s.bad as select d, id, 'not a number' as v from s.staged")
    with pytest.raises(duckdb.ConversionException):  # the insert fails after the delete
        wh.copy_partition("s.bad", "s.facts", "d", DAYS[2])
    assert ids(wh) == [(DAYS[0], "f1"), (DAYS[1], "f2"), (DAYS[2], "f3")]
