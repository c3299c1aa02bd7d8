"""plan -> dry-run -> approve -> run --execute on a real warehouse, checked by checksums."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from support import approved, audit_counts, backfill, checksums, correct_a_fare, planned, query

START, END = date(2024, 1, 10), date(2024, 1, 20)


def test_full_flow_rewrites_only_its_range_and_records_everything(warehouse: Path) -> None:
    trip_id = correct_a_fare(warehouse)
    before = checksums(warehouse)
    fare_before = query(
        warehouse, f"select fare_amount from marts.fct_trips where trip_id = '{trip_id}'"
    )

    plan = backfill(
        "plan",
        "fct_trips",
        "--start",
        "2024-01-10",
        "--end",
        "2024-01-20",
        "--chunk-days",
        "4",
        "--requested-by",
        "alice",
        "--reason",
        "fare fix",
        "--json",
    )
    assert plan.exit_code == 0, plan.stderr
    plan_id = plan.json()["backfill_id"]
    assert [c["start"] for c in plan.json()["chunks"]] == ["2024-01-10", "2024-01-14", "2024-01-18"]
    assert plan.json()["impact"]["rows_now"] == sum(
        rows for d, (rows, _) in before.items() if START <= d <= END
    )
    assert "looker_driver_operations" in plan.json()["impact"]["exposures"]

    dry = backfill("dry-run", plan_id, "--json")
    assert dry.exit_code == 0, dry.stderr
    assert checksums(warehouse) == before  # a dry run writes nothing to marts
    compiled = Path(dry.json()["chunks"][0]["compiled_sql"])
    assert "2024-01-10" in (Path(__file__).parents[2] / compiled).read_text()

    assert backfill("approve", plan_id, "--approver", "bob").exit_code == 0
    run = backfill("run", plan_id, "--execute", "--requested-by", "alice", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "succeeded"

    after = checksums(warehouse)
    outside = {d: v for d, v in before.items() if not START <= d <= END}
    assert {d: v for d, v in after.items() if not START <= d <= END} == outside
    assert after[date(2024, 1, 15)] != before[date(2024, 1, 15)]
    assert {d: v for d, v in after.items() if START <= d <= END and d != date(2024, 1, 15)} == {
        d: v for d, v in before.items() if START <= d <= END and d != date(2024, 1, 15)
    }
    fare_after = query(
        warehouse, f"select fare_amount from marts.fct_trips where trip_id = '{trip_id}'"
    )
    assert fare_after[0][0] > fare_before[0][0]

    statuses = [
        r[0]
        for r in query(
            warehouse,
            f"select status from backfill_audit.backfill_log where backfill_id = '{plan_id}' "
            "order by event_no",
        )
    ]
    assert statuses == ["planned", "dry_run_ok", "approved", "running", "succeeded"]
    recorded = {
        r[0]: (r[1], r[2])
        for r in query(
            warehouse,
            "select partition_date, row_count, checksum from backfill_audit.partition_checksums "
            f"where backfill_id = '{plan_id}' and phase = 'after'",
        )
    }
    assert recorded == {d: v for d, v in after.items() if START <= d <= END}
    states = query(
        warehouse,
        "select chunk_no, list(state order by updated_at) from backfill_audit.backfill_chunks "
        f"where backfill_id = '{plan_id}' group by 1 order by 1",
    )
    steps = ["started", "backed_up", "staged", "validated", "published"]
    assert [s[1] for s in states] == [steps] * 3
    assert query(warehouse, "select count(*) from backfill_audit.locks") == [(0,)]
    events = [
        json.loads(f.read_text()) for f in sorted((warehouse.parent / "openlineage").glob("*.json"))
    ]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[1]["run"]["facets"]["nominalTime"]["nominalStartTime"] == "2024-01-10T00:00:00Z"
    assert events[1]["outputs"][0]["name"] == "marts.fct_trips"
    assert events[1]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == sum(
        rows for d, (rows, _) in after.items() if START <= d <= END
    )
    history = backfill("history", "--model", "fct_trips", "--json").json()
    assert history[0]["backfill_id"] == plan_id
    assert history[0]["approved_by"] == "bob"
    assert history[0]["rows_affected"] == sum(
        rows for d, (rows, _) in after.items() if START <= d <= END
    )


def test_running_the_same_plan_again_changes_nothing(warehouse: Path) -> None:
    plan_id = approved(warehouse)
    assert backfill("run", plan_id, "--execute").exit_code == 0
    first = checksums(warehouse)
    again = backfill("run", plan_id, "--execute", "--json")
    assert again.exit_code == 0
    assert again.json()["chunks_run"] == []
    assert checksums(warehouse) == first


def test_replanning_the_same_range_is_idempotent(warehouse: Path) -> None:
    before = checksums(warehouse)
    for _ in range(2):
        plan_id = approved(warehouse)
        assert backfill("run", plan_id, "--execute").exit_code == 0
        assert checksums(warehouse) == before  # no source change: byte-identical partitions


def test_run_without_execute_is_a_dry_run(warehouse: Path) -> None:
    plan_id = approved(warehouse)
    before, counts = checksums(warehouse), audit_counts(warehouse)
    result = backfill("run", plan_id)
    assert result.exit_code == 0
    assert "dry run: add --execute to write" in result.stdout
    assert checksums(warehouse) == before
    assert audit_counts(warehouse)["backfill_chunks"] == counts["backfill_chunks"] == 0


def test_critical_model_needs_another_approver(warehouse: Path) -> None:
    plan_id = planned(warehouse)
    assert backfill("dry-run", plan_id).exit_code == 0
    result = backfill("approve", plan_id, "--approver", "alice")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: fct_trips is critical: the approver must not be the requester (alice)\n"
    )


def test_non_critical_model_may_be_approved_by_its_requester(warehouse: Path) -> None:
    plan_id = planned(warehouse, "fct_driver_daily_earnings")
    assert backfill("dry-run", plan_id).exit_code == 0
    assert backfill("approve", plan_id, "--approver", "alice").exit_code == 0


def test_downstream_replay_rebuilds_the_daily_earnings_for_the_range(warehouse: Path) -> None:
    correct_a_fare(warehouse)
    before = checksums(warehouse, "marts.fct_driver_daily_earnings", "earning_date")
    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-20", "--downstream")
    status = backfill("status", plan_id, "--json").json()
    assert {c["model"] for c in status["chunks"]} == {
        "fct_trips",
        "fct_driver_daily_earnings",
        "fct_driver_daily_features",  # the online feature mart reads fct_trips too
    }
    assert backfill("run", plan_id, "--execute").exit_code == 0
    after = checksums(warehouse, "marts.fct_driver_daily_earnings", "earning_date")
    assert {d: v for d, v in after.items() if not START <= d <= END} == {
        d: v for d, v in before.items() if not START <= d <= END
    }
    assert after != before
