"""Later bronze deliveries, on demand, for tests and the demo of `backfill detect`:

- late: trips of old days that were never delivered arrive now (new trip and event ids,
  their original event times);
- corrected: completed events of old trips are delivered again, same event ids, with a
  corrected distance (the later batch wins in staging);
- day: a day with no events at all (a gap) gets a whole day's events, copied from
  another day and shifted onto it.

Each delivery is one new batch `YYYYMMDD-NN` of the delivery day (-04 late, -05
corrected, -06 a gap's day), appended: bronze stays immutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from orchestrator.errors import BadInput

KINDS = {"late": "04", "corrected": "05", "day": "06"}
CORRECTION_MILES = 1.25


@dataclass(frozen=True)
class Delivery:
    kind: str
    batch_id: str
    days: tuple[date, ...]
    trips: int
    events: int


def deliver_late(
    con: duckdb.DuckDBPyConnection, days: list[date], trips_per_day: int, on: date
) -> Delivery:
    """`trips_per_day` finished trips of each day arrive again as trips never seen before."""
    batch = _batch(con, "late", on, days)
    picked = _trips(days, trips_per_day)
    trips = _count(con, picked)
    events = _append(
        con,
        f"""
        select * replace (
            trip_id || '-late' as trip_id, event_id || '-late' as event_id,
            date '{on}' as _ingested_date, '{batch}' as _batch_id
        )
        from latest where trip_id in ({picked})
        """,
    )
    return Delivery("late", batch, tuple(days), trips, events)


def deliver_corrected(
    con: duckdb.DuckDBPyConnection, days: list[date], trips_per_day: int, on: date
) -> Delivery:
    """The completed events of `trips_per_day` trips of each day arrive again, same ids,
    each trip CORRECTION_MILES longer."""
    batch = _batch(con, "corrected", on, days)
    picked = _trips(days, trips_per_day)
    trips = _count(con, picked)
    km = CORRECTION_MILES * 1.609344
    events = _append(
        con,
        f"""
        select * replace (
            distance_miles + {CORRECTION_MILES} as distance_miles,
            distance_km + {km} as distance_km,
            date '{on}' as _ingested_date, '{batch}' as _batch_id
        )
        from latest where trip_id in ({picked}) and event_type = 'completed'
        """,
    )
    return Delivery("corrected", batch, tuple(days), trips, events)


def deliver_day(con: duckdb.DuckDBPyConnection, day: date, like: date, on: date) -> Delivery:
    """A gap day gets its events: every event of `like`, moved to `day` with new ids."""
    batch = _batch(con, "day", on, [day])
    has = con.execute(
        "select count(*) from bronze.trip_events "
        "where event_type = 'requested' and cast(event_at as date) = ?",
        [day],
    ).fetchone()
    if has and has[0]:
        raise BadInput(f"{day} already has trips in bronze; a gap's day must have none")
    shift = (day - like).days
    picked = (
        "select trip_id from latest where event_type = 'requested' "
        f"and cast(event_at as date) = date '{like}'"
    )
    trips = _count(con, picked)
    events = _append(
        con,
        f"""
        select * replace (
            trip_id || '-{day:%Y%m%d}' as trip_id, event_id || '-{day:%Y%m%d}' as event_id,
            event_at + interval {shift} day as event_at,
            date '{on}' as _ingested_date, '{batch}' as _batch_id
        )
        from latest where trip_id in ({picked})
        """,
    )
    return Delivery("day", batch, (day,), trips, events)


def _batch(con: duckdb.DuckDBPyConnection, kind: str, on: date, days: list[date]) -> str:
    """The delivery's batch id; it must sort after every batch bronze holds (delivery order)."""
    if not days:
        raise BadInput("name at least one day to deliver")
    if any(day >= on for day in days):
        raise BadInput(f"a delivery on {on} can only bring days before it")
    batch = f"{on:%Y%m%d}-{KINDS[kind]}"
    latest = con.execute("select max(_batch_id) from bronze.trip_events").fetchone()
    if latest and latest[0] is not None and batch <= str(latest[0]):
        raise BadInput(
            f"batch {batch} would not be the latest (bronze has {latest[0]}); deliver on a "
            "later day"
        )
    return batch


def _trips(days: list[date], per_day: int) -> str:
    """The first `per_day` finished trips (by id) requested on each day."""
    if per_day < 1:
        raise BadInput(f"trips per day must be at least 1, not {per_day}")
    listed = ", ".join(f"date '{d}'" for d in days)
    return f"""
        select trip_id from (
            select trip_id, cast(min(event_at) as date) as day,
                   row_number() over (partition by cast(min(event_at) as date)
                                      order by trip_id) as n
            from latest
            where event_type in ('requested', 'completed')
            group by trip_id
            having count(distinct event_type) = 2
        ) where day in ({listed}) and n <= {int(per_day)}
    """


# Each event as its latest delivery has it (what staging reads).
_LATEST = (
    "with latest as (select * from bronze.trip_events "
    "qualify row_number() over (partition by event_id order by _batch_id desc) = 1) "
)


def _append(con: duckdb.DuckDBPyConnection, select: str) -> int:
    """Append the rows of `select` (reading `latest`: each event's latest delivery)."""
    before = con.execute("select count(*) from bronze.trip_events").fetchone()
    con.execute(f"insert into bronze.trip_events {_LATEST} {select}")
    after = con.execute("select count(*) from bronze.trip_events").fetchone()
    return int(after[0] if after else 0) - int(before[0] if before else 0)


def _count(con: duckdb.DuckDBPyConnection, trips: str) -> int:
    row = con.execute(f"{_LATEST} select count(*) from ({trips})").fetchone()
    return int(row[0]) if row else 0
