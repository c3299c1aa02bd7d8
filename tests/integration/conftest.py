"""Fixtures for tests of the dbt project itself: the real project, run in-process with
dbtRunner against a real DuckDB file built from generated bronze data.

`dbt_built` builds once per module (per xdist worker); `dbt_project` gives each test a
private copy of that warehouse, so tests may append to bronze and rebuild freely.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BRONZE_START = date(2024, 1, 1)
BRONZE_DAYS = 20
BRONZE_TRIPS_PER_DAY = 200
BRONZE_SEED = 11


@dataclass(frozen=True)
class DbtProject:
    """The repo's dbt project bound to one DuckDB file and one work directory."""

    db_path: Path
    work_dir: Path

    @property
    def target_path(self) -> Path:
        return self.work_dir / "target"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "logs"

    @property
    def profiles_dir(self) -> Path:
        """The repo root when `make` has copied profiles.yml, else a copy of the example."""
        if (REPO_ROOT / "profiles.yml").exists():
            return REPO_ROOT
        fallback = self.work_dir / "profiles"
        fallback.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / "profiles.yml.example", fallback / "profiles.yml")
        return fallback

    def invoke(self, *args: str, dbt_vars: dict[str, Any] | None = None) -> Any:
        """Run one dbt command in this process; returns dbt's `dbtRunnerResult`.

        No DuckDB connection may be open on the file meanwhile (use `sql()`, which
        closes its connection).
        """
        from dbt.cli.main import dbtRunner

        argv = [
            *args,
            "--project-dir", str(REPO_ROOT),
            "--profiles-dir", str(self.profiles_dir),
            "--target", "duckdb",
            "--target-path", str(self.target_path),
            "--log-path", str(self.log_path),
        ]  # fmt: skip
        if dbt_vars is not None:
            argv += ["--vars", json.dumps(dbt_vars)]
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RIDESHARE_DUCKDB_PATH", str(self.db_path))
            env.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            return dbtRunner().invoke(argv)

    @staticmethod
    def failure_text(result: Any) -> str:
        """Every error message of a failed dbtRunner invocation, as one string."""
        messages = []
        if result.exception is not None:
            messages.append(str(result.exception))
        for node_result in getattr(result.result, "results", None) or []:
            if str(node_result.status) in ("error", "fail") and node_result.message:
                messages.append(str(node_result.message))
        return "\n".join(messages) or "no error message"

    def run_ok(self, *args: str, dbt_vars: dict[str, Any] | None = None) -> Any:
        """`invoke`, failing the test (with dbt's error and log file) unless dbt succeeded."""
        result = self.invoke(*args, dbt_vars=dbt_vars)
        if not result.success:
            pytest.fail(
                f"dbt {' '.join(args)} failed: {self.failure_text(result)}; "
                f"see {self.log_path / 'dbt.log'}",
                pytrace=False,
            )
        return result

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement on the warehouse file and close the connection again."""
        from orchestrator.warehouse.duckdb import connect

        with connect(self.db_path) as con:
            return con.execute(query, params or []).fetchall()

    def partitions(self, relation: str = "marts.fct_trips", field: str = "trip_date") -> Any:
        """{partition date: PartitionStats(partition, rows, checksum)} of a whole relation."""
        from orchestrator.warehouse.duckdb import connect, partition_stats

        # Not read_only: dbt-duckdb may still hold this process's (read-write) instance of
        # the file, and DuckDB refuses a second instance with another configuration.
        with connect(self.db_path) as con:
            return partition_stats(con, relation, field)

    def copy_to(self, directory: Path) -> DbtProject:
        """A private copy of this warehouse (same file name) with its own work directory."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.db_path.name
        shutil.copyfile(self.db_path, path)
        return DbtProject(db_path=path, work_dir=directory / "dbt")


@pytest.fixture(scope="module")
def dbt_built(tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    """Generated bronze (20 days x 200 trips) and a full `dbt build`: seeds, models,
    snapshots, data tests and unit tests. Built once per test module."""
    from orchestrator.demo.generate import generate_bronze
    from orchestrator.warehouse.duckdb import connect

    directory = tmp_path_factory.mktemp("dbt_built")
    project = DbtProject(db_path=directory / "rideshare.duckdb", work_dir=directory / "dbt")
    with connect(project.db_path) as con:
        generate_bronze(
            con,
            days=BRONZE_DAYS,
            trips_per_day=BRONZE_TRIPS_PER_DAY,
            seed=BRONZE_SEED,
            start_date=BRONZE_START,
        )
    project.run_ok("build")
    # dbt-duckdb may keep its database instance open in this process: flush the WAL so
    # that copies of the file hold everything.
    project.sql("checkpoint")
    return project


@pytest.fixture
def dbt_project(dbt_built: DbtProject, tmp_path: Path) -> Iterator[DbtProject]:
    """A private copy of the built warehouse for one test."""
    yield dbt_built.copy_to(tmp_path / "warehouse")
