"""The embedded DuckDB warehouse: one file, no server, one writing process at a time."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from orchestrator.errors import BadInput, WorkFailed
from orchestrator.warehouse.base import (
    ColumnProfile,
    Params,
    PartitionStats,
    SqlAlchemySource,
    iter_chunks,
    profile_sql,
    profiles_from_row,
    quote_literal,
)

__all__ = ["DuckDBWarehouse", "PartitionStats", "connect", "default_path", "partition_stats"]

DEFAULT_PATH = "rideshare.duckdb"
# An in-memory database attached to the warehouse connection, for relations that live
# only while one command runs (a chunk being staged). Every cursor of the connection sees it.
SCRATCH_CATALOG = "backfill_scratch"
_DUCKDB_TYPES = {
    "string": "varchar",
    "int": "bigint",
    "float": "double",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
}
_ROWS_PER_INSERT = 500
# WAL size at which a commit also checkpoints (DuckDB's default is 16 MiB); a year of
# 10 M trips backfilled in 12 chunks leaves a WAL of ~80 MB.
CHECKPOINT_THRESHOLD = "1GiB"
_NUMERIC = re.compile(r"^(?:U?(?:TINY|SMALL|BIG|HUGE)?INT(?:EGER)?|DOUBLE|FLOAT|REAL|DECIMAL)")
_LOCK_CONFLICT = re.compile(r"Conflicting lock is held in .*\(PID (\d+)\)")


def default_path() -> Path:
    """The DuckDB file dbt's `duckdb` target writes to (same env var as profiles.yml)."""
    return Path(os.environ.get("RIDESHARE_DUCKDB_PATH", DEFAULT_PATH))


def wait_seconds() -> float:
    """`$BACKFILL_DUCKDB_WAIT_SECONDS` (default 10): how long to wait for a busy file."""
    raw = os.environ.get("BACKFILL_DUCKDB_WAIT_SECONDS", "").strip()
    if not raw:
        return 10.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # also refuses nan, which would wait forever
        raise BadInput(f"BACKFILL_DUCKDB_WAIT_SECONDS must be a number of seconds, got {raw!r}")
    return seconds


def open_file(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting a while if another process holds DuckDB's single-writer lock."""
    deadline = time.monotonic() + wait_seconds()
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            held_by = _LOCK_CONFLICT.search(str(exc))
            if held_by is None:
                raise WorkFailed(f"cannot open warehouse file {path}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise WorkFailed(
                    f"warehouse file {path} is in use by another process (PID {held_by.group(1)}); "
                    f"waited {wait_seconds():g}s. DuckDB allows one writing process: "
                    "retry when it finishes"
                ) from exc
            time.sleep(0.2)


@contextmanager
def connect(
    path: Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file for the duration of one operation."""
    con = open_file(path or default_path(), read_only=read_only)
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


class DuckDBWarehouse:
    """The Warehouse protocol on a DuckDB file held open for one command."""

    name = "duckdb"

    def __init__(self, path: Path | None = None, *, create: bool = True) -> None:
        self.path = path or default_path()
        self.namespace = f"duckdb://{self.path.name}"
        # Commands open an existing warehouse only: a mistyped path must not become a new,
        # empty warehouse that every read then reports as "nothing here".
        self.create = create
        self._con: duckdb.DuckDBPyConnection | None = None
        self._in_transaction = False

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            if not self.create and str(self.path) != ":memory:" and not self.path.exists():
                raise BadInput(
                    f"warehouse file {self.path} does not exist (RIDESHARE_DUCKDB_PATH); "
                    "build it with `make demo` or `dbt build`, or point RIDESHARE_DUCKDB_PATH "
                    "at your warehouse"
                )
            self._con = open_file(self.path)
            # DuckDB checkpoints (folds the WAL into the file, vacuuming deleted rows) at
            # every commit once the WAL passes 16 MiB: at each chunk of a large backfill
            # (publishing a year of 10 M trips in 12 chunks: 21.2 s, against 17.8 s with
            # one checkpoint at the end; bench/storage_bench.py). A commit is durable in
            # the WAL either way; the file is checkpointed when this connection closes,
            # or when the WAL passes this bound.
            self._con.execute(f"set checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def execute(self, sql: str, params: Params | None = None) -> None:
        self.con.execute(sql, dict(params) if params else None)

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, dict(params) if params else None).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all (nesting joins the outer one)."""
        if self._in_transaction:
            yield
            return
        self.con.execute("begin transaction")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self.con.execute("rollback")
            raise
        else:
            self.con.execute("commit")
        finally:
            self._in_transaction = False

    def ensure_schema(self, schema: str) -> None:
        self.con.execute(f"create schema if not exists {schema}")

    def create_table_if_missing(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        ddl = ", ".join(f"{name} {_DUCKDB_TYPES[kind]}" for name, kind in columns)
        self.con.execute(f"create table if not exists {table} ({ddl})")

    def add_column(self, table: str, column: str, kind: str) -> None:
        self.con.execute(
            f"alter table {table} add column if not exists {column} {_DUCKDB_TYPES[kind]}"
        )

    def relation_exists(self, relation: str) -> bool:
        rows = self.query(
            "select 1 from information_schema.tables "
            "where table_catalog = coalesce($c, current_database()) "
            "and table_schema = $s and table_name = $n",
            _name_params(relation),
        )
        return bool(rows)

    def columns(self, relation: str) -> list[str]:
        return [name for name, _ in self._column_types(relation)]

    def _column_types(self, relation: str) -> list[tuple[str, str]]:
        rows = self.query(
            "select column_name, data_type from information_schema.columns "
            "where table_catalog = coalesce($c, current_database()) "
            "and table_schema = $s and table_name = $n order by ordinal_position",
            _name_params(relation),
        )
        return [(str(name), str(kind)) for name, kind in rows]

    def transient_relation(self, relation: str) -> str:
        """Where to build a relation needed only by this command: the same name in an
        in-memory database attached to the connection. A staged chunk built there skips
        compressing and writing its rows to the file (a quarter of a chunk's cost at 10 M
        trips); a crash loses it, and a resume rebuilds an unpublished chunk anyway."""
        self.con.execute(f"attach if not exists ':memory:' as {SCRATCH_CATALOG}")
        schema = relation.rpartition(".")[0] or "main"
        self.con.execute(f"create schema if not exists {SCRATCH_CATALOG}.{schema}")
        return f"{SCRATCH_CATALOG}.{relation}"

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        names = list(rows[0])
        row_values = f"({', '.join('?' for _ in names)})"
        # Many rows per statement: a chunk records dozens (partition checksums, validation
        # results), and a statement per row costs ~1 ms each.
        for batch in iter_chunks(rows, _ROWS_PER_INSERT):
            self.con.execute(
                f"insert into {table} ({', '.join(names)}) "
                f"values {', '.join(row_values for _ in batch)}",
                [_to_db(row[n]) for row in batch for n in names],
            )

    def partition_stats(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[date, PartitionStats]:
        return partition_stats(self.con, relation, partition_field, start, end)

    def partition_rows(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[date, int]:
        rows = self.con.execute(
            f"select {partition_field}, count(*) from {relation} "
            f"where {partition_field} between $start and $end group by 1",
            {"start": start, "end": end},
        ).fetchall()
        return {row[0]: int(row[1]) for row in rows}

    def profile(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[str, ColumnProfile]:
        columns = [
            (name, bool(_NUMERIC.match(kind))) for name, kind in self._column_types(relation)
        ]
        if not columns:
            return {}
        sql = profile_sql(relation, partition_field, columns, _profile_aggregates)
        row = self.query(sql, {"start": start, "end": end})[0]
        return profiles_from_row(row, columns)

    def table_checksum(self, relation: str) -> tuple[int, str]:
        row = self.con.execute(
            f"select count(*), coalesce(sum(hash(t)::hugeint), 0)::varchar from {relation} as t"
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, "0")

    def estimate_rows_read(self, sql: str) -> int | None:
        """Sum of the optimizer's estimated cardinalities of every table scan in the plan."""
        try:
            plan = self.con.execute(f"explain (format json) {sql}").fetchall()
        except duckdb.Error as exc:  # e.g. a column the model reads no longer exists
            raise WorkFailed(
                f"the compiled SQL does not run on DuckDB: {_first_line(exc)}"
            ) from exc
        total = 0
        for _, text in plan:
            for node in json.loads(text):
                total += _scan_estimate(node)
        return total

    def dry_run_bytes(self, sql: str) -> int | None:
        """DuckDB does not bill by bytes scanned; `estimate_rows_read` is its estimate."""
        del sql
        return None

    def create_table_as(self, relation: str, sql: str, *, shaped_like: str | None = None) -> None:
        del shaped_like  # DuckDB tables have no partitioning to match
        self.con.execute(f"create or replace table {relation} as {sql}")

    def copy_range(
        self, source: str, target: str, partition_field: str, start: date, end: date
    ) -> int:
        params = {"start": start, "end": end}
        if not self.relation_exists(target):
            self.con.execute(f"create table {target} as select * from {source} limit 0")
        names = ", ".join(self.columns(target))
        self.con.execute(
            f"delete from {target} where {partition_field} between $start and $end", params
        )
        row = self.con.execute(
            f"insert into {target} ({names}) select {names} from {source} "
            f"where {partition_field} between $start and $end",
            params,
        ).fetchone()
        return int(row[0]) if row else 0

    def backup_range(
        self, source: str, backup: str, partition_field: str, start: date, end: date
    ) -> int:
        """`copy_range` into a backup, created on first use with its text columns stored
        uncompressed. A backup is written once and read only by a rollback or an export,
        and compressing text (DuckDB's FSST and dictionary analysis) is most of the cost
        of writing one: a year of 10 M trips in 20.7 s compressed, 9.8 s with text
        uncompressed, for 2.3x the space (bench/storage_bench.py)."""
        if not self.relation_exists(backup):
            ddl = ", ".join(
                _quote_identifier(name)
                + f" {kind}"
                + (" using compression uncompressed" if kind == "VARCHAR" else "")
                for name, kind in self._column_types(source)
            )
            self.con.execute(f"create table {backup} ({ddl})")
        return self.copy_range(source, backup, partition_field, start, end)

    def copy_partition(self, source: str, target: str, partition_field: str, day: date) -> None:
        """The partition's delete and insert in one transaction of their own."""
        names = ", ".join(self.columns(target))
        with self.transaction():
            self.delete_partition(target, partition_field, day)
            self.con.execute(
                f"insert into {target} ({names}) select {names} from {source} "
                f"where {partition_field} = $day",
                {"day": day},
            )

    def delete_partition(self, target: str, partition_field: str, day: date) -> None:
        self.con.execute(f"delete from {target} where {partition_field} = $day", {"day": day})

    def tag_relation(self, relation: str, labels: Mapping[str, str]) -> None:
        text = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        self.con.execute(f"comment on table {relation} is {quote_literal(text)}")

    def export_parquet(self, sql: str, path: str) -> int:
        try:
            self.con.execute(f"copy ({sql}) to {quote_literal(path)} (format parquet)")
        except duckdb.IOException as exc:  # e.g. a directory this user may not write
            raise WorkFailed(f"cannot write {path}: {_first_line(exc)}") from exc
        row = self.con.execute(
            f"select count(*) from read_parquet({quote_literal(path)})"
        ).fetchone()
        return int(row[0]) if row else 0

    def list_relations(self, schema: str) -> list[tuple[str, datetime | None]]:
        # DuckDB keeps no creation time; callers fall back to the audit store's times.
        rows = self.query(
            "select table_name from information_schema.tables "
            "where table_catalog = current_database() and table_schema = $s",
            {"s": schema},
        )
        return [(f"{schema}.{r[0]}", None) for r in rows]

    def principal(self) -> str | None:
        return None  # whoever can open the file can change anything in it

    def sqlalchemy_source(self, relation: str) -> SqlAlchemySource:
        """Connections that are cursors of this warehouse's own open connection.

        DuckDB lets one process open a file only through one database instance, and the
        orchestrator already holds it (a second `duckdb.connect` with duckdb-engine's config
        is refused), so every pooled connection is `con.cursor()`: a new connection to that
        same instance, with its own transactions, that sees what the orchestrator has
        committed and closes when the warehouse closes.

        Each one sets `search_path` to the relation's schema and the table is named
        unqualified: SQLAlchemy 2.1's column reflection fails on DuckDB (no
        `pg_catalog.pg_collation`) and GX's fallback then queries the bare table name.
        """
        from duckdb_engine import ConnectionWrapper

        con = self.con
        schema = relation.rpartition(".")[0] or "main"
        setup = f"set search_path = {quote_literal(schema)}"

        def connect() -> Any:
            cursor = con.cursor()
            cursor.execute(setup)
            return ConnectionWrapper(_BufferedDuckDB(cursor))  # type: ignore[arg-type]

        return SqlAlchemySource(
            key=f"{self.name}:{schema}",
            owner=con,
            url=f"duckdb:///{self.path}",
            engine_kwargs={"creator": connect},
            table_name=lambda name: name.rpartition(".")[2],
        )

    def drop_relation(self, relation: str) -> None:
        self.con.execute(f"drop table if exists {relation}")


def _name_params(relation: str) -> dict[str, str | None]:
    """Catalog (None: the warehouse file's), schema and table of a dotted relation name."""
    parts = relation.split(".")
    catalog = parts[-3] if len(parts) >= 3 else None
    schema = parts[-2] if len(parts) >= 2 else "main"
    return {"c": catalog, "s": schema, "n": parts[-1]}


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _profile_aggregates(name: str, numeric: bool) -> list[str]:
    c = _quote_identifier(name)
    if not numeric:
        return [f"count({c})"]
    return [
        f"count({c})",
        f"count(*) filter (where {c} < 0)",
        f"avg({c})::double",
        f"quantile_cont({c}, 0.5)::double",
        f"quantile_cont({c}, 0.99)::double",
    ]


def _scan_estimate(node: Mapping[str, Any]) -> int:
    total = 0
    name = str(node.get("name", ""))
    if "SCAN" in name and "DUMMY" not in name:
        extra = node.get("extra_info", {})
        estimate = extra.get("Estimated Cardinality") if isinstance(extra, dict) else None
        if estimate is not None:
            total += int(str(estimate).lstrip("~"))
    for child in node.get("children", []):
        total += _scan_estimate(child)
    return total


def _first_line(exc: Exception) -> str:
    """DuckDB's message without the SQL excerpt and caret lines it appends."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _to_db(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


class _BufferedDuckDB:
    """A duckdb connection whose `execute` reads the whole result before it returns.

    Works around great_expectations issue #11579 (GX 1.x with duckdb-engine returns no
    rows for any metric, so every expectation fails with an empty result). GX's
    `SqlAlchemyExecutionEngine.execute_query` does `with self.get_connection() as c:
    result = c.execute(query)` and calls `result.fetchall()` only after the block. Leaving
    the block returns the connection to the pool, which rolls it back; duckdb-engine runs
    every cursor on the one duckdb connection, and that rollback discards the pending
    result before GX reads it. Reading the rows inside `execute` makes the result
    independent of what happens to the connection afterwards, without changing any
    statement or transaction GX issues. The buffer stays small: GX's queries on a table
    asset return aggregates, one row (`LIMIT 1`) or at most `partial_unexpected_count`
    sample rows. `tests/unit/test_validate.py` proves a passing suite passes and a
    violated one fails, so a regression of this shows up as failures there.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._rows: list[Any] = []
        self.description: Any = None

    def execute(self, sql: str, parameters: Any = None) -> _BufferedDuckDB:
        if parameters is None:
            self._con.execute(sql)
        else:
            self._con.execute(sql, parameters)
        self.description = self._con.description
        self._rows = self._con.fetchall() if self.description else []
        return self

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int = 1) -> list[Any]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __getattr__(self, name: str) -> Any:  # begin, commit, rollback, close, ...
        return getattr(self._con, name)
