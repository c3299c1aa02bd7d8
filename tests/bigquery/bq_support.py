"""Helpers for the BigQuery suite: the real CLI with `--target bigquery`, checksums, SQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import support
from support import Result

from orchestrator.warehouse.bigquery import BigQueryWarehouse

if TYPE_CHECKING:
    import emulator

REPO = Path(__file__).resolve().parents[2]
PROJECT = "rideshare-test"  # the emulator's GCP project
EVERY_DAY = (date(2000, 1, 1), date(2099, 12, 31))


def backfill(*args: str, project_dir: Path = REPO) -> Result:
    """Invoke `backfill ARGS --target bigquery --project-dir REPO` in this process."""
    return support.backfill(*args, "--target", "bigquery", project_dir=project_dir)


def query(sql: str) -> list[tuple[Any, ...]]:
    wh = BigQueryWarehouse()
    try:
        return wh.query(sql)
    finally:
        wh.close()


def checksums(
    relation: str = "marts.fct_trips", field: str = "trip_date"
) -> dict[date, tuple[int, str]]:
    """(rows, checksum) of every partition, by the warehouse's own partition_stats."""
    wh = BigQueryWarehouse()
    try:
        stats = wh.partition_stats(relation, field, *EVERY_DAY)
    finally:
        wh.close()
    return {d: (s.rows, s.checksum) for d, s in stats.items()}


def principal_token(name: str) -> str:
    """A bearer token the emulator reads as the user `name@example.com` (as Google's
    token service names the user a real token belongs to)."""
    return f"principal:user:{name}@example.com"


@contextmanager
def signed_in_as(name: str) -> Iterator[None]:
    """Act as another person: their credentials, as a second person would have."""
    previous = os.environ["BIGQUERY_TOKEN"]
    os.environ["BIGQUERY_TOKEN"] = principal_token(name)
    try:
        yield
    finally:
        os.environ["BIGQUERY_TOKEN"] = previous


def planned(
    start: str = "2024-01-10", end: str = "2024-01-16", *extra: str, project_dir: Path = REPO
) -> str:
    """A plan by alice (who is signed in unless a test says otherwise)."""
    result = backfill(
        "plan", "fct_trips", "--start", start, "--end", end, "--json", *extra,
        project_dir=project_dir,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return str(result.json()["backfill_id"])


def approved(*extra: str) -> str:
    plan_id = planned("2024-01-10", "2024-01-16", *extra)
    dry = backfill("dry-run", plan_id)
    assert dry.exit_code == 0, dry.stderr
    with signed_in_as("bob"):
        approval = backfill("approve", plan_id, "--approver", "bob@example.com")
    assert approval.exit_code == 0, approval.stderr
    return plan_id


def correct_trip(day: str = "2024-01-12", extra_miles: float = 5.0) -> str:
    """A later bronze batch re-delivers one completed trip of `day` with more miles.

    Each call is a new batch (later batches win in staging), so corrections stack.
    """
    trip_id = query(
        f"select trip_id from marts.fct_trips where trip_date = '{day}' "
        "and trip_status = 'completed' order by trip_id limit 1"
    )[0][0]
    batches = query(
        "select count(distinct _batch_id) from bronze.trip_events where _batch_id >= '2999'"
    )[0][0]
    query(
        f"""
        insert into bronze.trip_events
        select * replace (
            '2999{int(batches) + 1:04d}-01' as _batch_id,
            date_add(date '{day}', interval 1 day) as _ingested_date,
            distance_miles + {extra_miles} as distance_miles,
            distance_km + {extra_miles * 1.609344} as distance_km
        )
        from bronze.trip_events
        where trip_id = '{trip_id}' and event_type = 'completed'
        qualify row_number() over (order by _batch_id desc) = 1
        """
    )
    return str(trip_id)


@dataclass(frozen=True)
class BigQueryEnv:
    """The emulator and the env vars that point dbt and the orchestrator at it."""

    emulator: emulator.Emulator
    dbt_target_path: Path

    def env(self) -> dict[str, str]:
        return {
            "BIGQUERY_PROJECT": PROJECT,
            "BIGQUERY_LOCATION": "US",
            "BIGQUERY_METHOD": "oauth-secrets",
            # Who acts: the emulator reads the caller from this token (scripts/bqemu/serve.py).
            "BIGQUERY_TOKEN": principal_token("alice"),
            "BIGQUERY_API_ENDPOINT": self.emulator.endpoint,
            "BIGQUERY_DATASET": "rideshare",
            # Switches on macros/emulator/ (dbt-bigquery SQL the emulator cannot run).
            "RIDESHARE_BQ_EMULATOR": "true",
            "DBT_TARGET": "bigquery",
            "BACKFILL_DBT_TARGET_PATH": str(self.dbt_target_path),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }

    def apply(self, mp: pytest.MonkeyPatch) -> None:
        for key, value in self.env().items():
            mp.setenv(key, value)
        mp.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
