"""Rules that once lived in the CLI hold for every caller of the library, and the demo
tooling refuses a warehouse it would not write instead of writing the wrong one."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO, audit_counts, backfill, planned

from orchestrator import backfills
from orchestrator.context import Context
from orchestrator.errors import BadInput


def test_chunk_days_beyond_max_days_is_refused_by_the_library(warehouse: Path) -> None:
    before = audit_counts(warehouse)
    ctx = Context(REPO)
    try:
        with pytest.raises(BadInput, match=r"^chunk days must be at most 400, not 401$"):
            backfills.create_plan(ctx, "fct_trips", "2024-01-10", "2024-01-20", chunk_days=401)
    finally:
        ctx.close()
    assert audit_counts(warehouse) == before


def test_a_comment_that_is_not_one_line_is_refused_by_the_library(warehouse: Path) -> None:
    plan_id = planned(warehouse)
    assert backfill("dry-run", plan_id).exit_code == 0
    before = audit_counts(warehouse)
    ctx = Context(REPO)
    try:
        with pytest.raises(BadInput, match=r"^comment must be one line of printable text$"):
            backfills.approve(ctx, plan_id, "bob", "looks\nfine")
    finally:
        ctx.close()
    assert audit_counts(warehouse) == before


@pytest.mark.parametrize("command", [["generate", "--days", "2", "--trips-per-day", "5"], ["demo"]])
def test_demo_tooling_refuses_bigquery_and_writes_no_duckdb_file(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "never.duckdb"
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(path))
    result = backfill(*command, "--target", "bigquery")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: `backfill {command[0]}` writes the embedded DuckDB warehouse only, not "
        "bigquery; load bronze into BigQuery with your ingestion (tests load the "
        "generator's output as Parquet)\n"
    )
    assert not path.exists()


def test_plan_warns_when_its_looker_exposure_reads_a_deprecated_version(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warning = (
        "warning: exposure looker_driver_operations reads dim_drivers v1, deprecated since "
        "2027-06-30 (latest is v2): move it to v2 (docs/looker.md)"
    )
    assert warning not in backfill(*PLAN).stdout  # today is 2026-11-22: not deprecated yet
    monkeypatch.setenv("BACKFILL_TODAY", "2027-06-30")
    result = backfill(*PLAN)
    assert result.exit_code == 0
    assert warning in result.stdout.splitlines()


PLAN = ("plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-20", "--reason", "x")
