"""Rollback, dataset versions, export, snapshots, lineage and maintenance, by checksums."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from support import approved, backfill, checksums, correct_a_fare, logged_status, query

START, END = date(2024, 1, 10), date(2024, 1, 20)


def parquet_checksum(path: Path) -> tuple[int, str]:
    import duckdb

    with duckdb.connect() as con:
        row = con.execute(
            "select count(*), coalesce(sum(hash(t)::hugeint), 0)::varchar "
            f"from read_parquet('{path}') as t"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def table_checksum(path: Path, relation: str = "marts.fct_trips") -> tuple[int, str]:
    row = query(
        path,
        f"select count(*), coalesce(sum(hash(t)::hugeint), 0)::varchar from {relation} as t",
    )[0]
    return int(row[0]), str(row[1])


def run_backfill(path: Path, *extra: str) -> str:
    plan_id = approved(path, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "5", *extra)
    result = backfill("run", plan_id, "--execute")
    assert result.exit_code == 0, result.stderr
    return plan_id


def test_rollback_restores_the_recorded_checksums(warehouse: Path) -> None:
    original = checksums(warehouse)
    correct_a_fare(warehouse)
    plan_id = run_backfill(warehouse)
    assert checksums(warehouse) != original

    preview = backfill("rollback", plan_id, "--requested-by", "carol")
    assert preview.exit_code == 0, preview.stderr
    assert "(dry run: add --execute to restore these 11 partitions)" in preview.stdout
    assert checksums(warehouse) != original

    result = backfill("rollback", plan_id, "--execute", "--requested-by", "carol")
    assert result.exit_code == 0, result.stderr
    assert checksums(warehouse) == original
    recorded_before = {
        r[0]: (r[1], r[2])
        for r in query(
            warehouse,
            "select partition_date, row_count, checksum from backfill_audit.partition_checksums "
            f"where backfill_id = '{plan_id}' and phase = 'before'",
        )
    }
    assert recorded_before == {d: v for d, v in original.items() if START <= d <= END}
    assert logged_status(warehouse, plan_id) == "rolled_back"
    assert query(warehouse, "select requested_by, forced from backfill_audit.rollbacks") == [
        ("carol", False)
    ]
    again = backfill("rollback", plan_id, "--execute", "--requested-by", "carol")
    assert again.exit_code == 2
    assert again.stderr == f"Error: backfill {plan_id} is already rolled back\n"


def test_rollback_is_refused_after_a_later_backfill_unless_forced(warehouse: Path) -> None:
    correct_a_fare(warehouse)
    first = run_backfill(warehouse)
    correct_a_fare(warehouse)
    second = run_backfill(warehouse)
    before = checksums(warehouse)
    refused = backfill("rollback", first, "--execute", "--requested-by", "carol")
    assert refused.exit_code == 2
    assert refused.stderr.startswith(
        f"Error: cannot roll back {first}: 1 partition(s) changed since it published them "
        f"(by {second}), first fct_trips 2024-01-15;"
    )
    assert checksums(warehouse) == before
    forced = backfill("rollback", first, "--execute", "--force", "--requested-by", "carol")
    assert forced.exit_code == 0, forced.stderr
    assert query(warehouse, "select forced, conflicts from backfill_audit.rollbacks") == [
        (True, '["fct_trips 2024-01-15"]')
    ]


def test_export_of_a_version_equals_the_data_at_that_version(
    warehouse: Path, tmp_path: Path
) -> None:
    at_v0 = table_checksum(warehouse)
    correct_a_fare(warehouse)
    run_backfill(warehouse)
    at_v1 = table_checksum(warehouse)
    correct_a_fare(warehouse)
    run_backfill(warehouse)
    assert table_checksum(warehouse) != at_v1

    listed = backfill("versions", "list", "fct_trips", "--json").json()
    assert [v["version_no"] for v in listed] == [1, 2]
    assert all(v["partitions"] == 11 for v in listed)
    for version, expected in [(0, at_v0), (1, at_v1), (2, table_checksum(warehouse))]:
        out = tmp_path / f"v{version}.parquet"
        result = backfill(
            "versions", "export", "fct_trips", "--version", str(version), "--output", str(out)
        )
        assert result.exit_code == 0, result.stderr
        assert parquet_checksum(out) == expected

    missing = backfill(
        "versions",
        "export",
        "fct_trips",
        "--version",
        "9",
        "--output",
        str(tmp_path / "v9.parquet"),
    )
    assert missing.exit_code == 2
    assert missing.stderr == "Error: fct_trips has no version 9 (latest is 2)\n"
    traversal = backfill(
        "versions", "export", "fct_trips", "--version", "1", "--output", "../../x.parquet"
    )
    assert traversal.exit_code == 2
    assert traversal.stderr == "Error: output '../../x.parquet' must not contain '..'\n"


def test_a_snapshot_is_never_touched_by_later_backfills(warehouse: Path) -> None:
    result = backfill(
        "versions",
        "snapshot",
        "fct_trips",
        "--tag",
        "train_q1",
        "--model-run-id",
        "run-42",
        "--requested-by",
        "dana",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    relation = result.json()["relation"]
    frozen = table_checksum(warehouse, relation)
    assert frozen == table_checksum(warehouse)
    correct_a_fare(warehouse)
    run_backfill(warehouse)
    assert table_checksum(warehouse, relation) == frozen
    assert table_checksum(warehouse) != frozen
    again = backfill("versions", "snapshot", "fct_trips", "--tag", "train_q1")
    assert again.exit_code == 2
    assert again.stderr == (
        "Error: snapshot 'train_q1' of fct_trips already exists; snapshots are immutable\n"
    )
    assert query(
        warehouse, "select tag, model_run_id, created_by from backfill_audit.dataset_snapshots"
    ) == [("train_q1", "run-42", "dana")]


def test_lineage_rows_match_the_published_chunks(warehouse: Path) -> None:
    plan_id = run_backfill(warehouse)
    rows = query(
        warehouse,
        "select partition_start, partition_end, git_commit, config_hash, input_relations "
        f"from backfill_audit.lineage where backfill_id = '{plan_id}' order by 1",
    )
    chunks = query(
        warehouse,
        "select start_date, end_date from backfill_audit.backfill_chunks "
        f"where backfill_id = '{plan_id}' and state = 'published' order by 1",
    )
    assert [(r[0], r[1]) for r in rows] == chunks
    assert "staging.stg_rides__trip_events" in rows[0][4]
    answer = backfill("lineage", "fct_trips", "--partition", "2024-01-17", "--json").json()
    assert [a["backfill_id"] for a in answer] == [plan_id]
    assert answer[0]["partition_start"] == "2024-01-15"
    assert answer[0]["backfill_status"] == "succeeded"
    comment = query(
        warehouse,
        "select comment from duckdb_tables() where schema_name = 'marts' "
        "and table_name = 'fct_trips'",
    )[0][0]
    assert comment.startswith(f"backfill_id={plan_id} git_commit=")


def test_maintain_keeps_what_kept_versions_need(warehouse: Path, tmp_path: Path) -> None:
    plan_id = run_backfill(warehouse)
    assert backfill("maintain", "--keep-days", "30", "--execute").stdout.endswith(
        "removed 0 relation(s)\n"
    )
    preview = backfill("maintain", "--keep-days", "0")
    assert f"would remove backfill_backups.fct_trips__{plan_id}" in preview.stdout
    assert query(
        warehouse,
        "select count(*) from information_schema.tables where table_schema = 'backfill_backups'",
    ) == [(1,)]
    removed = backfill("maintain", "--keep-days", "0", "--execute")
    assert removed.exit_code == 0
    assert query(warehouse, "select relation, action from backfill_audit.maintenance_log") == [
        (f"backfill_backups.fct_trips__{plan_id}", "dropped")
    ]
    export = backfill(
        "versions",
        "export",
        "fct_trips",
        "--version",
        "0",
        "--output",
        str(tmp_path / "v0.parquet"),
    )
    assert export.exit_code == 2
    assert export.stderr == (
        f"Error: version 0 of fct_trips needs backup backfill_backups.fct_trips__{plan_id}, "
        "which was expired by `backfill maintain`\n"
    )
    rollback = backfill("rollback", plan_id, "--requested-by", "carol")
    assert rollback.exit_code == 2
    assert rollback.stderr == (
        f"Error: cannot roll back {plan_id}: its backup "
        f"backfill_backups.fct_trips__{plan_id} was expired\n"
    )
