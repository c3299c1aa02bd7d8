"""A backfill killed with SIGKILL mid-run resumes to exactly the state of a clean run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, approved, backfill, checksums, correct_a_fare, logged_status, query


def run_in_subprocess(plan_id: str, fault: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BACKFILL_FAULT": fault}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            plan_id,
            "--execute",
            "--project-dir",
            str(REPO),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("fault", ["after_backup@2", "inside_publish@2", "after_publish@1"])
def test_killed_run_resumes_to_the_clean_result(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    reference = tmp_path / "reference.duckdb"
    correct_a_fare(warehouse)
    shutil.copyfile(warehouse, reference)

    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(reference))
    clean_id = approved(reference, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "4")
    assert backfill("run", clean_id, "--execute").exit_code == 0
    expected = checksums(reference)

    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(warehouse))
    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "4")
    killed = run_in_subprocess(plan_id, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert logged_status(warehouse, plan_id) == "running"
    published_before = query(
        warehouse,
        "select count(*) from backfill_audit.backfill_chunks "
        f"where backfill_id = '{plan_id}' and state = 'published'",
    )[0][0]
    assert published_before == 1

    resumed = backfill("run", plan_id, "--execute", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["chunks_skipped"] == 1
    assert checksums(warehouse) == expected
    assert query(
        warehouse,
        "select count(*) - count(distinct trip_id) from marts.fct_trips",
    ) == [(0,)]
    assert query(
        warehouse,
        "select chunk_no, count(*) from backfill_audit.backfill_chunks "
        f"where backfill_id = '{plan_id}' and state = 'published' group by 1 order by 1",
    ) == [(1, 1), (2, 1), (3, 1)]
    assert query(
        warehouse,
        "select action from backfill_audit.lock_events "
        f"where backfill_id = '{plan_id}' order by recorded_at",
    ) == [("acquired",), ("taken_over",), ("acquired",), ("released",)]


def test_an_interrupted_run_can_be_rolled_back_instead_of_resumed(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after publishing chunk 1 of 3: rollback restores exactly that chunk."""
    correct_a_fare(warehouse, "2024-01-11")
    original = checksums(warehouse)
    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "4")
    killed = run_in_subprocess(plan_id, "after_publish@1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checksums(warehouse) != original  # chunk 1 carries the corrected fare
    assert backfill("status", plan_id, "--json").json()["status"] == "interrupted"

    preview = backfill("rollback", plan_id, "--requested-by", "carol", "--json")
    assert preview.exit_code == 0, preview.stderr
    assert [p["partition"] for p in preview.json()["partitions"]] == [
        f"2024-01-{day}" for day in (10, 11, 12, 13)
    ]
    rolled = backfill("rollback", plan_id, "--execute", "--requested-by", "carol")
    assert rolled.exit_code == 0, rolled.stderr
    assert checksums(warehouse) == original
    assert logged_status(warehouse, plan_id) == "rolled_back"
    assert query(
        warehouse,
        "select action from backfill_audit.lock_events "
        f"where backfill_id = '{plan_id}' order by recorded_at",
    ) == [("acquired",), ("taken_over",), ("acquired",), ("released",)]
    assert query(warehouse, "select count(*) from backfill_audit.locks") == [(0,)]

    resumed = backfill("run", plan_id, "--execute")
    assert resumed.exit_code == 2
    assert resumed.stderr == (
        f"Error: plan {plan_id} was rolled back; make a new plan to run it again\n"
    )


def test_a_running_backfill_cannot_be_rolled_back(warehouse: Path) -> None:
    plan_id = approved(warehouse)
    query(
        warehouse,
        "insert into backfill_audit.locks values ('fct_trips', "
        f"'{plan_id}', 'alice', {os.getppid()}, '{socket.gethostname()}', now())",
    )
    query(
        warehouse,
        "insert into backfill_audit.backfill_log (event_no, backfill_id, model, status, "
        f"recorded_at) values (1000, '{plan_id}', 'fct_trips', 'running', now())",
    )
    before = checksums(warehouse)
    refused = backfill("rollback", plan_id, "--execute", "--requested-by", "carol")
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"Error: backfill {plan_id} is running; roll it back once it has ended "
        "or been interrupted\n"
    )
    assert checksums(warehouse) == before


def test_a_resume_on_a_host_whose_clock_is_behind_still_finishes_every_chunk(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The killed run's host clock was an hour ahead of the resuming host's."""
    reference = tmp_path / "reference.duckdb"
    correct_a_fare(warehouse, "2024-01-15")
    shutil.copyfile(warehouse, reference)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(reference))
    clean_id = approved(reference, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "4")
    assert backfill("run", clean_id, "--execute").exit_code == 0

    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(warehouse))
    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "4")
    killed = run_in_subprocess(plan_id, "after_backup@2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    query(
        warehouse,
        "update backfill_audit.backfill_chunks set updated_at = updated_at + interval 1 hour "
        f"where backfill_id = '{plan_id}'",
    )
    resumed = backfill("run", plan_id, "--execute", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["chunks_skipped"] == 1
    assert checksums(warehouse) == checksums(reference)
    states = query(
        warehouse,
        "select chunk_no, state from backfill_audit.backfill_chunks "
        f"where backfill_id = '{plan_id}' qualify row_number() over "
        "(partition by chunk_no order by updated_at desc) = 1 order by 1",
    )
    assert states == [(1, "published"), (2, "published"), (3, "published")]
    again = backfill("run", plan_id, "--execute", "--json")
    assert (again.exit_code, again.json()["chunks_skipped"]) == (0, 3)
