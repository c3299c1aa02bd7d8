"""`publish: partition_copy`: a chunk published one partition at a time.

The model's YAML opts in (a copy of the project, edited); on DuckDB each partition's
delete and insert commit on their own, the same per-partition atomicity as BigQuery's
partition copy jobs. These tests show it publishes what the default transaction
publishes, and that a kill between two partitions loses nothing: the resume finishes
the chunk, or a rollback restores the checksums from before.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from support import REPO, backfill, checksums, correct_a_fare, logged_status, query

FCT_TRIPS_POLICY = """        backfill:
          partition_field: trip_date
          partition_granularity: day
"""


def partition_copy_project(tmp_path: Path) -> Path:
    """A copy of the repo whose fct_trips opts into `publish: partition_copy`."""
    project = tmp_path / "project"
    shutil.copytree(
        REPO,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".bqemu", "target", "*.duckdb", ".git", "logs", "__pycache__", ".*_cache"
        ),
    )
    models = project / "models" / "marts" / "core" / "_core__models.yml"
    text = models.read_text()
    assert text.count(FCT_TRIPS_POLICY) == 1
    models.write_text(
        text.replace(FCT_TRIPS_POLICY, FCT_TRIPS_POLICY + "          publish: partition_copy\n")
    )
    return project


def approved_in(project: Path, start: str = "2024-01-10", end: str = "2024-01-17") -> str:
    """A 2-chunk fct_trips plan (4 days each), dry-run and approved, in `project`."""
    planned = backfill(
        "plan", "fct_trips", "--start", start, "--end", end, "--chunk-days", "4",
        "--requested-by", "alice", "--json", project_dir=project,
    )  # fmt: skip
    assert planned.exit_code == 0, planned.stderr
    plan_id = str(planned.json()["backfill_id"])
    assert backfill("dry-run", plan_id, project_dir=project).exit_code == 0
    assert backfill("approve", plan_id, "--approver", "bob", project_dir=project).exit_code == 0
    return plan_id


def killed_between_partitions(project: Path, plan_id: str, nth: int) -> None:
    """`run --execute` in a real process, SIGKILLed after its nth partition copy."""
    killed = subprocess.run(
        [
            sys.executable, "-m", "orchestrator", "run", plan_id, "--execute",
            "--project-dir", str(project),
        ],
        env={**os.environ, "BACKFILL_FAULT": f"between_partition_copies@{nth}"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def chunk_states(path: Path, plan_id: str) -> list[tuple[int, str]]:
    return query(
        path,
        "select chunk_no, state from backfill_audit.backfill_chunks "
        f"where backfill_id = '{plan_id}' and state in ('publishing', 'published') "
        "order by updated_at",
    )


def clean_run_checksums(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[date, tuple[int, str]]:
    """fct_trips after the same plan run uninterrupted, in the default (transaction) mode,
    on a copy of `path`; the env points at `path` again afterwards."""
    reference = tmp_path / "reference.duckdb"
    shutil.copyfile(path, reference)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(reference))
    assert backfill("run", approved_in(REPO), "--execute").exit_code == 0
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(path))
    return checksums(reference)


@pytest.fixture
def corrected(warehouse: Path) -> Path:
    """The warehouse with two corrected fares in the range, one in each chunk."""
    correct_a_fare(warehouse, "2024-01-11")
    correct_a_fare(warehouse, "2024-01-16")
    return warehouse


def test_partition_copies_publish_what_the_transaction_publishes(
    corrected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = clean_run_checksums(corrected, tmp_path, monkeypatch)
    project = partition_copy_project(tmp_path)
    plan_id = approved_in(project)
    result = backfill("run", plan_id, "--execute", project_dir=project)
    assert result.exit_code == 0, result.stderr
    assert checksums(corrected) == expected
    assert chunk_states(corrected, plan_id) == [
        (1, "publishing"),
        (1, "published"),
        (2, "publishing"),
        (2, "published"),
    ]
    staged = query(
        corrected,
        "select partition_date, row_count, checksum from backfill_audit.partition_checksums "
        f"where backfill_id = '{plan_id}' and phase = 'staged' order by 1",
    )
    after = query(
        corrected,
        "select partition_date, row_count, checksum from backfill_audit.partition_checksums "
        f"where backfill_id = '{plan_id}' and phase = 'after' order by 1",
    )
    assert staged == after and len(after) == 8
    assert query(  # kept only while a resume may need them
        corrected,
        "select count(*) from information_schema.tables where table_schema = 'backfill_staging'",
    ) == [(0,)]


def test_a_kill_between_partition_copies_resumes_to_the_clean_result(
    corrected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = clean_run_checksums(corrected, tmp_path, monkeypatch)
    original = checksums(corrected)
    project = partition_copy_project(tmp_path)
    plan_id = approved_in(project)
    killed_between_partitions(project, plan_id, 2)  # 2024-01-10 and -11 copied, -12 not

    now = checksums(corrected)
    assert now[JAN(11)] == expected[JAN(11)] != original[JAN(11)]  # copied
    assert now[JAN(12)] == original[JAN(12)] and now[JAN(13)] == original[JAN(13)]  # not yet
    assert chunk_states(corrected, plan_id) == [(1, "publishing")]
    assert backfill("status", plan_id, "--json", project_dir=project).json()["status"] == (
        "interrupted"
    )
    exported = backfill(
        "versions", "export", "fct_trips", "--version", "0",
        "--output", str(tmp_path / "v0.parquet"), project_dir=project,
    )  # fmt: skip
    assert exported.exit_code == 2
    assert exported.stderr == (
        f"Error: fct_trips cannot be exported while backfill {plan_id} is half-published "
        "(publish: partition_copy stopped between partitions): resume it with "
        f"`backfill run {plan_id} --execute` or roll it back first\n"
    )
    maintained = backfill(
        "maintain", "--keep-days", "0", "--execute", "--json", project_dir=project
    )
    assert maintained.exit_code == 0, maintained.stderr
    assert query(
        corrected,
        "select table_name from information_schema.tables "
        "where table_schema in ('backfill_staging', 'backfill_backups') order by 1",
    ) == [(f"fct_trips__{plan_id}",), (f"fct_trips__{plan_id}__c001",)]

    resumed = backfill("run", plan_id, "--execute", "--json", project_dir=project)
    assert resumed.exit_code == 0, resumed.stderr
    assert checksums(corrected) == expected
    assert query(corrected, "select count(*) - count(distinct trip_id) from marts.fct_trips") == [
        (0,)
    ]
    assert chunk_states(corrected, plan_id) == [
        (1, "publishing"),
        (1, "published"),
        (2, "publishing"),
        (2, "published"),
    ]
    # The version's deltas compare with the partitions from before the first copy.
    assert query(
        corrected,
        "select d.partition_date, d.rows_before, d.checksum_before "
        "from backfill_audit.dataset_deltas d "
        "join backfill_audit.dataset_versions v using (version_id) "
        f"where v.created_by_backfill = '{plan_id}' and d.partition_date = '2024-01-11'",
    ) == [(JAN(11), *original[JAN(11)])]


def test_a_half_published_chunk_rolls_back_to_the_checksums_from_before(
    corrected: Path, tmp_path: Path
) -> None:
    original = checksums(corrected)
    project = partition_copy_project(tmp_path)
    plan_id = approved_in(project)
    killed_between_partitions(project, plan_id, 2)
    assert checksums(corrected) != original

    preview = backfill(
        "rollback", plan_id, "--requested-by", "carol", "--json", project_dir=project
    )
    assert preview.exit_code == 0, preview.stderr
    assert [p["partition"] for p in preview.json()["partitions"]] == [
        f"2024-01-{day}" for day in (10, 11, 12, 13)
    ]
    assert not any(p["changed_since"] for p in preview.json()["partitions"])
    rolled = backfill(
        "rollback", plan_id, "--execute", "--requested-by", "carol", project_dir=project
    )
    assert rolled.exit_code == 0, rolled.stderr
    assert checksums(corrected) == original
    assert logged_status(corrected, plan_id) == "rolled_back"


def JAN(day: int) -> date:
    return date(2024, 1, day)
