"""Faults that stop a chunk before or during its publish: failed validation, a model that
no longer compiles or runs, an exception inside the publish transaction and a full disk.
Each leaves production as it was (the published chunks before it aside), records what
happened where it can, and the same plan resumes once the cause is gone."""

from __future__ import annotations

import re
from pathlib import Path

import crash_harness
import pytest
from reliability_support import (
    approved_plan,
    chunk_states,
    cli,
    fingerprint,
    latest_status,
    one_error_line,
    redeliver_trip,
)
from support import checksums, query

from orchestrator import faults

FCT = "models/marts/core/fct_trips.sql"


def test_corrupt_bronze_fails_validation_and_production_is_unchanged(
    warehouse: Path, project_copy: Path
) -> None:
    """A re-delivered trip 100,000 miles long prices above fare_amount's max of 1000."""
    before = checksums(warehouse)
    trip = redeliver_trip(warehouse, "2024-01-11", 100_000, "29990100-01")
    plan_id = approved_plan(
        project_copy, "fct_trips", "2024-01-10", "2024-01-21", "--chunk-days", "4"
    )
    staging = f"backfill_staging.fct_trips__{plan_id}__c001"

    result = cli(project_copy, "run", plan_id, "--execute")
    assert result.exit_code == 1
    error = one_error_line(result.stderr)
    assert result.stderr.endswith(error + "\n")  # detail lines first, the error last
    assert "  failed: fare_amount between 0 and 1000 [2024-01-11] observed 1 rows outside" in (
        result.stderr
    )
    assert error.startswith(
        "Error: validation failed for fct_trips chunk 1 (2024-01-10..2024-01-13): "
    )
    assert error.endswith(f"; production unchanged, staged rows kept in {staging}")

    assert checksums(warehouse) == before
    status, recorded = latest_status(warehouse, plan_id)
    assert status == "failed_validation"
    assert recorded is not None and "fare_amount" in recorded
    assert chunk_states(warehouse, plan_id) == {1: "failed_validation"}
    assert query(
        warehouse,
        "select check_name, partition_value from backfill_audit.validation_reports "
        f"where backfill_id = '{plan_id}' and not passed order by check_name",
    ) == [
        # One trip of 100,000 miles also drags the chunk's mean distance and fare far from
        # production's (the checks derived from production).
        ("distance_miles mean within x2 of production", "all"),
        ("fare_amount between 0 and 1000", "2024-01-11"),
        ("fare_amount mean within x2 of production", "all"),
    ]
    kept = query(warehouse, f"select fare_amount from {staging} where trip_id = '{trip}'")
    assert kept[0][0] > 1000
    assert query(warehouse, "select count(*) from backfill_audit.locks") == [(0,)]
    assert query(
        warehouse,
        "select count(*) from backfill_audit.dataset_versions "
        f"where created_by_backfill = '{plan_id}'",
    ) == [(0,)]

    # Bronze is immutable: a later batch re-delivers the trip as it was, and the same plan
    # resumes at the failed chunk and publishes.
    redeliver_trip(warehouse, "2024-01-11", 0, "29990200-01")
    resumed = cli(project_copy, "run", plan_id, "--execute", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert len(resumed.json()["chunks_run"]) == 3
    assert checksums(warehouse) == before


def test_a_model_whose_sql_fails_is_stopped_at_the_dry_run_with_one_line(
    approved_copy: Path, tmp_path: Path
) -> None:
    project = crash_harness.snapshot_project(tmp_path / "project")
    model = project / FCT
    model.write_text(
        model.read_text().replace("select * from final", "select * from final where no_such = 1")
    )
    plan_id = approved_plan_failing_dry_run(project)
    approval = cli(project, "approve", plan_id, "--approver", "bob")
    assert approval.exit_code == 2
    assert approval.stderr == (
        f"Error: plan {plan_id} has no successful dry run; run `backfill dry-run {plan_id}` first\n"
    )


def approved_plan_failing_dry_run(project: Path) -> str:
    planned = cli(
        project, "plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-12",
        "--requested-by", "alice", "--json",
    )  # fmt: skip
    assert planned.exit_code == 0, planned.stderr  # dbt compiles it: the SQL is not run
    plan_id = str(planned.json()["backfill_id"])
    dry = cli(project, "dry-run", plan_id)
    assert dry.exit_code == 1
    assert one_error_line(dry.stderr).startswith("Error: the compiled SQL does not run on DuckDB: ")
    assert dry.stderr.count("\n") == 1
    return plan_id


def test_a_model_that_stops_compiling_after_approval_fails_the_run_and_is_recorded(
    crash_scenario: crash_harness.Scenario, approved_copy: Path, tmp_path: Path
) -> None:
    """The approved plan is run against a copy of the project whose fct_trips raises a
    compilation error (as if the file had been edited in place after the approval)."""
    plan_id = crash_scenario.backfill_id
    project = crash_harness.snapshot_project(tmp_path / "project")
    model = project / FCT
    model.write_text(
        "{% if execute %}{{ exceptions.raise_compiler_error('broken on purpose') }}{% endif %}\n"
        + model.read_text()
    )
    before = fingerprint(approved_copy)

    result = cli(project, "run", plan_id, "--execute")
    assert result.exit_code == 1
    error = one_error_line(result.stderr)
    assert result.stderr == error + "\n"
    assert error.startswith(
        "Error: dbt compile failed: Runtime Error Compilation Error in model fct_trips "
        "(models/marts/core/fct_trips.sql) broken on purpose (log: "
    )
    assert latest_status(approved_copy, plan_id) == ("failed", error.removeprefix("Error: "))
    assert chunk_states(approved_copy, plan_id) == {}
    after = fingerprint(approved_copy)
    changed = {t for t in before if before[t] != after[t]}
    assert changed == {'"backfill_audit"."backfill_log"'}  # the failure, nothing else

    planning = cli(project, "plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-12")
    assert planning.exit_code == 1
    assert planning.stderr.startswith("Error: dbt compile failed: ")
    assert planning.stderr.count("\n") == 1
    assert fingerprint(approved_copy) == after


def test_an_exception_inside_the_publish_transaction_rolls_it_back_and_is_recorded(
    crash_scenario: crash_harness.Scenario,
    project_copy: Path,
    approved_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`inside_publish:raise` fails the publish after every write of it, before commit."""
    db, plan_id, chunks = approved_copy, crash_scenario.backfill_id, crash_scenario.chunks
    faults.reset()
    monkeypatch.setenv("BACKFILL_FAULT", "inside_publish@2:raise")
    result = cli(project_copy, "run", plan_id, "--execute", "--json")
    monkeypatch.delenv("BACKFILL_FAULT")
    message = f"backfill {plan_id} failed: InjectedFault: injected fault at inside_publish"
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")

    # Chunk 1 published; chunk 2 exactly as before (its swap and records rolled back).
    assert chunk_states(db, plan_id) == {1: "published", 2: "validated"}
    actual = {d.isoformat(): v for d, v in checksums(db).items()}
    states = [crash_harness.classify(crash_scenario, actual, a, b) for _, a, b in chunks]
    assert states == ["new", "old", "old"]
    assert latest_status(db, plan_id) == ("failed", message.split(" failed: ", 1)[1])
    assert crash_harness.state_problems(crash_scenario, db, final=False) == []
    assert query(db, "select count(*) from backfill_audit.locks") == [(0,)]

    resumed = cli(project_copy, "run", plan_id, "--execute", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["chunks_skipped"] == 1
    assert crash_harness.state_problems(crash_scenario, db, final=True) == []


def test_a_full_disk_during_publish_leaves_production_unchanged_and_the_run_resumes(
    crash_scenario: crash_harness.Scenario, tmp_path: Path
) -> None:
    """The publish commit of chunk 2 cannot be written (RLIMIT_FSIZE: EFBIG on the WAL,
    as a full disk). The commit fails as a whole; the same plan resumes afterwards."""
    trial = crash_harness.Trial("diskfull", (crash_harness.Kill("diskfull", "after_validate", 2),))
    result = crash_harness.run_trial(crash_scenario, trial, tmp_path)
    assert result.problems == [], result.report()
    full = result.phases[0]
    assert full.returncode == 1
    # One line, no traceback: the publish's error, then that neither the failure nor the
    # lock's release could be written to the same warehouse (the resume above took the
    # lock over and found the run still `running`).
    error = re.fullmatch(
        f"Error: backfill {crash_scenario.backfill_id} failed: (.+); the failure could not be "
        r"recorded: (.+); the lock on fct_trips is left \(the same error\); a resume of this "
        r"plan takes it over\n",
        full.stderr,
    )
    assert error is not None, full.stderr
    cause, unrecorded = error.groups()
    assert cause.startswith("TransactionException: ") and cause.endswith(": File too large")
    assert unrecorded == cause
