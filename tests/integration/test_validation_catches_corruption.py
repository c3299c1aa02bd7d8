"""Bronze deliveries that are plainly wrong never reach production: each one below was
published before the checks derived from production and the whole-table key check
existed. Each ends in `failed_validation`, names the check that caught it, and leaves
every partition of fct_trips byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import approved, backfill, checksums, logged_status, query

RANGE = "trip_date between date '2024-01-10' and date '2024-01-20'"
LATE_BATCH = "29990200-01"  # sorts after every generated batch: its events win in staging


def completed_trips(where: str, limit: int) -> str:
    return (
        f"select trip_id from marts.fct_trips where {RANGE} and trip_status = 'completed' "
        f"and {where} order by trip_id limit {limit}"
    )


def redeliver(path: Path, event_type: str, trips: str, changes: str) -> None:
    """A later batch re-delivers the `event_type` events of `trips` with `changes`."""
    query(
        path,
        f"""
        insert into bronze.trip_events
        select * replace ('{LATE_BATCH}' as _batch_id, {changes})
        from bronze.trip_events
        where event_type = '{event_type}' and trip_id in ({trips})
        qualify row_number() over (partition by event_id order by _batch_id desc) = 1
        """,
    )


def negative_distances(path: Path) -> None:
    """30 trips arrive with negated distances (fares stay at the city minimum)."""
    redeliver(
        path,
        "completed",
        completed_trips("true", 30),
        "-distance_miles as distance_miles, -distance_km as distance_km",
    )


def short_trips_a_hundredfold(path: Path) -> None:
    """Every trip under 2 miles arrives 100 times longer: fares stay under the 1000 cap."""
    redeliver(
        path,
        "completed",
        completed_trips("distance_miles < 2", 10_000),
        "distance_miles * 100 as distance_miles, distance_km * 100 as distance_km",
    )


def fares_null_for_an_unknown_city(path: Path) -> None:
    """7 trips (0.3% of the range) move to a city without fare rules: their fare is null."""
    redeliver(path, "requested", completed_trips("true", 7), "'c_unknown' as city_id")


def trips_redelivered_on_a_later_day(path: Path) -> None:
    """3 trips of 2024-01-05 (outside the range) arrive again 10 days later with new event
    ids: inside the range they are new trips, yet production holds them on 2024-01-05."""
    trips = (
        "select trip_id from marts.fct_trips where trip_date = date '2024-01-05' "
        "and trip_status = 'completed' order by trip_id limit 3"
    )
    query(
        path,
        f"""
        insert into bronze.trip_events
        select * replace (
            event_id || '-again' as event_id,
            event_at + interval 10 day as event_at,
            date '2024-01-16' as _ingested_date,
            '{LATE_BATCH}' as _batch_id
        )
        from bronze.trip_events where trip_id in ({trips})
        qualify row_number() over (partition by event_id order by _batch_id desc) = 1
        """,
    )


@pytest.mark.parametrize(
    ("corrupt", "caught_by"),
    [
        (negative_distances, "distance_miles stays non-negative"),
        (short_trips_a_hundredfold, "distance_miles mean within x2 of production"),
        (fares_null_for_an_unknown_city, "fare_amount stays not null"),
        (trips_redelivered_on_a_later_day, "(trip_id) unique across the table"),
    ],
)
def test_a_corrupt_delivery_fails_validation_and_production_is_unchanged(
    warehouse: Path, corrupt: object, caught_by: str
) -> None:
    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "11")
    corrupt(warehouse)  # type: ignore[operator]
    before = checksums(warehouse)

    result = backfill("run", plan_id, "--execute")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        "Error: validation failed for fct_trips chunk 1 (2024-01-10..2024-01-20): "
    )
    assert caught_by in result.stderr
    failed = {
        r[0]
        for r in query(
            warehouse,
            "select check_name from backfill_audit.validation_reports "
            f"where backfill_id = '{plan_id}' and not passed",
        )
    }
    assert caught_by in failed
    assert logged_status(warehouse, plan_id) == "failed_validation"
    assert checksums(warehouse) == before
