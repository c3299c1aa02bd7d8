"""CLI flows and whole-warehouse checks shared by the reliability tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from support import Result, backfill, query


def cli(project: Path, *args: str) -> Result:
    """`backfill ARGS` in this process against the frozen project copy."""
    return backfill(*args, project_dir=project)


def approved_plan(
    project: Path,
    model: str = "fct_trips",
    start: str = "2024-01-10",
    end: str = "2024-01-21",
    *extra: str,
    approver: str = "bob",
) -> str:
    """Plan (as alice), dry-run and approve; the plan id."""
    planned = cli(
        project, "plan", model, "--start", start, "--end", end, "--requested-by", "alice",
        "--json", *extra,
    )  # fmt: skip
    assert planned.exit_code == 0, planned.stderr
    plan_id = str(planned.json()["backfill_id"])
    dry = cli(project, "dry-run", plan_id)
    assert dry.exit_code == 0, dry.stderr
    approval = cli(project, "approve", plan_id, "--approver", approver)
    assert approval.exit_code == 0, approval.stderr
    return plan_id


def cli_process(
    project: Path, db: Path, *args: str, wait_seconds: float = 30
) -> subprocess.Popen[str]:
    """`python -m orchestrator ARGS` as a new process (the whole start-up included), with
    its own dbt target path so that processes started together do not share artifacts."""
    target = tempfile.mkdtemp(prefix="dbt-target-", dir=db.parent)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args, "--project-dir", str(project)],
        env={
            **os.environ,
            "RIDESHARE_DUCKDB_PATH": str(db),
            "BACKFILL_DUCKDB_WAIT_SECONDS": f"{wait_seconds:g}",
            "BACKFILL_DBT_TARGET_PATH": target,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def fingerprint(path: Path) -> dict[str, tuple[int, str]]:
    """(rows, checksum) of every table in the warehouse: any write anywhere changes it."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            f'"{schema}"."{name}"'
            for schema, name in con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_type = 'BASE TABLE' order by 1, 2"
            ).fetchall()
        ]
        out = {}
        for table in tables:
            row = con.execute(
                f"select count(*), coalesce(sum(hash(t)::hugeint), 0)::varchar from {table} t"
            ).fetchone()
            out[table] = (int(row[0]), str(row[1])) if row else (0, "0")
        return out


def latest_status(path: Path, backfill_id: str) -> tuple[str, str | None]:
    rows = query(
        path,
        "select status, error from backfill_audit.backfill_log "
        f"where backfill_id = '{backfill_id}' order by event_no desc limit 1",
    )
    return (str(rows[0][0]), rows[0][1]) if rows else ("none", None)


def chunk_states(path: Path, backfill_id: str) -> dict[int, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        import crash_harness

        return crash_harness.chunk_states(con, backfill_id)


def redeliver_trip(path: Path, day: str, extra_miles: float, batch: str) -> str:
    """A later bronze batch re-delivers the first completed trip of `day` with
    `extra_miles` more than its original delivery (0 restores it). Returns the trip id."""
    trip_id = str(
        query(
            path,
            f"select trip_id from marts.fct_trips where trip_date = '{day}' "
            "and trip_status = 'completed' order by trip_id limit 1",
        )[0][0]
    )
    query(
        path,
        f"""
        insert into bronze.trip_events
        select * replace (
            '{batch}' as _batch_id,
            date '{day}' + 1 as _ingested_date,
            distance_miles + {extra_miles} as distance_miles,
            distance_km + {extra_miles * 1.609344} as distance_km
        )
        from bronze.trip_events
        where trip_id = '{trip_id}' and event_type = 'completed'
        qualify row_number() over (order by _batch_id) = 1
        """,
    )
    return trip_id


def one_error_line(stderr: str) -> str:
    """The single `Error:` line of a refused command (failing if there are more or none)."""
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


def row(path: Path, sql: str) -> tuple[Any, ...]:
    return query(path, sql)[0]
