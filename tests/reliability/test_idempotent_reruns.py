"""Running again changes nothing: the same plan, a new plan of the same range after a source
correction, and dbt's own lookback run right after a backfill.

Complements tests/integration/test_backfill_flow.py (same plan twice and a re-plan with
no source change: identical checksums) and tests/integration/test_dbt_project.py (a
range re-run by dbt alone); here the data really changes first, and the audit store is
checked too.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from reliability_support import approved_plan, cli
from support import audit_counts, checksums, correct_a_fare, query

from orchestrator.dbt import Dbt


def rows_per_partition(db: Path) -> dict[object, int]:
    return {d: rows for d, (rows, _) in checksums(db).items()}


def test_a_corrected_range_converges_and_running_it_again_changes_nothing(
    warehouse: Path, project_copy: Path
) -> None:
    built = checksums(warehouse)
    for day in ("2024-01-11", "2024-01-19"):
        correct_a_fare(warehouse, day)
    first = approved_plan(project_copy, "fct_trips", "2024-01-10", "2024-01-20")
    assert cli(project_copy, "run", first, "--execute").exit_code == 0
    corrected = checksums(warehouse)
    assert corrected != built  # the corrections landed: the runs below have work to undo

    # The same plan again: nothing to do, nothing written, not even an audit row.
    counts = audit_counts(warehouse)
    again = cli(project_copy, "run", first, "--execute", "--json")
    assert again.exit_code == 0, again.stderr
    assert (again.json()["chunks_run"], again.json()["chunks_skipped"]) == ([], 1)
    assert audit_counts(warehouse) == counts
    assert checksums(warehouse) == corrected

    # The same range planned anew rewrites every partition with identical contents.
    second = approved_plan(project_copy, "fct_trips", "2024-01-10", "2024-01-20")
    assert cli(project_copy, "run", second, "--execute").exit_code == 0
    assert checksums(warehouse) == corrected
    assert rows_per_partition(warehouse) == {d: rows for d, (rows, _) in corrected.items()}
    # ... and its audit rows say so: before == after for every partition it replaced.
    phases = query(
        warehouse,
        "select partition_date, phase, row_count, checksum from backfill_audit."
        f"partition_checksums where backfill_id = '{second}' order by 1, 2",
    )
    before = {d: (n, c) for d, phase, n, c in phases if phase == "before"}
    after = {d: (n, c) for d, phase, n, c in phases if phase == "after"}
    assert len(after) == 11
    assert before == after
    assert query(
        warehouse,
        "select count(*), count(*) filter (where rows_before = rows_after "
        "and checksum_before = checksum_after) from backfill_audit.dataset_deltas d "
        "join backfill_audit.dataset_versions v using (version_id) "
        f"where v.created_by_backfill = '{second}'",
    ) == [(11, 11)]


def test_dbt_runs_right_after_a_backfill_change_nothing(
    warehouse: Path, project_copy: Path
) -> None:
    """The backfill wrote what dbt itself would write: neither the model's plain
    incremental run (it rewrites the last `lookback_days` = 3 partitions) nor a dbt run
    with the backfill's own vars changes a partition afterwards."""
    latest = max(checksums(warehouse))
    for day in (latest, latest - timedelta(days=1)):
        correct_a_fare(warehouse, day.isoformat())
    start = (latest - timedelta(days=6)).isoformat()
    plan_id = approved_plan(project_copy, "fct_trips", start, latest.isoformat())
    assert cli(project_copy, "run", plan_id, "--execute").exit_code == 0
    backfilled = checksums(warehouse)

    dbt = Dbt(project_copy)
    try:
        dbt.invoke(["run", "--select", "fct_trips"])
        assert checksums(warehouse) == backfilled
        vars_json = f'{{"backfill_start": "{start}", "backfill_end": "{latest}"}}'
        dbt.invoke(["run", "--select", "fct_trips", "--vars", vars_json])
        assert checksums(warehouse) == backfilled

        # Not vacuous: the lookback run does rewrite the latest partition when its source
        # changed after the backfill.
        dbt.release_warehouse()
        correct_a_fare(warehouse, latest.isoformat())
        dbt.invoke(["run", "--select", "fct_trips"])
    finally:
        dbt.release_warehouse()
    after = checksums(warehouse)
    assert {d for d in after if after[d] != backfilled[d]} == {latest}
