"""The BigQuery warehouse: one GCP project, datasets as schemas, the official client.

Relations are `dataset.table` in the client's project. SQL comes in with `$name`
parameters (the protocol's dialect); a statement run on its own gets them as BigQuery
query parameters (`@name`), a statement inside `transaction()` gets them as typed
literals, because the transaction is sent as one script and scripts are where BigQuery
checks nothing else can interleave.

Transactions (the script itself is built by `bq_script.ScriptTransaction`). BigQuery
runs a multi-statement transaction inside one script
(`BEGIN TRANSACTION; ...; COMMIT TRANSACTION;`), and DDL on permanent tables is not
allowed inside it. So `transaction()` buffers every write (DML from `execute`,
`insert_rows`, the delete and insert of `copy_range`) and submits them as one script when
the block ends: the swap of a chunk and its audit rows commit together or not at all, and
an exception inside the block sends nothing. DDL (creating a missing table, staging
tables, drops) runs at once, as it would have to anyway. Label updates wait for the
commit. Reads inside the block see the block's own writes, as on DuckDB: a relation
written by `insert_rows` or `copy_range` is read through an overlay (the committed rows
minus the replaced range, plus the rows the script will write), so for example the
checksums of a freshly swapped range can be recorded in the same transaction.

Partition copies. A model with `publish: partition_copy` is published by
`copy_partition` (a copy job per partition decorator, atomic per partition, no bytes
billed) and `delete_partition`, outside any transaction; its staging table is created
with the target's partitioning and clustering (`create_table_as(..., shaped_like=)`).

Checksums. `partition_stats` sums FARM_FINGERPRINT(TO_JSON_STRING(row)) modulo 2^64 per
partition, as two exact INT64 sums of the fingerprint's 32-bit halves (a plain SUM of
fingerprints overflows INT64). Like DuckDB's sum of row hashes it ignores row order and
changes when a row changes, is lost or is duplicated.

Every job carries labels (`app`, `component` and, when the statement names one backfill,
`backfill_id`), so `INFORMATION_SCHEMA.JOBS` traces each query to its backfill.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.errors import BadInput, WorkFailed
from orchestrator.warehouse.base import (
    ColumnProfile,
    Params,
    PartitionStats,
    SqlAlchemySource,
    iter_chunks,
    profile_sql,
    profiles_from_row,
)
from orchestrator.warehouse.bq_script import (
    ScriptTransaction,
    date_literal,
    render_literal,
    to_db,
    translate_params,
    translate_types,
)

if TYPE_CHECKING:
    from google.cloud import bigquery

__all__ = ["BigQueryWarehouse", "client_from_env", "render_literal", "translate_params"]

DEFAULT_LOCATION = "US"
STAGING_DATASET = "backfill_staging"  # wap.STAGING_SCHEMA: staged chunks expire by themselves
STAGING_EXPIRATION_DAYS = 7
JOB_LABELS = {"app": "rideshare-backfills", "component": "orchestrator"}
# Table labels the orchestrator owns; tag_relation replaces all of them at once.
MANAGED_TABLE_LABELS = ("backfill_id", "git_commit", "rolled_back")
INSERT_BATCH_ROWS = 500

_BQ_TYPES = {
    "string": "STRING",
    "int": "INT64",
    "float": "FLOAT64",
    "bool": "BOOL",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}
# Schema field types as the API reports them -> the GoogleSQL type names.
_FIELD_TYPES = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "RECORD": "STRUCT",
}
_BACKFILL_ID = re.compile(r"(?<![a-z0-9])(bf_[0-9a-f]{12})(?![0-9a-f])")
_NUMERIC_TYPES = {"INT64", "FLOAT64", "NUMERIC", "BIGNUMERIC"}
_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def client_from_env() -> bigquery.Client:
    """A client for the project and credentials the dbt profile's `bigquery` target uses.

    BIGQUERY_PROJECT (required), BIGQUERY_LOCATION (default US), BIGQUERY_METHOD:
    `oauth` (default: Application Default Credentials, e.g. a service account via
    GOOGLE_APPLICATION_CREDENTIALS) or `oauth-secrets` (BIGQUERY_TOKEN, an access token),
    BIGQUERY_API_ENDPOINT (only for an emulator; else Google's endpoint).
    """
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    project = os.environ.get("BIGQUERY_PROJECT", "").strip()
    if not project:
        raise BadInput("BIGQUERY_PROJECT is not set: name the GCP project of the bigquery target")
    location = os.environ.get("BIGQUERY_LOCATION", "").strip() or DEFAULT_LOCATION
    method = os.environ.get("BIGQUERY_METHOD", "").strip() or "oauth"
    credentials: Any = None
    if method == "oauth-secrets":
        from google.oauth2.credentials import Credentials

        token = os.environ.get("BIGQUERY_TOKEN", "").strip()
        if not token:
            raise BadInput("BIGQUERY_METHOD is oauth-secrets but BIGQUERY_TOKEN is not set")
        credentials = Credentials(token=token)
    elif method != "oauth":
        raise BadInput(
            f"BIGQUERY_METHOD {method!r} is not supported by the orchestrator: use oauth "
            "(Application Default Credentials) or oauth-secrets (BIGQUERY_TOKEN)"
        )
    endpoint = os.environ.get("BIGQUERY_API_ENDPOINT", "").strip() or None
    return bigquery.Client(
        project=project,
        credentials=credentials,
        location=location,
        client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
        default_query_job_config=bigquery.QueryJobConfig(labels=dict(JOB_LABELS)),
    )


class BigQueryWarehouse:
    """The Warehouse protocol on one BigQuery project (see the module docstring)."""

    name = "bigquery"
    namespace = "bigquery"  # OpenLineage's namespace for BigQuery datasets

    def __init__(self, client: bigquery.Client | None = None) -> None:
        self._client = client
        self._txn: ScriptTransaction | None = None
        self._datasets: set[str] = set()
        self._tables: dict[str, set[str]] = {}  # dataset -> table ids, listed once
        self._schemas: dict[str, list[tuple[str, str]]] = {}  # relation -> (name, type)
        self._principal: str | None = None

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            self._client = client_from_env()
        return self._client

    @property
    def project(self) -> str:
        return str(self.client.project)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- running statements ------------------------------------------------------------
    def execute(self, sql: str, params: Params | None = None) -> None:
        sql = translate_types(sql)
        if self._txn is not None:
            self._txn.add_dml(sql, params)
            return
        self._run(sql, params)

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        sql = self._with_overlays(translate_types(sql))
        job = self._run(sql, params)
        return [tuple(_from_db(v) for v in row.values()) for row in job.result()]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together as one script, or not at all (nesting joins)."""
        if self._txn is not None:
            yield
            return
        txn = self._txn = ScriptTransaction()
        try:
            yield
        finally:
            self._txn = None
        if txn.statements:
            self._run(txn.script(), None)
        for action in txn.after_commit:
            action()

    def _run(self, sql: str, params: Params | None) -> bigquery.QueryJob:
        from google.api_core import exceptions
        from google.cloud import bigquery

        text, parameters = translate_params(sql, params)
        config = bigquery.QueryJobConfig(
            query_parameters=parameters, labels=_job_labels(sql, params)
        )
        try:
            job = self.client.query(text, job_config=config)
            job.result()
        except exceptions.GoogleAPIError as exc:
            raise WorkFailed(f"BigQuery job failed: {_message(exc)}") from exc
        return job

    # -- reads inside a transaction ------------------------------------------------------
    def _with_overlays(self, sql: str) -> str:
        return sql if self._txn is None else self._txn.with_overlays(sql)

    def _overlay_base(self, relation: str) -> str:
        return relation if self._txn is None else self._txn.overlay_base(relation)

    # -- schemas and tables --------------------------------------------------------------
    def ensure_schema(self, schema: str) -> None:
        """Create the dataset if missing. An existing one is only read, so a service account
        with Data Editor on pre-created datasets (and no project-wide role) suffices."""
        if schema in self._datasets:
            return
        from google.api_core import exceptions
        from google.cloud import bigquery

        try:
            self.client.get_dataset(schema)
        except exceptions.NotFound:
            dataset = bigquery.Dataset(f"{self.project}.{schema}")
            dataset.location = self.client.location or DEFAULT_LOCATION
            if schema == STAGING_DATASET:
                dataset.default_table_expiration_ms = STAGING_EXPIRATION_DAYS * 86_400_000
            self._api(lambda: self.client.create_dataset(dataset, exists_ok=True))
        except exceptions.GoogleAPIError as exc:
            raise WorkFailed(f"BigQuery call failed: {_message(exc)}") from exc
        self._datasets.add(schema)

    def create_table_if_missing(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        if self.relation_exists(table):
            return
        ddl = ", ".join(f"{name} {_BQ_TYPES[kind]}" for name, kind in columns)
        self._run(f"create table if not exists {table} ({ddl})", None)
        self._forget(table)

    def add_column(self, table: str, column: str, kind: str) -> None:
        self._run(f"alter table {table} add column if not exists {column} {_BQ_TYPES[kind]}", None)
        self._forget(table)

    def relation_exists(self, relation: str) -> bool:
        dataset, _, name = relation.rpartition(".")
        return name in self._tables_of(dataset)

    def _tables_of(self, dataset: str) -> set[str]:
        if dataset not in self._tables:
            from google.api_core import exceptions

            try:
                listed = self.client.list_tables(dataset)
                self._tables[dataset] = {t.table_id for t in listed}
            except exceptions.NotFound:
                return set()
            except exceptions.GoogleAPIError as exc:
                raise WorkFailed(f"BigQuery call failed: {_message(exc)}") from exc
        return self._tables[dataset]

    def _forget(self, relation: str) -> None:
        """Drop cached metadata of `relation` (after DDL changed it)."""
        self._tables.pop(relation.rpartition(".")[0], None)
        self._schemas.pop(relation, None)

    def _schema(self, relation: str) -> list[tuple[str, str]]:
        if relation not in self._schemas:
            from google.api_core import exceptions

            try:
                table = self.client.get_table(relation)
            except exceptions.NotFound:
                return []
            except exceptions.GoogleAPIError as exc:
                raise WorkFailed(f"BigQuery call failed: {_message(exc)}") from exc
            self._schemas[relation] = [
                (f.name, _FIELD_TYPES.get(f.field_type, f.field_type)) for f in table.schema
            ]
        return self._schemas[relation]

    def columns(self, relation: str) -> list[str]:
        return [name for name, _ in self._schema(relation)]

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        names = list(rows[0])
        types = dict(self._schema(table))
        missing = [n for n in names if n not in types]
        if missing:
            raise WorkFailed(f"{table} has no column(s) {', '.join(missing)}")
        for batch in iter_chunks(rows, INSERT_BATCH_ROWS):
            values = [
                "(" + ", ".join(render_literal(to_db(r[n]), types[n]) for n in names) + ")"
                for r in batch
            ]
            sql = f"insert into {table} ({', '.join(names)}) values {', '.join(values)}"
            if self._txn is None:
                self._run(sql, None)
                continue
            self._txn.statements.append(sql)
            selects = [f"select {v[1:-1]}" for v in values]
            base = self._overlay_base(table)
            self._txn.overlays[table] = " union all ".join(
                [f"select {', '.join(names)} from {base}", *selects]
            )

    # -- partitions and checksums ----------------------------------------------------------
    def partition_stats(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[date, PartitionStats]:
        rows = self.query(
            f"select {partition_field}, count(*), {_CHECKSUM_PARTS} from {relation} as t "
            f"where {partition_field} between $start and $end group by 1 order by 1",
            {"start": start, "end": end},
        )
        return {r[0]: PartitionStats(r[0], int(r[1]), _checksum(r[2], r[3])) for r in rows}

    def partition_rows(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[date, int]:
        """Rows per partition from INFORMATION_SCHEMA.PARTITIONS: metadata, no bytes billed."""
        dataset, _, table = relation.rpartition(".")
        rows = self.query(
            f"select partition_id, total_rows from {dataset}.INFORMATION_SCHEMA.PARTITIONS "
            "where table_name = $t and partition_id between $first and $last and total_rows > 0",
            {"t": table, "first": f"{start:%Y%m%d}", "last": f"{end:%Y%m%d}"},
        )
        out = {}
        for partition_id, total in rows:
            if str(partition_id).isdigit() and len(str(partition_id)) == 8:
                out[datetime.strptime(str(partition_id), "%Y%m%d").date()] = int(total)
        return out

    def profile(
        self, relation: str, partition_field: str, start: date, end: date
    ) -> dict[str, ColumnProfile]:
        """One scan of the range's columns; quantiles are APPROX_QUANTILES (BigQuery's
        percentiles over a sample, exact enough for a drift bound)."""
        columns = [(name, kind in _NUMERIC_TYPES) for name, kind in self._schema(relation)]
        if not columns:
            return {}
        sql = profile_sql(relation, partition_field, columns, _profile_aggregates)
        row = self.query(sql, {"start": start, "end": end})[0]
        return profiles_from_row(row, columns)

    def table_checksum(self, relation: str) -> tuple[int, str]:
        rows = self.query(f"select count(*), {_CHECKSUM_PARTS} from {relation} as t")
        return (int(rows[0][0]), _checksum(rows[0][1], rows[0][2])) if rows else (0, "0")

    def estimate_rows_read(self, sql: str) -> int | None:
        """BigQuery estimates bytes, not rows: see `dry_run_bytes`."""
        del sql
        return None

    def dry_run_bytes(self, sql: str) -> int | None:
        """Bytes the query would process (a dry-run job: free, nothing runs or is cached)."""
        from google.api_core import exceptions
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            dry_run=True, use_query_cache=False, labels=_job_labels(sql, None)
        )
        try:
            job = self.client.query(translate_types(sql), job_config=config)
        except exceptions.GoogleAPIError as exc:
            raise WorkFailed(f"BigQuery dry run failed: {_message(exc)}") from exc
        total = job.total_bytes_processed
        return None if total is None else int(total)

    # -- tables the orchestrator writes ----------------------------------------------------
    def transient_relation(self, relation: str) -> str:
        """Staged chunks stay in the staging dataset, whose tables expire by themselves."""
        return relation

    def create_table_as(self, relation: str, sql: str, *, shaped_like: str | None = None) -> None:
        options = self._layout_of(shaped_like) if shaped_like else ""
        if relation.rpartition(".")[0] == STAGING_DATASET:
            options += (
                " options (expiration_timestamp = timestamp_add(current_timestamp(), "
                f"interval {STAGING_EXPIRATION_DAYS} day))"
            )
        self._run(f"create or replace table {relation}{options} as (\n{sql}\n)", None)
        self._forget(relation)

    def _layout_of(self, relation: str) -> str:
        """The `partition by` and `cluster by` clauses that give a table the layout of
        `relation` (partition copies need the same day partitioning on both sides)."""
        table = self._api(lambda: self.client.get_table(relation))
        layout = ""
        partitioning = table.time_partitioning
        if partitioning is not None and partitioning.field:
            field = partitioning.field
            types = dict(self._schema(relation))
            layout += f" partition by {field if types.get(field) == 'DATE' else f'date({field})'}"
        if table.clustering_fields:
            layout += f" cluster by {', '.join(table.clustering_fields)}"
        return layout

    def copy_range(
        self, source: str, target: str, partition_field: str, start: date, end: date
    ) -> int:
        if not self.relation_exists(target):
            # Same columns, partitioning and clustering; DDL cannot run inside the script.
            self._run(f"create table if not exists {target} like {source}", None)
            self._forget(target)
        names = ", ".join(self.columns(target))
        in_range = f"{partition_field} between {date_literal(start)} and {date_literal(end)}"
        statements = [
            f"delete from {target} where {in_range}",
            f"insert into {target} ({names}) select {names} from {source} where {in_range}",
        ]
        copied = int(self.query(f"select count(*) from {source} where {in_range}")[0][0])
        if self._txn is None:
            self._run(ScriptTransaction(statements).script(), None)
            return copied
        self._txn.statements.extend(statements)
        self._txn.overlays[target] = (
            f"select {names} from {self._overlay_base(target)} "
            f"where {partition_field} is null or not ({in_range}) "
            f"union all select {names} from {self._overlay_base(source)} where {in_range}"
        )
        return copied

    def backup_range(
        self, source: str, backup: str, partition_field: str, start: date, end: date
    ) -> int:
        return self.copy_range(source, backup, partition_field, start, end)

    def copy_partition(self, source: str, target: str, partition_field: str, day: date) -> None:
        """A copy job `source$YYYYMMDD` -> `target$YYYYMMDD` with WRITE_TRUNCATE: BigQuery
        replaces the partition atomically and bills no bytes (the emulator has no
        partition decorators; tests/bigquery checks the job this sends)."""
        from google.cloud import bigquery

        del partition_field  # the decorator names the partition
        if self._txn is not None:
            raise WorkFailed("a partition copy job cannot be part of a BigQuery transaction")
        decorator = f"${day:%Y%m%d}"
        config = bigquery.CopyJobConfig(
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            labels=_job_labels(f"{source} {target}", None),
        )
        self._api(
            lambda: self.client.copy_table(
                f"{self.project}.{source}{decorator}",
                f"{self.project}.{target}{decorator}",
                job_config=config,
            ).result()
        )

    def delete_partition(self, target: str, partition_field: str, day: date) -> None:
        """A DML delete of the whole partition: BigQuery drops it without scanning bytes."""
        self.execute(f"delete from {target} where {partition_field} = $day", {"day": day})

    def drop_relation(self, relation: str) -> None:
        self._api(lambda: self.client.delete_table(relation, not_found_ok=True))
        self._forget(relation)

    def tag_relation(self, relation: str, labels: Mapping[str, str]) -> None:
        """Table labels for lineage; inside a transaction, applied once it commits."""

        def apply() -> None:
            table = self.client.get_table(relation)
            wanted: dict[str, str | None] = dict.fromkeys(MANAGED_TABLE_LABELS)
            wanted.update({_label(k): _label(v) for k, v in labels.items()})
            table.labels = wanted
            self.client.update_table(table, ["labels"])

        if self._txn is not None:
            self._txn.after_commit.append(lambda: self._api(apply))
        else:
            self._api(apply)

    def export_parquet(self, sql: str, path: str) -> int:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        job = self._run(self._with_overlays(translate_types(sql)), None)
        table = job.result().to_arrow(create_bqstorage_client=False)
        pq.write_table(table, path)
        return int(table.num_rows)

    def list_relations(self, schema: str) -> list[tuple[str, datetime | None]]:
        from google.api_core import exceptions

        try:
            listed = list(self.client.list_tables(schema))
        except exceptions.NotFound:
            return []
        except exceptions.GoogleAPIError as exc:
            raise WorkFailed(f"BigQuery call failed: {_message(exc)}") from exc
        return [(f"{schema}.{t.table_id}", _from_db(t.created)) for t in listed]

    def principal(self) -> str | None:
        """The authenticated user or service account, as BigQuery itself names it."""
        if self._principal is None:
            self._principal = str(self.query("select session_user()")[0][0])
        return self._principal

    def sqlalchemy_source(self, relation: str) -> SqlAlchemySource:
        """sqlalchemy-bigquery reusing this warehouse's client: same project, credentials,
        endpoint and labels; relations are named `dataset.table` as here."""
        if importlib.util.find_spec("sqlalchemy_bigquery") is None:
            raise WorkFailed(
                "validating on BigQuery needs the sqlalchemy-bigquery package (Great "
                "Expectations' BigQuery dialect); it is not installed"
            )
        return SqlAlchemySource(
            key=f"{self.name}:",
            owner=self,
            url=f"bigquery://{self.project}?user_supplied_client=True",
            engine_kwargs={"connect_args": {"client": self.client}},
            table_name=lambda name: name,
        )

    def _api(self, call: Callable[[], Any]) -> Any:
        from google.api_core import exceptions

        try:
            return call()
        except exceptions.GoogleAPIError as exc:
            raise WorkFailed(f"BigQuery call failed: {_message(exc)}") from exc


# Two exact INT64 sums: the low and high 32-bit halves of each row's fingerprint.
_FINGERPRINT = "farm_fingerprint(to_json_string(t))"
_CHECKSUM_PARTS = (
    f"coalesce(sum({_FINGERPRINT} & 4294967295), 0), "
    f"coalesce(sum(({_FINGERPRINT} >> 32) & 4294967295), 0)"
)


def _profile_aggregates(name: str, numeric: bool) -> list[str]:
    if not numeric:
        return [f"count({name})"]
    number = f"cast({name} as float64)"
    return [
        f"count({name})",
        f"countif({name} < 0)",
        f"avg({number})",
        f"approx_quantiles({number}, 100)[offset(50)]",
        f"approx_quantiles({number}, 100)[offset(99)]",
    ]


def _checksum(low: Any, high: Any) -> str:
    """The sum of the rows' unsigned 64-bit fingerprints, modulo 2^64, as text."""
    return str((int(high) * 2**32 + int(low)) % 2**64)


def _from_db(value: Any) -> Any:
    """Aware UTC timestamps come back naive, like DuckDB's TIMESTAMP (all audit times are UTC)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _job_labels(sql: str, params: Params | None) -> dict[str, str]:
    """The orchestrator's job labels, plus `backfill_id` when the job names exactly one."""
    labels = dict(JOB_LABELS)
    text = sql + " " + " ".join(str(v) for v in (params or {}).values())
    found = set(_BACKFILL_ID.findall(text))
    if len(found) == 1:
        labels["backfill_id"] = found.pop()
    return labels


def _label(value: str) -> str:
    """A valid BigQuery label key or value: lower case letters, digits, `_` and `-`, ≤ 63."""
    return _LABEL_BAD.sub("_", str(value).lower())[:63]


def _message(exc: Exception) -> str:
    """One line of a Google API error (its first message, without the job dump)."""
    message = getattr(exc, "message", None) or str(exc)
    return " ".join(str(message).split("\n\nLocation:")[0].split())
