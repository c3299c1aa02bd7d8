"""The dbt project on a real DuckDB file: partition overwrite rewrites exactly its range,
empties vanished days, is idempotent, picks up late events, refuses bad vars and bare
full refreshes, and publishes the versioned driver views.

Assertions compare per-partition checksums (`partition_stats`) before and after.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the fixtures' type, from this folder's conftest.py
    from conftest import DbtProject

pytestmark = pytest.mark.slow

# A newer delivery batch than anything the generator wrote for 2024-01-01..20.
LATE_BATCH = "20240301-01"
LATE_INGESTED = date(2024, 3, 1)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def split(stats: dict[date, Any], start: date, end: date) -> tuple[dict[date, Any], ...]:
    """(partitions inside [start, end], partitions outside it)."""
    inside = {d: s for d, s in stats.items() if start <= d <= end}
    outside = {d: s for d, s in stats.items() if not start <= d <= end}
    return inside, outside


def redeliver_completions_longer(project: DbtProject, requested_on: list[date]) -> int:
    """Append a newer batch re-delivering the `completed` events of the trips requested on
    `requested_on`, each 5 miles longer (bronze is append-only: a correction is a newer
    delivery of the same event_id). Returns the number of events re-delivered."""
    project.sql(
        f"""
        insert into bronze.trip_events
        select * replace (
            distance_miles + 5 as distance_miles,
            distance_km + 5 * 1.609344 as distance_km,
            date '{LATE_INGESTED}' as _ingested_date,
            '{LATE_BATCH}' as _batch_id
        )
        from bronze.trip_events
        where event_type = 'completed'
            and trip_id in (
                select trip_id from bronze.trip_events
                where event_type = 'requested' and cast(event_at as date) in ?
            )
        qualify row_number() over (partition by event_id order by _batch_id desc) = 1
        """,
        [requested_on],
    )
    rows = project.sql("select count(*) from bronze.trip_events where _batch_id = ?", [LATE_BATCH])
    return int(rows[0][0])


def add_trip(
    project: DbtProject,
    trip_id: str,
    requested_at: str,
    *,
    city_id: str = "c01",
    completed: bool = True,
) -> None:
    """Append one whole trip (requested, accepted, completed or cancelled) in a late batch."""
    driver, rider = project.sql(
        "select min(driver_id), min(rider_id) from bronze.trip_events where city_id = 'c01'"
    )[0]
    project.sql(
        f"""
        insert into bronze.trip_events by name
        select
            '{trip_id}-' || seq as event_id,
            '{trip_id}' as trip_id,
            event_type,
            timestamp '{requested_at}' + to_minutes(offset_minutes) as event_at,
            case when event_type <> 'requested' then ? end as driver_id,
            ? as rider_id,
            '{city_id}' as city_id,
            case when event_type = 'completed' then 1500 end as duration_seconds,
            1.00::decimal(4, 2) as surge_multiplier,
            case when event_type = 'completed' then 7.5 end as distance_miles,
            case when event_type = 'completed' then 20.00 end as base_fare,
            date '{LATE_INGESTED}' as _ingested_date,
            '{LATE_BATCH}' as _batch_id,
            1 as _schema_version
        from (values
            (1, 'requested', 0),
            (2, 'accepted', 2),
            (3, '{"completed" if completed else "cancelled"}', 30)
        ) as events(seq, event_type, offset_minutes)
        """,
        [driver, rider],
    )


# --- (a) a range backfill rewrites exactly its range ------------------------------------


def test_range_backfill_rewrites_exactly_the_range(dbt_project: DbtProject) -> None:
    start, end = date(2024, 1, 8), date(2024, 1, 10)
    before = dbt_project.partitions()
    # Corrections land for the range and for the days right outside it.
    corrected = redeliver_completions_longer(
        dbt_project, days(start - timedelta(days=1), end + timedelta(days=1))
    )
    assert corrected > 0
    trip_id, fare_before = dbt_project.sql(
        "select trip_id, fare_amount from marts.fct_trips "
        "where trip_date = ? and trip_status = 'completed' order by trip_id limit 1",
        [end],
    )[0]

    dbt_project.run_ok(
        "run",
        "--select",
        "fct_trips",
        dbt_vars={"backfill_start": str(start), "backfill_end": str(end)},
    )

    after = dbt_project.partitions()
    inside_before, outside_before = split(before, start, end)
    inside_after, outside_after = split(after, start, end)
    # Every partition outside the range is byte-identical, although its source changed too.
    assert outside_after == outside_before
    # Every partition inside it was rewritten: same trips (also those finishing after
    # midnight of the last day), new fares.
    assert set(inside_after) == set(days(start, end))
    for day in days(start, end):
        assert inside_after[day].rows == inside_before[day].rows
        assert inside_after[day].checksum != inside_before[day].checksum
    fare_after = dbt_project.sql(
        "select fare_amount from marts.fct_trips where trip_id = ?", [trip_id]
    )[0][0]
    assert fare_after > fare_before


# --- (b) a day whose source rows are gone is emptied ------------------------------------


def test_a_day_whose_source_rows_vanished_becomes_empty(dbt_project: DbtProject) -> None:
    emptied = date(2024, 1, 15)
    before = dbt_project.partitions()
    assert before[emptied].rows > 0
    # Simulates a source correction that withdraws a whole day. Bronze is append-only in
    # production; deleting from it is allowed only in this test's private scratch file.
    dbt_project.sql(
        """
        delete from bronze.trip_events
        where trip_id in (
            select trip_id from bronze.trip_events
            where event_type = 'requested' and cast(event_at as date) = ?
        )
        """,
        [emptied],
    )

    dbt_project.run_ok(
        "run",
        "--select",
        "fct_trips",
        dbt_vars={"backfill_start": str(emptied), "backfill_end": str(emptied)},
    )

    after = dbt_project.partitions()
    assert emptied not in after
    assert after == {d: s for d, s in before.items() if d != emptied}


# --- (c) re-running a range is idempotent -----------------------------------------------


def test_rerunning_a_range_is_idempotent(dbt_project: DbtProject) -> None:
    scope = {"backfill_start": "2024-01-05", "backfill_end": "2024-01-12"}
    relations = {
        "fct_trips": ("marts.fct_trips", "trip_date"),
        "fct_driver_daily_earnings": ("marts.fct_driver_daily_earnings", "earning_date"),
    }
    built = {name: dbt_project.partitions(*rel) for name, rel in relations.items()}

    for _ in range(2):
        dbt_project.run_ok("run", "--select", *relations, dbt_vars=scope)
        # Facts are pure functions of bronze and seeds: rebuilding the range from
        # unchanged inputs reproduces the full build's partitions byte for byte.
        assert {name: dbt_project.partitions(*rel) for name, rel in relations.items()} == built


# --- (d) late events land on a plain incremental run -----------------------------------


def test_late_events_inside_the_lookback_land_on_a_plain_run(dbt_project: DbtProject) -> None:
    before = dbt_project.partitions()
    latest = max(before)  # lookback_days 3: the run rewrites latest - 2 onwards
    late_day, new_day, old_day = (
        latest - timedelta(days=1),
        latest + timedelta(days=1),
        latest - timedelta(days=5),
    )
    add_trip(dbt_project, "t-late", f"{late_day} 10:00:00")
    add_trip(dbt_project, "t-new", f"{new_day} 09:00:00", completed=False)
    add_trip(dbt_project, "t-too-old", f"{old_day} 12:00:00")

    dbt_project.run_ok("run", "--select", "fct_trips")

    after = dbt_project.partitions()
    assert after[late_day].rows == before[late_day].rows + 1
    assert after[new_day].rows == 1
    # Partitions before the lookback window are untouched: the too-old trip waits for a
    # backfill of its day.
    window_start = latest - timedelta(days=2)
    assert {d: s for d, s in after.items() if d < window_start} == {
        d: s for d, s in before.items() if d < window_start
    }
    assert dbt_project.sql(
        "select trip_id, trip_status from marts.fct_trips "
        "where trip_id in ('t-late', 't-new', 't-too-old') order by trip_id"
    ) == [("t-late", "completed"), ("t-new", "cancelled")]


# --- (e) the versioned driver views -----------------------------------------------------


def test_versioned_driver_views_match_their_contracts(dbt_built: DbtProject) -> None:
    import json

    manifest = json.loads((dbt_built.target_path / "manifest.json").read_text())
    contracts = {
        f"dim_drivers_v{node['version']}": node["columns"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["name"] == "dim_drivers"
    }
    assert set(contracts) == {"dim_drivers_v1", "dim_drivers_v2"}
    assert {"driver_name", "tier", "vehicle"} <= set(contracts["dim_drivers_v1"])
    assert {"first_name", "last_name", "driver_tier", "vehicle_make", "vehicle_model"} <= set(
        contracts["dim_drivers_v2"]
    )
    contracts["dim_drivers"] = contracts["dim_drivers_v2"]  # the latest version

    def columns(view: str) -> list[tuple[str, str]]:
        return dbt_built.sql(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = ? order by ordinal_position",
            [view],
        )

    for view, contract in contracts.items():
        kind = dbt_built.sql(
            "select table_type from information_schema.tables "
            "where table_schema = 'marts' and table_name = ?",
            [view],
        )
        assert kind == [("VIEW",)], view
        # The contract's types as DuckDB spells them (the way dbt compares them).
        expected = [
            (name, dbt_built.sql(f"select typeof(cast(null as {column['data_type']}))")[0][0])
            for name, column in contract.items()
        ]
        assert sorted(columns(view)) == sorted(expected), view
        for name, _ in expected:
            assert contract[name]["description"], f"{view}.{name} has no description"

    rows = dbt_built.sql("select count(*) from marts.dim_drivers")[0][0]
    assert rows > 0
    assert dbt_built.sql(
        "select count(*) from ("
        " (select * from marts.dim_drivers except all select * from marts.dim_drivers_v2)"
        " union all"
        " (select * from marts.dim_drivers_v2 except all select * from marts.dim_drivers))"
    ) == [(0,)]
    assert dbt_built.sql(
        "select count(distinct driver_id) from marts.dim_drivers_v1"
    ) == dbt_built.sql("select count(distinct driver_id) from marts.dim_drivers_v2")


# --- (f) bad vars fail compilation with an exact message --------------------------------


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        (
            {"backfill_start": "2024-02-30", "backfill_end": "2024-03-01"},
            "backfill_start '2024-02-30' is not a valid ISO date (YYYY-MM-DD)",
        ),
        (
            {"backfill_start": "2024-02-07", "backfill_end": "2024-02-01"},
            "backfill_start 2024-02-07 is after backfill_end 2024-02-01",
        ),
        (
            {"backfill_start": "2024-02-01"},
            "backfill_start and backfill_end must be set together: "
            "got backfill_start without backfill_end",
        ),
        (
            {"backfill_start": "2024-02-01", "backfill_end": "2024-2-9"},
            "backfill_end '2024-2-9' is not a valid ISO date (YYYY-MM-DD)",
        ),
    ],
    ids=["not-a-date", "start-after-end", "start-only", "not-iso"],
)
def test_bad_vars_fail_with_a_clear_message(
    dbt_built: DbtProject, dbt_vars: dict[str, str], message: str
) -> None:
    before = dbt_built.partitions()
    result = dbt_built.invoke("run", "--select", "fct_trips", dbt_vars=dbt_vars)
    assert not result.success
    assert message in dbt_built.failure_text(result)
    assert dbt_built.partitions() == before


# --- (g) a bare --full-refresh is refused ------------------------------------------------


def test_bare_full_refresh_of_a_fact_is_refused(dbt_project: DbtProject) -> None:
    before = dbt_project.partitions()

    refused = dbt_project.invoke("run", "--select", "fct_trips", "--full-refresh")

    assert not refused.success
    assert (
        "--full-refresh of fct_trips would rebuild every partition and wipe its history: "
        "backfill a range with --vars '{backfill_start: ..., backfill_end: ...}' "
        "or confirm with --vars '{allow_full_refresh: true}'"
    ) in dbt_project.failure_text(refused)
    assert dbt_project.partitions() == before

    # Confirmed, the full refresh runs, and rebuilds the very same partitions.
    dbt_project.run_ok(
        "run", "--select", "fct_trips", "--full-refresh", dbt_vars={"allow_full_refresh": True}
    )
    assert dbt_project.partitions() == before


# --- (h) delete and insert are one transaction ------------------------------------------


def test_a_failed_insert_rolls_back_the_delete(dbt_project: DbtProject) -> None:
    before = dbt_project.partitions()
    # A trip in a city without fare rules: its fare is null, so the INSERT violates the
    # contract's not_null constraint on fare_amount after the DELETE already ran.
    add_trip(dbt_project, "t-unpriced", "2024-01-12 08:00:00", city_id="c99")

    failed = dbt_project.invoke(
        "run",
        "--select",
        "fct_trips",
        dbt_vars={"backfill_start": "2024-01-10", "backfill_end": "2024-01-14"},
    )

    assert not failed.success
    assert "NOT NULL constraint failed: fct_trips.fare_amount" in dbt_project.failure_text(failed)
    assert dbt_project.partitions() == before
