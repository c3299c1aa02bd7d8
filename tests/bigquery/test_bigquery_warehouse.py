"""The BigQuery warehouse backend: its SQL translation, transactions, labels and dry runs.

Transactions, overlays, checksums and table labels run on the emulator. Dry-run byte
counts are not emulated (the emulator answers 0), so they are tested at the client's
request/response layer: the request the client sends, and a response as real BigQuery
shapes it, with the orchestrator's arithmetic and budget refusal on top.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from bq_support import REPO, BigQueryEnv, backfill, planned, query

from orchestrator.errors import WorkFailed
from orchestrator.warehouse.bigquery import BigQueryWarehouse, _checksum
from orchestrator.warehouse.bq_script import (
    outside_quotes,
    render_literal,
    translate_params,
    translate_types,
)

TIB = 2**40


# -- pure translation --------------------------------------------------------------------
def test_dollar_parameters_become_typed_query_parameters_outside_quotes() -> None:
    sql, params = translate_params(
        "select '$not' as a, `$x` from t where d between $start and $end and id = $id",
        {"start": date(2024, 1, 1), "end": date(2024, 1, 2), "id": "bf_0123456789ab"},
    )
    assert sql == "select '$not' as a, `$x` from t where d between @start and @end and id = @id"
    assert [(p.name, p.type_, p.value) for p in params] == [
        ("start", "DATE", date(2024, 1, 1)),
        ("end", "DATE", date(2024, 1, 2)),
        ("id", "STRING", "bf_0123456789ab"),
    ]


@pytest.mark.parametrize(
    ("value", "sql_type", "literal"),
    [
        (None, "INT64", "cast(null as INT64)"),
        ("it's a \\ \n test", "STRING", "'it\\'s a \\\\ \\n test'"),
        (True, "BOOL", "true"),
        (12, "INT64", "12"),
        (0.1, "FLOAT64", "cast('0.1' as float64)"),
        (float("nan"), "FLOAT64", "cast('nan' as float64)"),
        (date(2024, 1, 2), "DATE", "date '2024-01-02'"),
        (
            datetime(2024, 1, 2, 3, 4, 5, 6),
            "TIMESTAMP",
            "timestamp '2024-01-02 03:04:05.000006+00'",
        ),
    ],
)
def test_literals_are_typed_and_escaped(value: Any, sql_type: str, literal: str) -> None:
    assert render_literal(value, sql_type) == literal


def test_varchar_casts_are_translated_only_outside_quotes() -> None:
    assert translate_types("select cast(x as varchar), 'as varchar' -- as varchar\n") == (
        "select cast(x as string), 'as varchar' -- as varchar\n"
    )
    assert outside_quotes("a 'b' c", str.upper) == "A 'b' C"


def test_checksum_is_the_sum_of_fingerprints_modulo_2_to_the_64() -> None:
    fingerprints = [-5528939962900187677, 726251031084607579, 726251031084607579]
    unsigned = [f % 2**64 for f in fingerprints]
    low = sum(u & 0xFFFFFFFF for u in unsigned)
    high = sum(u >> 32 for u in unsigned)
    assert _checksum(low, high) == str(sum(unsigned) % 2**64)


# -- the emulator ------------------------------------------------------------------------
@pytest.fixture
def wh(bq: BigQueryEnv) -> Any:
    warehouse = BigQueryWarehouse()
    warehouse.ensure_schema("wh_test")
    warehouse.execute("drop table if exists wh_test.facts")
    warehouse.execute("drop table if exists wh_test.source")
    for table in ("facts", "source"):
        warehouse.execute(
            f"create table wh_test.{table} (d date, id string, v int64) partition by d"
        )
    warehouse._forget("wh_test.facts")
    warehouse._forget("wh_test.source")
    warehouse.insert_rows(
        "wh_test.facts",
        [{"d": date(2024, 1, day), "id": f"f{day}", "v": day} for day in (1, 2, 3)],
    )
    warehouse.insert_rows(
        "wh_test.source",
        [
            {"d": date(2024, 1, 2), "id": "s2", "v": 20},
            {"d": date(2024, 1, 2), "id": "t2", "v": 21},
        ],
    )
    yield warehouse
    warehouse.close()


def test_a_duplicated_row_changes_the_checksum(wh: BigQueryWarehouse) -> None:
    before = wh.partition_stats("wh_test.facts", "d", date(2024, 1, 1), date(2024, 1, 3))
    wh.insert_rows("wh_test.facts", [{"d": date(2024, 1, 2), "id": "f2", "v": 2}])
    after = wh.partition_stats("wh_test.facts", "d", date(2024, 1, 1), date(2024, 1, 3))
    assert after[date(2024, 1, 2)].rows == 2
    assert after[date(2024, 1, 2)].checksum != before[date(2024, 1, 2)].checksum
    assert after[date(2024, 1, 1)] == before[date(2024, 1, 1)]


def test_a_transaction_commits_its_writes_as_one_script_and_reads_them_first(
    wh: BigQueryWarehouse,
) -> None:
    day = date(2024, 1, 2)
    with wh.transaction():
        copied = wh.copy_range("wh_test.source", "wh_test.facts", "d", day, day)
        wh.insert_rows("wh_test.source", [{"d": day, "id": "u2", "v": 22}])
        inside = wh.partition_stats("wh_test.facts", "d", date(2024, 1, 1), date(2024, 1, 3))
        counted = wh.query("select count(*) from wh_test.source")[0][0]
        outside_view = BigQueryWarehouse().query("select id from wh_test.facts order by id")
    assert copied == 2
    assert counted == 3  # the insert above, seen inside the transaction
    assert outside_view == [("f1",), ("f2",), ("f3",)]  # nothing committed before the end
    assert wh.query("select id from wh_test.facts order by id") == [
        ("f1",),
        ("f3",),
        ("s2",),
        ("t2",),
    ]
    assert wh.partition_stats("wh_test.facts", "d", date(2024, 1, 1), date(2024, 1, 3)) == inside


def test_a_failing_transaction_changes_nothing(wh: BigQueryWarehouse) -> None:
    before = wh.query("select id from wh_test.facts order by id")
    with pytest.raises(RuntimeError), wh.transaction():
        wh.copy_range("wh_test.source", "wh_test.facts", "d", date(2024, 1, 2), date(2024, 1, 2))
        raise RuntimeError("boom")  # nothing was sent
    with pytest.raises(WorkFailed), wh.transaction():
        wh.copy_range("wh_test.source", "wh_test.facts", "d", date(2024, 1, 2), date(2024, 1, 2))
        wh.execute(
            "insert into wh_test.facts (d, id, v) select $d, 'x', cast(error('boom') as int64)",
            {"d": date(2024, 1, 2)},
        )
    assert wh.query("select id from wh_test.facts order by id") == before


def test_a_read_after_an_opaque_write_in_a_transaction_is_refused(wh: BigQueryWarehouse) -> None:
    refused = pytest.raises(WorkFailed, match=r"cannot read wh_test\.facts after changing it")
    with refused, wh.transaction():
        wh.execute("delete from wh_test.facts where id = $id", {"id": "f1"})
        wh.query("select count(*) from wh_test.facts")


def test_export_parquet_writes_the_rows_of_a_query(wh: BigQueryWarehouse, tmp_path: Path) -> None:
    import duckdb

    out = tmp_path / "facts.parquet"
    assert wh.export_parquet("select * from wh_test.facts where v > 1", str(out)) == 2
    with duckdb.connect() as con:
        rows = con.execute(f"select id, v from read_parquet('{out}') order by id").fetchall()
    assert rows == [("f2", 2), ("f3", 3)]


def test_tag_relation_replaces_the_orchestrators_labels_after_commit(
    wh: BigQueryWarehouse,
) -> None:
    wh.tag_relation("wh_test.facts", {"backfill_id": "bf_0123456789ab", "rolled_back": "true"})
    with wh.transaction():
        wh.tag_relation("wh_test.facts", {"backfill_id": "bf_ba9876543210", "git_commit": "AB12"})
        assert wh.client.get_table("wh_test.facts").labels["backfill_id"] == "bf_0123456789ab"
    assert wh.client.get_table("wh_test.facts").labels == {
        "backfill_id": "bf_ba9876543210",
        "git_commit": "ab12",
    }


def test_every_job_is_labelled_with_its_backfill(
    wh: BigQueryWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _record_job_requests(monkeypatch)
    wh.query("select count(*) from wh_test.facts where id <> $id", {"id": "bf_0123456789ab"})
    wh.query("select 1")
    labels = [r["configuration"]["labels"] for r in sent]
    assert labels == [
        {
            "app": "rideshare-backfills",
            "component": "orchestrator",
            "backfill_id": "bf_0123456789ab",
        },
        {"app": "rideshare-backfills", "component": "orchestrator"},
    ]


# -- dry runs: the request/response layer ----------------------------------------------
class _FakeBigQuery(requests.Session):
    """Answers jobs.insert as real BigQuery answers a dry run, and records the request."""

    is_mtls = False

    def __init__(self, total_bytes: int) -> None:
        super().__init__()
        self.total_bytes = total_bytes
        self.requests: list[dict[str, Any]] = []

    def request(self, method: str, url: str, data: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        body = json.loads(data) if data else {}
        self.requests.append({"method": method, "url": url, "body": body})
        resource = {
            **body,
            "status": {"state": "DONE"},
            "statistics": {
                "totalBytesProcessed": str(self.total_bytes),
                "query": {"totalBytesProcessed": str(self.total_bytes)},
            },
        }
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(resource).encode()
        response.headers["Content-Type"] = "application/json"
        return response


def test_dry_run_bytes_sends_a_dry_run_job_and_reads_the_bytes() -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    http = _FakeBigQuery(total_bytes=3 * TIB)
    client = bigquery.Client(project="p", credentials=AnonymousCredentials(), _http=http)
    wh = BigQueryWarehouse(client)
    assert wh.dry_run_bytes("select * from backfill_staging.fct_trips__bf_0123456789ab__c001") == (
        3 * TIB
    )
    (sent,) = http.requests
    assert sent["method"] == "POST" and sent["url"].endswith("/projects/p/jobs?prettyPrint=false")
    config = sent["body"]["configuration"]
    assert config["dryRun"] is True
    assert config["query"]["useQueryCache"] is False
    assert config["labels"]["backfill_id"] == "bf_0123456789ab"


def test_dry_run_reports_bytes_and_cost_and_refuses_a_plan_over_budget(
    bq: BigQueryEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gib = 2**30
    _answer_dry_runs_with(monkeypatch, 300 * gib)  # what real BigQuery would estimate
    monkeypatch.setenv("BACKFILL_USD_PER_TIB", "5")
    plan_id = planned("2024-01-10", "2024-01-16", "--chunk-days", "4")
    report = backfill("dry-run", plan_id, "--json")
    assert report.exit_code == 0, report.stderr
    assert [c["bytes_processed"] for c in report.json()["chunks"]] == [300 * gib, 300 * gib]
    assert report.json()["bytes_processed"] == 600 * gib
    assert report.json()["cost_usd"] == round(600 / 1024 * 5, 4)

    project = _project_with_budget(tmp_path / "project", max_bytes=500 * gib)
    plan_id = planned("2024-01-10", "2024-01-16", "--chunk-days", "4", project_dir=project)
    refused = backfill("dry-run", plan_id, project_dir=project)
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"Error: plan {plan_id} would process 600.0 GiB (644,245,094,400 bytes) for fct_trips, "
        "over its meta.backfill.max_bytes of 500.0 GiB (536,870,912,000 bytes); narrow the "
        "range or raise max_bytes\n"
    )
    assert query(f"select ok from backfill_audit.dry_runs where backfill_id = '{plan_id}'") == [
        (False,)
    ]
    approve = backfill("approve", plan_id, "--approver", "bob", project_dir=project)
    assert approve.exit_code == 2
    assert "has no successful dry run" in approve.stderr


def _record_job_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    from google.cloud.bigquery import client as client_module

    sent: list[dict[str, Any]] = []
    original = client_module.Client._call_api

    def call_api(self: Any, retry: Any, span_name: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("method") == "POST" and str(kwargs.get("path", "")).endswith("/jobs"):
            sent.append(kwargs["data"])
        return original(self, retry, span_name=span_name, **kwargs)

    monkeypatch.setattr(client_module.Client, "_call_api", call_api)
    return sent


def _answer_dry_runs_with(monkeypatch: pytest.MonkeyPatch, total_bytes: int) -> None:
    """The emulator answers 0 bytes; put real BigQuery's figure in its dry-run responses."""
    from google.cloud.bigquery import client as client_module

    original = client_module.Client._call_api

    def call_api(self: Any, retry: Any, span_name: Any = None, **kwargs: Any) -> Any:
        resource = original(self, retry, span_name=span_name, **kwargs)
        data = kwargs.get("data") or {}
        if isinstance(data, dict) and data.get("configuration", {}).get("dryRun"):
            statistics = resource.setdefault("statistics", {})
            statistics["totalBytesProcessed"] = str(total_bytes)
            statistics.setdefault("query", {})["totalBytesProcessed"] = str(total_bytes)
        return resource

    monkeypatch.setattr(client_module.Client, "_call_api", call_api)


def _project_with_budget(directory: Path, max_bytes: int) -> Path:
    """A copy of the dbt project whose fct_trips declares meta.backfill.max_bytes."""
    for entry in ("models", "macros", "seeds", "snapshots", "tests/dbt"):
        shutil.copytree(REPO / entry, directory / entry)
    for name in ("dbt_project.yml", "profiles.yml.example"):
        shutil.copy(REPO / name, directory / name)
    shutil.copy(REPO / "profiles.yml.example", directory / "profiles.yml")
    models = directory / "models" / "marts" / "core" / "_core__models.yml"
    text = models.read_text()
    marker = "          critical: true\n"
    assert marker in text
    models.write_text(text.replace(marker, marker + f"          max_bytes: {max_bytes}\n", 1))
    return directory


# -- publish: partition_copy --------------------------------------------------------------
def test_a_table_shaped_like_another_gets_its_day_partitioning(wh: BigQueryWarehouse) -> None:
    wh.create_table_as(
        "wh_test.shaped", "select * from wh_test.source", shaped_like="wh_test.facts"
    )
    shaped = wh.client.get_table("wh_test.shaped")
    assert (shaped.time_partitioning.field, shaped.time_partitioning.type_) == ("d", "DAY")
    assert wh.query("select id from wh_test.shaped order by id") == [("s2",), ("t2",)]


class _FakeTables(requests.Session):
    """Answers tables.get with one table resource as real BigQuery shapes it."""

    is_mtls = False

    def __init__(self, resource: dict[str, Any]) -> None:
        super().__init__()
        self.resource = resource

    def request(self, method: str, url: str, data: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        assert method == "GET" and "/tables/" in url, (method, url)
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(self.resource).encode()
        response.headers["Content-Type"] = "application/json"
        return response


@pytest.mark.parametrize(
    ("partition_type", "layout"),
    [
        ("DATE", " partition by trip_date cluster by city_id, driver_id"),
        ("TIMESTAMP", " partition by date(trip_date) cluster by city_id, driver_id"),
    ],
)
def test_the_layout_copied_includes_the_clustering(partition_type: str, layout: str) -> None:
    """The emulator keeps no clustering, so the table metadata comes as BigQuery sends it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    resource = {
        "tableReference": {"projectId": "p", "datasetId": "marts", "tableId": "fct_trips"},
        "schema": {
            "fields": [
                {"name": "trip_id", "type": "STRING"},
                {"name": "trip_date", "type": partition_type},
            ]
        },
        "timePartitioning": {"type": "DAY", "field": "trip_date"},
        "clustering": {"fields": ["city_id", "driver_id"]},
    }
    client = bigquery.Client(
        project="p", credentials=AnonymousCredentials(), _http=_FakeTables(resource)
    )
    assert BigQueryWarehouse(client)._layout_of("marts.fct_trips") == layout


def test_delete_partition_empties_exactly_that_day(wh: BigQueryWarehouse) -> None:
    wh.delete_partition("wh_test.facts", "d", date(2024, 1, 2))
    assert wh.partition_rows("wh_test.facts", "d", date(2024, 1, 1), date(2024, 1, 3)) == {
        date(2024, 1, 1): 1,
        date(2024, 1, 3): 1,
    }


def test_copy_partition_sends_a_truncating_copy_job_of_that_partition() -> None:
    """Partition decorators are not emulated: check the copy job the client sends."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    http = _FakeBigQuery(total_bytes=0)
    client = bigquery.Client(project="p", credentials=AnonymousCredentials(), _http=http)
    wh = BigQueryWarehouse(client)
    wh.copy_partition(
        "backfill_staging.fct_trips__bf_0123456789ab__c001",
        "marts.fct_trips",
        "trip_date",
        date(2024, 2, 3),
    )
    sent = http.requests[0]
    assert sent["method"] == "POST" and sent["url"].endswith("/projects/p/jobs?prettyPrint=false")
    config = sent["body"]["configuration"]
    assert config["copy"] == {
        "sourceTables": [
            {
                "projectId": "p",
                "datasetId": "backfill_staging",
                "tableId": "fct_trips__bf_0123456789ab__c001$20240203",
            }
        ],
        "destinationTable": {
            "projectId": "p",
            "datasetId": "marts",
            "tableId": "fct_trips$20240203",
        },
        "writeDisposition": "WRITE_TRUNCATE",
    }
    assert config["labels"]["backfill_id"] == "bf_0123456789ab"
    refused = pytest.raises(WorkFailed, match="cannot be part of a BigQuery transaction")
    with refused, wh.transaction():
        wh.copy_partition("a.b", "c.d", "trip_date", date(2024, 2, 3))
