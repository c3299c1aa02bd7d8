"""How the DuckDB warehouse writes: backups stored for write speed, one checkpoint per command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from orchestrator.warehouse.duckdb import DuckDBWarehouse, partition_stats

DAYS = [date(2024, 1, d) for d in (1, 2, 3)]
MiB = 2**20


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.execute("create schema s")
    warehouse.execute(
        "create table s.facts as select date '2024-01-01' + (i % 3)::int as d, "
        "'trip-' || i as id, i % 7 as n, (i / 100)::decimal(10, 2) as amount "
        "from range(30000) as r(i)"
    )
    yield warehouse
    warehouse.close()


def storage(path: Path, relation: str) -> set[tuple[str, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select column_name, compression from pragma_storage_info(?) "
            "where segment_type <> 'VALIDITY'",
            [relation],
        ).fetchall()
    return {(str(column), str(compression)) for column, compression in rows}


def test_a_backup_stores_text_uncompressed_and_holds_the_range_exactly(
    wh: DuckDBWarehouse,
) -> None:
    wh.execute("create schema b")
    copied = wh.backup_range("s.facts", "b.facts__bf_1", "d", DAYS[1], DAYS[2])
    wh.backup_range("s.facts", "b.facts__bf_1", "d", DAYS[1], DAYS[2])  # a resume: no doubles
    backed_up = partition_stats(wh.con, "b.facts__bf_1", "d")
    assert copied == 20000
    assert backed_up == partition_stats(wh.con, "s.facts", "d", DAYS[1], DAYS[2])
    assert wh.query(
        "select data_type from information_schema.columns where table_name = "
        "'facts__bf_1' order by ordinal_position"
    ) == [("DATE",), ("VARCHAR",), ("BIGINT",), ("DECIMAL(10,2)",)]
    path = wh.path
    wh.close()
    compression = storage(path, "b.facts__bf_1")
    assert ("id", "Uncompressed") in compression
    assert {c for name, c in compression if name == "id"} == {"Uncompressed"}
    # Only text is stored for speed; the production table keeps DuckDB's choice.
    assert ("id", "Uncompressed") not in storage(path, "s.facts")


CHILD = """
import os, signal, sys
from pathlib import Path
from orchestrator.warehouse.duckdb import DuckDBWarehouse

wh = DuckDBWarehouse(Path(sys.argv[1]))
wh.execute("create table t as select range as i from range(3000000)")
wh.execute("checkpoint")
for k in range(6):  # each commit logs ~4.5 MB of deleted row ids
    with wh.transaction():
        wh.execute(f"delete from t where i % 6 = {k} and i < 3000000")
        wh.execute(f"insert into t select 3000000 + {k}")
print(os.path.getsize(sys.argv[1] + ".wal"), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_commits_wait_for_one_checkpoint_and_survive_a_kill(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    # Past DuckDB's default 16 MiB a commit would have checkpointed and emptied the WAL.
    assert int(child.stdout) > 20 * MiB
    wh = DuckDBWarehouse(db)  # replays the WAL: every commit is there
    assert wh.query("select count(*), count(*) filter (where i >= 3000000) from t") == [(6, 6)]
    wh.close()
    assert not Path(f"{db}.wal").exists()  # closing folded the WAL into the file
