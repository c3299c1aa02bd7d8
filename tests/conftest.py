"""Shared fixtures: a small warehouse built once per test worker, copied for each test.

Every test gets its own real DuckDB file, built by the real dbt project from generated
bronze data; nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DAYS = 40
TEMPLATE_TRIPS_PER_DAY = 200
TEMPLATE_START = date(2024, 1, 1)


@pytest.fixture(scope="session")
def dbt_target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each xdist worker parses into its own dbt target path."""
    path = tmp_path_factory.mktemp("dbt_target")
    os.environ["BACKFILL_DBT_TARGET_PATH"] = str(path)
    return path


@pytest.fixture(scope="session")
def warehouse_template(tmp_path_factory: pytest.TempPathFactory, dbt_target_dir: Path) -> Path:
    """Bronze for 40 days, seeds, models, snapshots and tests built by `dbt build`."""
    from orchestrator.dbt import Dbt
    from orchestrator.demo.generate import generate_bronze
    from orchestrator.warehouse.duckdb import connect

    path = tmp_path_factory.mktemp("template") / "template.duckdb"
    os.environ["RIDESHARE_DUCKDB_PATH"] = str(path)
    with connect(path) as con:
        generate_bronze(
            con,
            days=TEMPLATE_DAYS,
            trips_per_day=TEMPLATE_TRIPS_PER_DAY,
            seed=7,
            start_date=TEMPLATE_START,
        )
    dbt = Dbt(REPO)
    # Unit tests with `input: this` need the incremental relation to exist already.
    dbt.invoke(["build", "--exclude-resource-type", "unit_test"])
    dbt.invoke(["test", "--select", "test_type:unit"])
    dbt.release_warehouse()
    with connect(path) as con:  # same DuckDB instance as dbt's: flush the WAL into the file
        con.execute("checkpoint")
    return path


@pytest.fixture
def warehouse(
    warehouse_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A private copy of the built warehouse; the env points dbt and the CLI at it."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(warehouse_template, path)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(path))
    monkeypatch.setenv("BACKFILL_TODAY", "2026-11-22")
    monkeypatch.setenv("OPENLINEAGE_DIR", str(tmp_path / "openlineage"))
    monkeypatch.delenv("BACKFILL_OPERATOR", raising=False)
    monkeypatch.delenv("BACKFILL_FAULT", raising=False)
    yield path
