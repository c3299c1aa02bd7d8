"""Hostile input found after the first hostile-input table: one person posing as two by
changing how a name is written, a mistyped warehouse path, and an approval of code that
changed after its dry run. Each exits 2 with one exact `Error:` line and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import crash_harness
import pytest
from reliability_support import cli, fingerprint

PLAN = ("plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-12")


@pytest.fixture
def dry_run_plan(
    warehouse_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path, str]]:
    """A private project copy and warehouse with a plan of alice's that passed its dry run."""
    project = crash_harness.snapshot_project(tmp_path / "project")
    db = tmp_path / "warehouse.duckdb"
    crash_harness.copy_warehouse(warehouse_template, db)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(db))
    monkeypatch.setenv("BACKFILL_TODAY", crash_harness.TODAY)
    monkeypatch.setenv("OPENLINEAGE_DIR", str(tmp_path / "openlineage"))
    monkeypatch.delenv("BACKFILL_OPERATOR", raising=False)
    planned = cli(project, *PLAN, "--requested-by", "alice", "--json")
    assert planned.exit_code == 0, planned.stderr
    plan_id = str(planned.json()["backfill_id"])
    assert cli(project, "dry-run", plan_id).exit_code == 0
    yield project, db, plan_id


@pytest.mark.parametrize(
    "approver", ["Alice", "ALICE", " alice ", "\uff41\uff4c\uff49\uff43\uff45"]
)
def test_the_requester_cannot_approve_a_critical_plan_under_another_spelling(
    dry_run_plan: tuple[Path, Path, str], approver: str
) -> None:
    project, db, plan_id = dry_run_plan
    before = fingerprint(db)
    result = cli(project, "approve", plan_id, "--approver", approver)
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: fct_trips is critical: the approver must not be the requester (alice)\n",
    )
    assert fingerprint(db) == before


def test_names_are_recorded_normalised(dry_run_plan: tuple[Path, Path, str]) -> None:
    project, _db, plan_id = dry_run_plan
    result = cli(project, "approve", plan_id, "--approver", " Bob ", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["approver"] == "bob"
    status = cli(project, "status", plan_id, "--json").json()
    assert (status["requested_by"], status["approved_by"]) == ("alice", "bob")


def test_an_approval_of_code_changed_since_the_dry_run_is_refused(
    dry_run_plan: tuple[Path, Path, str],
) -> None:
    project, db, plan_id = dry_run_plan
    model = project / "models" / "marts" / "core" / "fct_trips.sql"
    model.write_text(model.read_text() + "\n-- an edit nobody dry-ran\n")
    before = fingerprint(db)
    result = cli(project, "approve", plan_id, "--approver", "bob")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"Error: plan {plan_id} changed since its dry run (fingerprint "
    )
    assert result.stderr.endswith("): the code, vars or git commit differ; make a new plan\n")
    assert fingerprint(db) == before


@pytest.mark.parametrize(
    "command",
    [
        ("history",),
        ("status",),
        ("status", "bf_0123456789ab"),
        ("lineage", "fct_trips"),
        ("versions", "list", "fct_trips"),
        ("maintain", "--keep-days", "30"),
        ("unlock", "fct_trips", "--requested-by", "alice"),
        (*PLAN, "--requested-by", "alice"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_mistyped_warehouse_path_is_refused_and_never_created(
    command: tuple[str, ...],
    project_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    typo = tmp_path / "typo.duckdb"
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(typo))
    monkeypatch.setenv("BACKFILL_TODAY", crash_harness.TODAY)
    result = cli(project_copy, *command)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: warehouse file {typo} does not exist (RIDESHARE_DUCKDB_PATH); build it with "
        "`make demo` or `dbt build`, or point RIDESHARE_DUCKDB_PATH at your warehouse\n"
    )
    assert sorted(tmp_path.iterdir()) == []
