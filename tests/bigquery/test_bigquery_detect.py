"""`backfill detect` on BigQuery (the emulator): the ledger dbt's hooks wrote on the
emulator's `dbt build`, a late delivery in a later batch, and the detect that finds exactly
its day while its queries stay pruned to the new ingestion days. The emulator answers every
dry run with 0 bytes, so the bytes a detect reports are checked against what real BigQuery
would answer, put in the dry-run responses at the client's request layer."""

from __future__ import annotations

from typing import Any

import pytest
from bq_support import BigQueryEnv, backfill, query
from test_bigquery_warehouse import _answer_dry_runs_with, _record_job_requests

LATE_BATCH = "20240220-04"


def test_detect_finds_a_late_delivery_reading_only_new_ingestion_days(
    bq: BigQueryEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        query(
            "select count(*) from backfill_audit.build_ledger where writer = 'dbt' "
            "and model = 'fct_trips'"
        )[0][0]
        > 0
    )  # dbt's own build recorded it, through the project's hooks
    first = backfill("detect", "fct_trips", "--json")  # sets the cursor
    assert first.exit_code == 0, first.stderr
    assert first.json()[0]["partitions"] == []
    query(
        f"""
        insert into bronze.trip_events
        select * replace (
            concat(trip_id, '-late') as trip_id, concat(event_id, '-late') as event_id,
            date '2024-02-20' as _ingested_date, '{LATE_BATCH}' as _batch_id
        )
        from bronze.trip_events
        where trip_id in (
            select trip_id from bronze.trip_events
            where event_type = 'requested' and date(event_at) = date '2024-01-11'
            order by trip_id limit 3
        )
        """
    )
    sent: list[dict[str, Any]] = _record_job_requests(monkeypatch)
    _answer_dry_runs_with(monkeypatch, 4096)

    found = backfill("detect", "fct_trips", "--json")

    assert found.exit_code == 0, found.stderr
    report = found.json()[0]
    assert [(p["partition"], p["kind"], p["batches"]) for p in report["partitions"]] == [
        ("2024-01-11", "stale", [LATE_BATCH])
    ]
    assert report["bytes_scanned"] == 2 * 4096  # the bounds query and the partitions query
    dry_runs = [
        d["configuration"]["query"]["query"] for d in sent if d["configuration"].get("dryRun")
    ]
    assert len(dry_runs) == 2
    for sql in dry_runs:  # pruned to the ingestion days after the cursor's batch
        assert "_ingested_date >= cast('2024-" in sql
