"""Each refusal exits 2 with one exact `Error:` line and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import approved, audit_counts, backfill, checksums, planned, query


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("plan", "fct_trips", "--start", "2024-1-1", "--end", "2024-01-05"),
            "start date '2024-1-1' is not an ISO date (YYYY-MM-DD)",
        ),
        (
            ("plan", "fct_trips", "--start", "2024-02-30", "--end", "2024-03-05"),
            "start date '2024-02-30' is not a valid calendar date",
        ),
        (
            ("plan", "fct_trips", "--start", "2024-01-07", "--end", "2024-01-01"),
            "start date 2024-01-07 is after end date 2024-01-01",
        ),
        (
            ("plan", "fct_trips", "--start", "2024-01-01", "--end", "2031-01-01"),
            "end date 2031-01-01 is in the future (today is 2026-11-22)",
        ),
        (
            ("plan", "fct_trips", "--start", "2023-01-01", "--end", "2024-12-31"),
            "range 2023-01-01..2024-12-31 covers 731 days; fct_trips allows at most 400 "
            "(meta.backfill.max_days)",
        ),
        (
            ("plan", "fct_trip", "--start", "2024-01-01", "--end", "2024-01-05"),
            "unknown model 'fct_trip'; did you mean fct_trips?",
        ),
        (
            ("plan", "dim_riders", "--start", "2024-01-01", "--end", "2024-01-05"),
            "model dim_riders has no meta.backfill policy; it cannot be backfilled "
            "(Rebuilt in full from bronze on every run; it has no partitions.)",
        ),
        (
            (
                "plan",
                "fct_trips'; drop table marts.fct_trips; --",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-05",
            ),
            'model name "fct_trips\'; drop table marts.fct_trips; --" is not a valid dbt model '
            "name",
        ),
        (
            (
                "plan",
                "fct_trips",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-05",
                "--chunk-days",
                "0",
            ),
            "chunk days must be at least 1, not 0",
        ),
        (
            (
                "plan",
                "fct_trips",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-05",
                "--requested-by",
                "x'; --",
            ),
            "operator name \"x'; --\" must be 1-64 characters of letters, digits, '.', '_', "
            "'@', '+', '-'",
        ),
        (("dry-run", "bf_000000000000"), "unknown plan 'bf_000000000000'"),
        (("dry-run", "../../etc/passwd"), "unknown plan '../../etc/passwd'"),
        (("approve", "bf_000000000000", "--approver", "bob"), "unknown plan 'bf_000000000000'"),
        (("run", "bf_000000000000", "--execute"), "unknown plan 'bf_000000000000'"),
        (("plan", "fct_trips", "--start", "2024-01-01"), "Missing option '--end'."),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    warehouse: Path, args: tuple[str, ...], error: str
) -> None:
    before, counts = checksums(warehouse), audit_counts(warehouse)
    result = backfill(*args)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {error}\n"
    assert result.stdout == ""
    assert audit_counts(warehouse) == counts
    assert checksums(warehouse) == before


def test_approving_without_a_dry_run_is_refused(warehouse: Path) -> None:
    plan_id = planned(warehouse)
    counts = audit_counts(warehouse)
    result = backfill("approve", plan_id, "--approver", "bob")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: plan {plan_id} has no successful dry run; run `backfill dry-run {plan_id}` first\n"
    )
    assert audit_counts(warehouse) == counts


def test_approving_twice_is_refused(warehouse: Path) -> None:
    plan_id = approved(warehouse)
    counts = audit_counts(warehouse)
    result = backfill("approve", plan_id, "--approver", "carol")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: plan {plan_id} is already approved by bob at ")
    assert audit_counts(warehouse) == counts


def test_running_an_unapproved_plan_is_refused(warehouse: Path) -> None:
    plan_id = planned(warehouse)
    before, counts = checksums(warehouse), audit_counts(warehouse)
    result = backfill("run", plan_id, "--execute")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: plan {plan_id} is not approved; run "
        f"`backfill approve {plan_id} --approver NAME` first\n"
    )
    assert audit_counts(warehouse) == counts
    assert checksums(warehouse) == before


def test_a_plan_whose_code_changed_after_approval_must_be_replanned(
    warehouse: Path, tmp_path: Path
) -> None:
    import shutil

    from support import REPO

    project = tmp_path / "project"
    shutil.copytree(
        REPO,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", "target", "*.duckdb", ".git", "logs", "__pycache__", ".*_cache"
        ),
    )
    result = backfill(
        "plan",
        "fct_trips",
        "--start",
        "2024-01-10",
        "--end",
        "2024-01-12",
        "--requested-by",
        "alice",
        "--json",
        project_dir=project,
    )
    plan_id = result.json()["backfill_id"]
    assert backfill("dry-run", plan_id, project_dir=project).exit_code == 0
    assert backfill("approve", plan_id, "--approver", "bob", project_dir=project).exit_code == 0
    model = project / "models" / "marts" / "core" / "fct_trips.sql"
    model.write_text(model.read_text() + "\n-- edited after approval\n")
    before, counts = checksums(warehouse), audit_counts(warehouse)
    result = backfill("run", plan_id, "--execute", project_dir=project)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: plan {plan_id} changed since it was approved")
    assert result.stderr.endswith("the code, vars or git commit differ; make a new plan\n")
    assert audit_counts(warehouse) == counts
    assert checksums(warehouse) == before


def test_a_second_backfill_of_a_locked_model_fails_at_once(warehouse: Path) -> None:
    import os
    import socket

    plan_id = approved(warehouse)
    query(
        warehouse,
        "insert into backfill_audit.locks values ('fct_trips', 'bf_aaaaaaaaaaaa', 'carol', "
        f"{os.getpid()}, '{socket.gethostname()}', timestamp '2026-11-22 10:00:00')",
    )
    before = checksums(warehouse)
    result = backfill("run", plan_id, "--execute")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: fct_trips is locked by backfill bf_aaaaaaaaaaaa "
        "(started 2026-11-22 10:00:00 UTC by carol)\n"
    )
    assert checksums(warehouse) == before
    status = query(
        warehouse,
        "select status, error from backfill_audit.backfill_log "
        f"where backfill_id = '{plan_id}' order by event_no desc limit 1",
    )
    assert status[0][0] == "failed"
    assert "locked by backfill bf_aaaaaaaaaaaa" in status[0][1]


def test_a_stale_lock_is_named_and_cleared_only_by_unlock(warehouse: Path) -> None:
    import socket

    gone_pid = 2**22 + 12345  # above the default pid_max: no such process
    planned(warehouse)  # creates the audit tables
    query(
        warehouse,
        "insert into backfill_audit.locks values ('fct_trips', 'bf_bbbbbbbbbbbb', 'carol', "
        f"{gone_pid}, '{socket.gethostname()}', timestamp '2026-11-22 10:00:00')",
    )
    result = backfill("plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-12")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: fct_trips is locked by backfill bf_bbbbbbbbbbbb (started 2026-11-22 10:00:00 UTC "
        f"by carol); the lock is stale (process {gone_pid} on {socket.gethostname()} is gone): "
        "clear it with `backfill unlock fct_trips --requested-by NAME`\n"
    )
    cleared = backfill("unlock", "fct_trips", "--requested-by", "dave", "--reason", "oom kill")
    assert cleared.exit_code == 0, cleared.stderr
    assert query(warehouse, "select count(*) from backfill_audit.locks") == [(0,)]
    assert query(
        warehouse,
        "select model, backfill_id, action, actor, reason from backfill_audit.lock_events",
    ) == [("fct_trips", "bf_bbbbbbbbbbbb", "cleared", "dave", "oom kill")]
