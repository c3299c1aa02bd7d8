"""plan -> dry-run -> approve -> run --execute -> rollback on the BigQuery emulator.

The same checks as the DuckDB flow tests: partitions outside the range keep their
checksums, the audit store records what was replaced and with what, and a rollback
restores exactly the checksums recorded before the backfill.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from bq_support import (
    REPO,
    BigQueryEnv,
    approved,
    backfill,
    checksums,
    correct_trip,
    query,
    signed_in_as,
)

START, END = date(2024, 1, 10), date(2024, 1, 16)
CORRECTED = date(2024, 1, 12)


def in_range(values: dict[date, tuple[int, str]]) -> dict[date, tuple[int, str]]:
    return {d: v for d, v in values.items() if START <= d <= END}


def outside(values: dict[date, tuple[int, str]]) -> dict[date, tuple[int, str]]:
    return {d: v for d, v in values.items() if not START <= d <= END}


def test_full_flow_then_rollback_restores_the_recorded_checksums(bq: BigQueryEnv) -> None:
    trip_id = correct_trip(CORRECTED.isoformat())
    before = checksums()
    fare_before = query(f"select fare_amount from marts.fct_trips where trip_id = '{trip_id}'")

    plan = backfill(
        "plan", "fct_trips", "--start", START.isoformat(), "--end", END.isoformat(),
        "--chunk-days", "3", "--reason", "fare fix", "--json",
    )  # fmt: skip
    assert plan.exit_code == 0, plan.stderr
    plan_id = plan.json()["backfill_id"]
    assert [c["start"] for c in plan.json()["chunks"]] == ["2024-01-10", "2024-01-13", "2024-01-16"]
    assert plan.json()["impact"]["rows_now"] == sum(r for r, _ in in_range(before).values())

    dry = backfill("dry-run", plan_id, "--json")
    assert dry.exit_code == 0, dry.stderr
    report = dry.json()
    assert checksums() == before  # a dry run writes nothing to marts
    assert [c["rows_to_replace"] for c in report["chunks"]] == [
        sum(before[START.replace(day=d)][0] for d in days if START.replace(day=d) in before)
        for days in ((10, 11, 12), (13, 14, 15), (16,))
    ]
    # The emulator answers every dry run with 0 bytes (real BigQuery: the bytes scanned);
    # tests/bigquery/test_bigquery_warehouse.py checks the request and the arithmetic.
    assert all(isinstance(c["bytes_processed"], int) for c in report["chunks"])
    assert report["bytes_processed"] == sum(c["bytes_processed"] for c in report["chunks"])
    assert report["usd_per_tib"] == 6.25
    compiled = (REPO / report["chunks"][0]["compiled_sql"]).read_text()
    assert "cast('2024-01-10' as date)" in compiled

    with signed_in_as("bob"):
        assert backfill("approve", plan_id).exit_code == 0
    run = backfill("run", plan_id, "--execute", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "succeeded"

    after = checksums()
    assert outside(after) == outside(before)
    assert after[CORRECTED] != before[CORRECTED]
    assert {d: v for d, v in in_range(after).items() if d != CORRECTED} == {
        d: v for d, v in in_range(before).items() if d != CORRECTED
    }
    fare_after = query(f"select fare_amount from marts.fct_trips where trip_id = '{trip_id}'")
    assert fare_after[0][0] > fare_before[0][0]

    statuses = [
        r[0]
        for r in query(
            "select status from backfill_audit.backfill_log "
            f"where backfill_id = '{plan_id}' order by event_no"
        )
    ]
    assert statuses == ["planned", "dry_run_ok", "approved", "running", "succeeded"]
    recorded_after = {
        r[0]: (int(r[1]), r[2])
        for r in query(
            "select partition_date, row_count, checksum from backfill_audit.partition_checksums "
            f"where backfill_id = '{plan_id}' and phase = 'after'"
        )
    }
    assert recorded_after == in_range(after)
    steps = ["started", "backed_up", "staged", "validated", "published"]
    states = query(
        "select chunk_no, array_agg(state order by updated_at) "
        f"from backfill_audit.backfill_chunks where backfill_id = '{plan_id}' "
        "group by 1 order by 1"
    )
    assert [list(s[1]) for s in states] == [steps] * 3
    assert query("select count(*) from backfill_audit.locks") == [(0,)]
    assert query(
        "select count(*) from backfill_audit.lineage "
        f"where backfill_id = '{plan_id}' and output_relation = 'marts.fct_trips'"
    ) == [(3,)]
    labels = _table_labels("marts.fct_trips")
    assert labels["backfill_id"] == plan_id
    assert labels["git_commit"]
    events = [
        json.loads(f.read_text())
        for f in sorted(Path(_openlineage_dir()).glob("*.json"))  # written by the run
    ]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    history = backfill("history", "--model", "fct_trips", "--json").json()
    assert history[0]["backfill_id"] == plan_id
    assert history[0]["rows_affected"] == sum(r for r, _ in in_range(after).values())

    with signed_in_as("carol"):
        rollback = backfill("rollback", plan_id, "--execute", "--requested-by", "Carol@Example.com")
    assert rollback.exit_code == 0, rollback.stderr
    assert checksums() == before
    recorded_before = {
        r[0]: (int(r[1]), r[2])
        for r in query(
            "select partition_date, row_count, checksum from backfill_audit.partition_checksums "
            f"where backfill_id = '{plan_id}' and phase = 'before'"
        )
    }
    assert recorded_before == in_range(before)
    assert query(
        "select status from backfill_audit.backfill_log "
        f"where backfill_id = '{plan_id}' order by event_no desc limit 1"
    ) == [("rolled_back",)]
    assert query("select requested_by, forced from backfill_audit.rollbacks") == [
        ("carol@example.com", False)
    ]
    assert _table_labels("marts.fct_trips") == {"backfill_id": plan_id, "rolled_back": "true"}
    versions = backfill("versions", "list", "fct_trips", "--json")
    assert [(v["version_no"], v["kind"]) for v in versions.json()] == [
        (1, "backfill"),
        (2, "rollback"),
    ]


def test_failed_validation_leaves_production_untouched(bq: BigQueryEnv) -> None:
    correct_trip(CORRECTED.isoformat(), extra_miles=100_000)  # a fare far above the 1000 cap
    plan_id = approved("--chunk-days", "3")
    before = checksums()

    run = backfill("run", plan_id, "--execute")
    assert run.exit_code == 1
    assert run.stderr.splitlines()[-1].startswith(
        f"Error: validation failed for fct_trips chunk 1 ({START}..2024-01-12): "
    )
    assert "fare_amount between 0 and 1000 [2024-01-12]" in run.stderr
    assert checksums() == before
    assert query(
        "select status from backfill_audit.backfill_log "
        f"where backfill_id = '{plan_id}' order by event_no desc limit 1"
    ) == [("failed_validation",)]
    assert query(
        "select check_name, partition_value, passed from backfill_audit.validation_reports "
        f"where backfill_id = '{plan_id}' and not passed order by check_name"
    ) == [
        # The one long trip also drags the chunk's means far from production's (too few
        # values for its quantiles to be compared: validate.MIN_VALUES_FOR_QUANTILES).
        ("distance_miles mean within x2 of production", "all", False),
        ("fare_amount between 0 and 1000", "2024-01-12", False),
        ("fare_amount mean within x2 of production", "all", False),
    ]
    staged = query("select table_name from backfill_staging.INFORMATION_SCHEMA.TABLES order by 1")
    assert staged == [(f"fct_trips__{plan_id}__c001",)]  # kept for inspection
    assert query("select count(*) from backfill_audit.locks") == [(0,)]


def _table_labels(relation: str) -> dict[str, str]:
    from orchestrator.warehouse.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse()
    try:
        return dict(wh.client.get_table(relation).labels)
    finally:
        wh.close()


def _openlineage_dir() -> str:
    import os

    return os.environ["OPENLINEAGE_DIR"]


def test_on_bigquery_the_signed_in_principal_acts_and_cannot_be_two_people(
    bq: BigQueryEnv,
) -> None:
    """alice's credentials plan; the same credentials cannot approve as bob (a name given
    may only restate the principal), nor as alice (four eyes); bob's credentials can."""
    plan = backfill(
        "plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-11", "--json",
        "--requested-by", " ALICE@example.com",
    )  # fmt: skip
    assert plan.exit_code == 0, plan.stderr
    plan_id = plan.json()["backfill_id"]
    assert plan.json()["requested_by"] == "alice@example.com"
    assert backfill("dry-run", plan_id).exit_code == 0

    posing = backfill("approve", plan_id, "--approver", "bob@example.com")
    assert (posing.exit_code, posing.stderr) == (
        2,
        "Error: approver 'bob@example.com' is not who is signed in to bigquery "
        "(alice@example.com): there the acting identity is the credentials' principal, "
        "which a name given may only restate\n",
    )
    own = backfill("approve", plan_id)
    assert (own.exit_code, own.stderr) == (
        2,
        "Error: fct_trips is critical: the approver must not be the requester "
        "(alice@example.com)\n",
    )
    assert query(
        f"select count(*) from backfill_audit.approvals where backfill_id = '{plan_id}'"
    ) == [(0,)]
    with signed_in_as("bob"):
        approval = backfill("approve", plan_id, "--json")
    assert approval.exit_code == 0, approval.stderr
    assert approval.json()["approver"] == "bob@example.com"
