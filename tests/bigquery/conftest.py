"""The BigQuery suite: the real orchestrator and dbt project against a local BigQuery emulator.

The emulator (bqemulator, built by `make bqemu`) starts once per test session on free
loopback ports and stops at the end. A test that cannot reach it fails; nothing skips.
Bronze is generated with the DuckDB generator and loaded into the emulator as Parquet,
`dbt build --target bigquery` builds the project once, and every test starts from that
built state (the tables tests change are restored from a copy, the orchestrator's
datasets are dropped).

Under `pytest -n 2` each worker that runs a test here starts its own emulator and builds
its own copy (pytest-xdist 3.8's `loadgroup` cannot keep them on one worker: it renames
node ids through an attribute pytest 9 no longer reads).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import emulator
import pytest
from bq_support import PROJECT, BigQueryEnv

REPO = Path(__file__).resolve().parents[2]
BRONZE_START = date(2024, 1, 1)
BRONZE_DAYS = 24
BRONZE_TRIPS_PER_DAY = 40
BRONZE_SEED = 7
# Datasets the orchestrator creates; dropped before every test.
ORCHESTRATOR_DATASETS = (
    "backfill_audit",
    "backfill_staging",
    "backfill_backups",
    "backfill_snapshots",
)
# Tables a test may change (bronze corrections, backfills): restored before every test.
MUTABLE_TABLES = ("bronze.trip_events", "marts.fct_trips", "marts.fct_driver_daily_earnings")
# The build ledger dbt's own build wrote (macros/ledger/): its dataset is dropped with the
# orchestrator's, so it is kept beside the mutable tables and put back before every test.
LEDGER_TABLES = ("backfill_audit.build_ledger", "backfill_audit.ledger_runs")
TEMPLATE_DATASET = "test_template"

BRONZE_DDL = {
    "trip_events": """
        create table bronze.trip_events (
            event_id string not null, trip_id string not null, event_type string not null,
            event_at timestamp not null, driver_id string, rider_id string not null,
            city_id string not null, duration_seconds int64,
            surge_multiplier numeric(4, 2) not null, distance_miles float64,
            base_fare numeric(10, 2), distance_km float64, base_fare_cents int64,
            _ingested_date date not null, _batch_id string not null,
            _schema_version int64 not null
        )
        partition by date(event_at)
        cluster by trip_id
    """,
    "drivers": """
        create table bronze.drivers (
            driver_id string not null, full_name string not null, city_id string not null,
            rating numeric(3, 2) not null, tier string not null, vehicle_make string not null,
            vehicle_model string not null, vehicle_year int64 not null,
            signed_up_at timestamp not null, updated_at timestamp not null,
            _ingested_date date not null, _batch_id string not null,
            _schema_version int64 not null
        )
    """,
    "riders": """
        create table bronze.riders (
            rider_id string not null, full_name string not null, email string not null,
            city_id string not null, signed_up_at timestamp not null,
            _ingested_date date not null, _batch_id string not null,
            _schema_version int64 not null
        )
    """,
}


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulator.Emulator]:
    """One emulator for the session; failing to start it fails the tests that need it."""
    log = tmp_path_factory.mktemp("bqemu") / "bqemulator.log"
    try:
        emu = emulator.start(log, project=PROJECT)
    except emulator.EmulatorError as exc:
        pytest.fail(f"BigQuery emulator: {exc}", pytrace=False)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def bq_built(
    bq_emulator: emulator.Emulator, tmp_path_factory: pytest.TempPathFactory
) -> BigQueryEnv:
    """Bronze loaded into the emulator and the whole dbt project built with `dbt build`."""
    from orchestrator.dbt import Dbt
    from orchestrator.warehouse.bigquery import client_from_env

    setup = BigQueryEnv(bq_emulator, tmp_path_factory.mktemp("dbt_bigquery"))
    with pytest.MonkeyPatch.context() as mp:
        setup.apply(mp)
        client = client_from_env()
        load_bronze(client, tmp_path_factory.mktemp("bronze"))
        dbt = Dbt(REPO, "bigquery")
        # Unit tests with `input: this` need the incremental relation to exist already.
        dbt.invoke(["build", "--exclude-resource-type", "unit_test"])
        dbt.invoke(["test", "--select", "test_type:unit"])
        client.create_dataset(TEMPLATE_DATASET, exists_ok=True)
        for relation in MUTABLE_TABLES + LEDGER_TABLES:
            copy = f"{TEMPLATE_DATASET}.{relation.replace('.', '__')}"
            client.query(f"create table {copy} like {relation}").result()
            client.query(f"insert into {copy} select * from {relation}").result()
        client.close()
    return setup


def load_bronze(client: Any, work_dir: Path) -> None:
    """Generate bronze with the DuckDB generator and load it into the emulator as Parquet."""
    import duckdb
    from google.cloud import bigquery

    from orchestrator.demo.generate import generate_bronze

    with duckdb.connect(str(work_dir / "generated.duckdb")) as con:
        generate_bronze(
            con,
            days=BRONZE_DAYS,
            trips_per_day=BRONZE_TRIPS_PER_DAY,
            seed=BRONZE_SEED,
            start_date=BRONZE_START,
        )
        for table in BRONZE_DDL:
            con.execute(f"copy bronze.{table} to '{work_dir / table}.parquet' (format parquet)")
    client.create_dataset("bronze", exists_ok=True)
    for table, ddl in BRONZE_DDL.items():
        client.query(ddl).result()
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET, write_disposition="WRITE_APPEND"
        )
        with (work_dir / f"{table}.parquet").open("rb") as data:
            client.load_table_from_file(data, f"bronze.{table}", job_config=config).result()


@pytest.fixture
def bq(
    bq_built: BigQueryEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BigQueryEnv]:
    """The built warehouse as it was after `dbt build`, and the env pointing at it."""
    from orchestrator.warehouse.bigquery import client_from_env

    bq_built.apply(monkeypatch)
    monkeypatch.setenv("BACKFILL_TODAY", "2026-11-22")
    monkeypatch.setenv("OPENLINEAGE_DIR", str(tmp_path / "openlineage"))
    monkeypatch.delenv("BACKFILL_OPERATOR", raising=False)
    monkeypatch.delenv("BACKFILL_FAULT", raising=False)
    monkeypatch.delenv("BACKFILL_USD_PER_TIB", raising=False)
    client = client_from_env()
    for dataset in ORCHESTRATOR_DATASETS:
        client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
    client.create_dataset("backfill_audit")
    for relation in LEDGER_TABLES:
        copy = f"{TEMPLATE_DATASET}.{relation.replace('.', '__')}"
        client.query(f"create table {relation} like {copy}").result()
        client.query(f"insert into {relation} select * from {copy}").result()
    for relation in MUTABLE_TABLES:
        copy = f"{TEMPLATE_DATASET}.{relation.replace('.', '__')}"
        client.query(
            f"begin transaction; delete from {relation} where true; "
            f"insert into {relation} select * from {copy}; commit transaction;"
        ).result()
    table = client.get_table("marts.fct_trips")
    if table.labels:
        table.labels = dict.fromkeys(table.labels)
        client.update_table(table, ["labels"])
    client.close()
    yield bq_built
