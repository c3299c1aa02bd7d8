"""Fixtures of the reliability suite, built once per test worker."""

from __future__ import annotations

from pathlib import Path

import crash_harness
import pytest


@pytest.fixture(scope="session")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dbt project frozen for the session (crash_harness.snapshot_project): plans
    approved here cannot turn stale when someone edits or commits in the working tree."""
    return crash_harness.snapshot_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session")
def crash_scenario(
    warehouse_template: Path, project_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> crash_harness.Scenario:
    """An approved 3-chunk plan of fct_trips on a corrected copy of the template, its clean
    reference result, and a calibrated forked run (crash_harness.prepare)."""
    return crash_harness.prepare(warehouse_template, tmp_path_factory.mktemp("crash"), project_copy)


@pytest.fixture
def approved_copy(
    crash_scenario: crash_harness.Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A private copy of the crash scenario's warehouse (its plan approved, not run); the
    env points the in-process CLI at it."""
    path = tmp_path / "warehouse.duckdb"
    crash_harness.copy_warehouse(crash_scenario.approved, path)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(path))
    monkeypatch.setenv("BACKFILL_TODAY", crash_harness.TODAY)
    monkeypatch.setenv("OPENLINEAGE_DIR", str(tmp_path / "openlineage"))
    monkeypatch.delenv("BACKFILL_OPERATOR", raising=False)
    monkeypatch.delenv("BACKFILL_FAULT", raising=False)
    return path
