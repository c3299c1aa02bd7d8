"""The online store follows real backfills, end to end through the CLI (fct_trips replayed
with its downstream feature mart): a published chunk's rows reach Redis, an outage leaves
the publish and a pending sync that `backfill sync` pushes later, and a rollback puts the
restored rows back."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from online_support import FEATURES, MODEL, PF, RedisServer, days, redis_rows, warehouse_rows
from support import backfill, checksums, correct_a_fare, query

from orchestrator.warehouse.duckdb import DuckDBWarehouse

RANGE = ("2024-01-10", "2024-01-16")
WEEK = days(date(2024, 1, 10), date(2024, 1, 16))


def approved_plan() -> str:
    """fct_trips replayed with its downstream models, the feature mart among them."""
    result = backfill(
        "plan", "fct_trips", "--start", RANGE[0], "--end", RANGE[1], "--downstream",
        "--requested-by", "alice", "--reason", "late fare fix", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    plan_id = str(result.json()["backfill_id"])
    assert backfill("dry-run", plan_id).exit_code == 0
    assert backfill("approve", plan_id, "--approver", "bob").exit_code == 0
    return plan_id


def rows_of(path: Path) -> dict[str, dict[str, str]]:
    wh = DuckDBWarehouse(path)
    try:
        return warehouse_rows(wh, WEEK)
    finally:
        wh.close()


def sync_states(path: Path) -> list[tuple[str, str]]:
    return query(
        path,
        "select kind, status from backfill_audit.online_syncs "
        "qualify row_number() over (partition by sync_id order by attempt desc) = 1 "
        "order by recorded_at",
    )


def test_a_backfill_pushes_its_published_rows_and_a_rollback_restores_them(
    warehouse: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKFILL_REDIS_URL", redis_server.url)
    client = redis_server.client()
    correct_a_fare(warehouse, "2024-01-12")
    before = rows_of(warehouse)
    plan_id = approved_plan()

    assert backfill("run", plan_id, "--execute").exit_code == 0
    assert rows_of(warehouse) != before  # the corrected fare changed a driver's day
    assert redis_rows(client) == rows_of(warehouse)
    assert sync_states(warehouse) == [("publish", "synced")]

    changes = redis_server.changes()
    assert backfill("sync", MODEL).stdout.startswith(f"{MODEL}: no online sync is pending")
    assert redis_server.changes() == changes  # nothing pending: nothing written

    rolled = backfill("rollback", plan_id, "--execute", "--requested-by", "carol")
    assert rolled.exit_code == 0, rolled.stderr
    assert rows_of(warehouse) == before
    assert redis_rows(client) == before
    assert sync_states(warehouse) == [("publish", "synced"), ("rollback", "synced")]


def test_an_outage_leaves_the_publish_and_backfill_sync_pushes_it_later(
    warehouse: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKFILL_REDIS_URL", redis_server.url)
    correct_a_fare(warehouse, "2024-01-12")
    plan_id = approved_plan()
    redis_server.stop()

    run = backfill("run", plan_id, "--execute")
    assert run.exit_code == 0, run.stderr  # the publish stands
    published = checksums(warehouse, FEATURES, PF)
    assert sync_states(warehouse) == [("publish", "pending")]
    still_down = backfill("sync", MODEL)
    assert still_down.exit_code == 1
    assert still_down.stderr.startswith(f"Error: 1 online sync(s) of {MODEL} are still pending: ")

    redis_server.start()
    synced = backfill("sync", MODEL)
    assert synced.exit_code == 0, synced.stderr
    assert redis_rows(redis_server.client()) == rows_of(warehouse)
    assert sync_states(warehouse) == [("publish", "synced")]
    assert checksums(warehouse, FEATURES, PF) == published
