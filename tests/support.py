"""Helpers for tests that drive the real CLI against a real warehouse file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.warehouse.duckdb import partition_stats

REPO = Path(__file__).resolve().parents[1]
AUDIT_TABLES = (
    "plans",
    "backfill_log",
    "backfill_chunks",
    "partition_checksums",
    "approvals",
    "dry_runs",
    "validation_reports",
    "locks",
    "lock_events",
)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def backfill(*args: str, project_dir: Path = REPO) -> Result:
    """Invoke `backfill ARGS --project-dir REPO` in this process, like a user would."""
    command, *rest = args
    argv = [command, *rest, "--project-dir", str(project_dir)]
    if command == "versions":  # sub-groups take the option on their sub-command
        argv = [*args, "--project-dir", str(project_dir)]
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def checksums(
    path: Path, relation: str = "marts.fct_trips", field: str = "trip_date"
) -> dict[date, tuple[int, str]]:
    with duckdb.connect(str(path)) as con:
        return {d: (s.rows, s.checksum) for d, s in partition_stats(con, relation, field).items()}


def audit_counts(path: Path) -> dict[str, int]:
    """Rows per audit table (0 where the table does not exist yet)."""
    with duckdb.connect(str(path)) as con:
        existing = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'backfill_audit'"
            ).fetchall()
        }
        return {
            t: (con.execute(f"select count(*) from backfill_audit.{t}").fetchone() or [0])[0]
            if t in existing
            else 0
            for t in AUDIT_TABLES
        }


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql).fetchall()


def logged_status(path: Path, backfill_id: str) -> str:
    """The backfill's status: its latest `backfill_log` event."""
    rows = query(
        path,
        "select status from backfill_audit.backfill_log "
        f"where backfill_id = '{backfill_id}' order by event_no desc limit 1",
    )
    return str(rows[0][0]) if rows else "none"


def planned(
    path: Path,
    model: str = "fct_trips",
    start: str = "2024-01-10",
    end: str = "2024-01-20",
    *extra: str,
) -> str:
    """Plan a backfill as alice and return its id."""
    result = backfill(
        "plan", model, "--start", start, "--end", end, "--requested-by", "alice", "--json", *extra
    )
    assert result.exit_code == 0, result.stderr
    return str(result.json()["backfill_id"])


def approved(path: Path, *extra: str) -> str:
    plan_id = planned(path, *extra)
    assert backfill("dry-run", plan_id).exit_code == 0
    assert backfill("approve", plan_id, "--approver", "bob").exit_code == 0
    return plan_id


def correct_a_fare(path: Path, day: str = "2024-01-15") -> str:
    """A later bronze batch re-delivers one completed trip of `day` with 5 more miles.

    Each call is a new batch (later batches win in staging), so corrections stack.
    """
    trip_id = query(
        path,
        f"select trip_id from marts.fct_trips where trip_date = '{day}' "
        "and trip_status = 'completed' order by trip_id limit 1",
    )[0][0]
    batches = query(
        path, "select count(distinct _batch_id) from bronze.trip_events where _batch_id >= '2999'"
    )[0][0]
    query(
        path,
        f"""
        insert into bronze.trip_events
        select * replace (
            '2999{batches + 1:04d}-01' as _batch_id,
            date '{day}' + 1 as _ingested_date,
            distance_miles + 5 as distance_miles,
            distance_km + 8.04672 as distance_km
        )
        from bronze.trip_events
        where trip_id = '{trip_id}' and event_type = 'completed'
        qualify row_number() over (order by _batch_id desc) = 1
        """,
    )
    return str(trip_id)


def redeliver_with_unknown_rider(
    path: Path, day: str = "2024-01-15", batch: str = "29990001-01"
) -> str:
    """A later bronze batch re-delivers one trip's `requested` event with a rider id that
    no rider record has: the model's relationships test fails on the chunk holding `day`."""
    trip_id = query(
        path,
        f"select trip_id from marts.fct_trips where trip_date = '{day}' order by trip_id limit 1",
    )[0][0]
    query(
        path,
        f"""
        insert into bronze.trip_events
        select * replace ('{batch}' as _batch_id, 'r_nobody' as rider_id)
        from bronze.trip_events
        where trip_id = '{trip_id}' and event_type = 'requested'
        qualify row_number() over (order by _batch_id desc) = 1
        """,
    )
    return str(trip_id)
