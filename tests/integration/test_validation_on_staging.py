"""The model's own dbt data tests run on each staged chunk, next to Great Expectations."""

from __future__ import annotations

from pathlib import Path

from support import approved, audit_counts, backfill, checksums, query, redeliver_with_unknown_rider

RIDER_TEST = "relationships_fct_trips_rider_id__rider_id__ref_dim_riders_"


def test_a_failing_dbt_test_on_the_staged_rows_fails_the_chunk(warehouse: Path) -> None:
    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "11")
    trip_id = redeliver_with_unknown_rider(warehouse)
    before, counts = checksums(warehouse), audit_counts(warehouse)

    result = backfill("run", plan_id, "--execute")

    assert result.exit_code == 1
    staging = f"backfill_staging.fct_trips__{plan_id}__c001"
    assert result.stderr.splitlines()[-1] == (
        f"Error: validation failed for fct_trips chunk 1 (2024-01-10..2024-01-20): "
        f"dbt test {RIDER_TEST} [all]: 1 failing rows; production unchanged, "
        f"staged rows kept in {staging}"
    )
    assert checksums(warehouse) == before
    # Great Expectations' checks look at one table: only the model's own relationships
    # test knows that no rider r_nobody exists.
    reports = query(
        warehouse,
        "select check_name, observed, passed from backfill_audit.validation_reports "
        f"where backfill_id = '{plan_id}' order by check_name",
    )
    failed = [(name, observed) for name, observed, passed in reports if not passed]
    assert failed == [(f"dbt test {RIDER_TEST}", "1 failing rows")]
    assert len([r for r in reports if r[0].startswith("dbt test")]) == 7
    kept = query(warehouse, f"select trip_id from {staging} where rider_id = 'r_nobody'")
    assert kept == [(trip_id,)]
    status = query(
        warehouse,
        "select status from backfill_audit.backfill_log "
        f"where backfill_id = '{plan_id}' order by event_no desc limit 1",
    )
    assert status == [("failed_validation",)]
    assert audit_counts(warehouse)["partition_checksums"] == counts["partition_checksums"] + 11
