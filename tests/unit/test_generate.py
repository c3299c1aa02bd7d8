"""The bronze generator on real DuckDB files with tiny data: determinism, shape, appends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from orchestrator.demo.generate import (
    SCHEMA_V2_FROM,
    GenerateResult,
    _Generator,
    generate_bronze,
)
from orchestrator.errors import BadInput

START = date(2024, 1, 20)  # 60 days across the 2024-02-15 schema v2 cut-over
DAYS = 60
TRIPS_PER_DAY = 150
SEED = 11
TABLES = ("trip_events", "drivers", "riders")
PAYLOAD = (
    "event_id, trip_id, event_type, event_at, driver_id, rider_id, city_id, duration_seconds,"
    " surge_multiplier, distance_miles, base_fare, distance_km, base_fare_cents, _schema_version"
)


def _generate(path: Path, **overrides: object) -> GenerateResult:
    args: dict[str, object] = {
        "days": DAYS,
        "trips_per_day": TRIPS_PER_DAY,
        "seed": SEED,
        "start_date": START,
    }
    args.update(overrides)
    with duckdb.connect(str(path)) as con:
        return generate_bronze(con, **args)  # type: ignore[arg-type]


def _checksums(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    out = {}
    for table in TABLES:
        row = con.execute(
            f"select count(*), sum(hash(t)::hugeint)::varchar from bronze.{table} as t"
        ).fetchone()
        assert row is not None
        out[table] = (int(row[0]), str(row[1]))
    return out


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GenerateResult, duckdb.DuckDBPyConnection]]:
    """One generated warehouse shared by the read-only checks of this module."""
    path = tmp_path_factory.mktemp("bronze") / "warehouse.duckdb"
    result = _generate(path)
    with duckdb.connect(str(path), read_only=True) as con:
        yield result, con


@pytest.fixture
def bronze(
    generated: tuple[GenerateResult, duckdb.DuckDBPyConnection],
) -> duckdb.DuckDBPyConnection:
    return generated[1]


def test_same_arguments_give_identical_tables_also_after_an_append(tmp_path: Path) -> None:
    sums = {}
    for name, seed in (("a", SEED), ("b", SEED), ("other_seed", SEED + 1)):
        path = tmp_path / f"{name}.duckdb"
        _generate(path, days=10, seed=seed)
        _generate(path, days=3, seed=seed, start_date=date(2024, 2, 3))
        with duckdb.connect(str(path), read_only=True) as con:
            sums[name] = _checksums(con)
    assert sums["a"] == sums["b"]
    assert all(rows > 0 for rows, _ in sums["a"].values())
    for table in TABLES:
        assert sums["other_seed"][table][1] != sums["a"][table][1]


def test_trips_do_not_depend_on_how_the_range_is_split(tmp_path: Path) -> None:
    _generate(tmp_path / "one.duckdb", days=6)
    _generate(tmp_path / "two.duckdb", days=4)
    _generate(tmp_path / "two.duckdb", days=2, start_date=date(2024, 1, 24))
    with (
        duckdb.connect(str(tmp_path / "one.duckdb")) as one,
        duckdb.connect(str(tmp_path / "two.duckdb")) as two,
    ):
        assert _checksums(one)["trip_events"] == _checksums(two)["trip_events"]


def test_result_counts_match_the_tables(
    generated: tuple[GenerateResult, duckdb.DuckDBPyConnection],
) -> None:
    result, con = generated
    assert (result.start_date, result.end_date) == (START, date(2024, 3, 19))
    counts = {t: _scalar(con, f"select count(*) from bronze.{t}") for t in TABLES}
    late = _scalar(con, "select count(*) from bronze.trip_events where _batch_id like '%-02'")
    dups = _scalar(con, "select count(*) from bronze.trip_events where _batch_id like '%-03'")
    assert counts == {
        "trip_events": result.trip_events,
        "drivers": result.drivers,
        "riders": result.riders,
    }
    assert (late, dups) == (result.late_events, result.duplicate_events)
    assert result.seconds >= 0


def test_columns_follow_the_conventions(bronze: duckdb.DuckDBPyConnection) -> None:
    def columns(table: str) -> list[tuple[str, str]]:
        rows = bronze.execute(
            "select column_name, data_type from duckdb_columns()"
            " where schema_name = 'bronze' and table_name = ? order by column_index",
            [table],
        ).fetchall()
        return [(str(name), str(kind)) for name, kind in rows]

    ingestion = [
        ("_ingested_date", "DATE"),
        ("_batch_id", "VARCHAR"),
        ("_schema_version", "INTEGER"),
    ]
    assert columns("trip_events") == [
        ("event_id", "VARCHAR"),
        ("trip_id", "VARCHAR"),
        ("event_type", "VARCHAR"),
        ("event_at", "TIMESTAMP"),
        ("driver_id", "VARCHAR"),
        ("rider_id", "VARCHAR"),
        ("city_id", "VARCHAR"),
        ("duration_seconds", "INTEGER"),
        ("surge_multiplier", "DECIMAL(4,2)"),
        ("distance_miles", "DOUBLE"),
        ("base_fare", "DECIMAL(10,2)"),
        ("distance_km", "DOUBLE"),
        ("base_fare_cents", "BIGINT"),
        *ingestion,
    ]
    assert columns("drivers") == [
        ("driver_id", "VARCHAR"),
        ("full_name", "VARCHAR"),
        ("city_id", "VARCHAR"),
        ("rating", "DECIMAL(3,2)"),
        ("tier", "VARCHAR"),
        ("vehicle_make", "VARCHAR"),
        ("vehicle_model", "VARCHAR"),
        ("vehicle_year", "INTEGER"),
        ("signed_up_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        *ingestion,
    ]
    assert columns("riders") == [
        ("rider_id", "VARCHAR"),
        ("full_name", "VARCHAR"),
        ("email", "VARCHAR"),
        ("city_id", "VARCHAR"),
        ("signed_up_at", "TIMESTAMP"),
        *ingestion,
    ]


def test_both_schema_versions_fill_their_own_fare_columns(
    bronze: duckdb.DuckDBPyConnection,
) -> None:
    rows = bronze.execute(
        """
        select _schema_version,
               min(event_at::date), max(event_at::date),
               count(*) filter (where distance_miles is not null and base_fare is not null),
               count(*) filter (where distance_km is not null and base_fare_cents is not null),
               count(*)
        from bronze.trip_events
        where event_type = 'completed'
        group by 1 order by 1
        """
    ).fetchall()
    (v1, v1_first, v1_last, v1_old, v1_new, v1_rows) = rows[0]
    (v2, v2_first, v2_last, v2_old, v2_new, v2_rows) = rows[1]
    assert (v1, v2) == (1, 2)
    assert v1_first == START
    assert v1_last < SCHEMA_V2_FROM <= v2_first
    assert v2_last <= date(2024, 3, 20)  # trips of the last day may end after midnight
    assert (v1_old, v1_new) == (v1_rows, 0)
    assert (v2_old, v2_new) == (0, v2_rows)
    versions = bronze.execute(
        "select distinct _schema_version from bronze.drivers"
        " union select distinct _schema_version from bronze.riders"
    ).fetchall()
    assert versions == [(1,)]


def test_measures_only_on_completed_events(bronze: duckdb.DuckDBPyConnection) -> None:
    rows = bronze.execute(
        """
        select event_type,
               count(*) filter (where duration_seconds is not null
                                  or coalesce(distance_miles, distance_km) is not null
                                  or coalesce(base_fare, base_fare_cents) is not null),
               count(*) filter (where driver_id is null),
               count(*)
        from bronze.trip_events group by 1 order by 1
        """
    ).fetchall()
    by_type = {str(kind): (measured, no_driver, n) for kind, measured, no_driver, n in rows}
    assert set(by_type) == {"accepted", "cancelled", "completed", "requested"}
    assert by_type["completed"][0] == by_type["completed"][2]
    assert by_type["requested"][1] == by_type["requested"][2]
    assert by_type["accepted"][1] == by_type["completed"][1] == 0
    assert all(by_type[kind][0] == 0 for kind in ("accepted", "cancelled", "requested"))
    surge = bronze.execute(
        "select min(surge_multiplier), max(surge_multiplier), avg((surge_multiplier = 1)::int)"
        " from bronze.trip_events"
    ).fetchone()
    assert surge is not None
    assert 1 == surge[0] < surge[1] <= 2.5
    assert surge[2] > 0.6


def test_trip_lifecycles(bronze: duckdb.DuckDBPyConnection) -> None:
    row = bronze.execute(
        """
        with events as (select distinct on (event_id) * from bronze.trip_events),
        trips as (
            select trip_id,
                   count(*) filter (where event_type = 'requested') as requested,
                   count(*) filter (where event_type = 'accepted') as accepted,
                   count(*) filter (where event_type = 'completed') as completed,
                   count(*) filter (where event_type = 'cancelled') as cancelled,
                   min(event_at) filter (where event_type = 'requested') as requested_at,
                   max(event_at) as last_at,
                   min(event_at::date) filter (where event_type = 'requested') as trip_date,
                   max(event_at::date) as last_date
            from events group by trip_id
        )
        select count(*),
               count(*) filter (where completed + cancelled != 1 or requested != 1
                                      or accepted > 1 or (completed = 1 and accepted = 0)),
               count(*) filter (where requested_at > last_at),
               avg(accepted::double), avg(completed::double),
               count(*) filter (where last_date > trip_date)
        from trips
        """
    ).fetchone()
    assert row is not None
    trips, broken, out_of_order, accepted, completed, after_midnight = row
    assert trips == DAYS * TRIPS_PER_DAY
    assert broken == 0  # one requested, at most one accepted, completed xor cancelled
    assert out_of_order == 0
    assert 0.90 < accepted < 0.96
    assert 0.80 < completed < 0.88  # ~93% accepted x ~90% completed
    assert after_midnight > 0


def test_identifiers_and_cities(bronze: duckdb.DuckDBPyConnection) -> None:
    row = bronze.execute(
        """
        select count(distinct city_id), min(city_id), max(city_id),
               bool_and(regexp_full_match(trip_id, 't\\d{8}-\\d{7}')),
               bool_and(starts_with(event_id, 'e' || trip_id[2:] || '-')),
               bool_and(regexp_full_match(rider_id, 'r\\d{6}')),
               bool_and(driver_id is null or regexp_full_match(driver_id, 'd\\d{5}')),
               count(*) filter (where rider_id not in (select rider_id from bronze.riders)),
               count(*) filter (where driver_id not in (select driver_id from bronze.drivers))
        from bronze.trip_events
        """
    ).fetchone()
    assert row == (8, "c01", "c08", True, True, True, True, 0, 0)
    per_driver = bronze.execute(
        "select count(*) from (select driver_id from bronze.drivers"
        " group by 1 having count(distinct city_id) > 1 or count(distinct full_name) > 1)"
    ).fetchone()
    assert per_driver == (0,)


def test_ingestion_batches(bronze: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES:
        bad = _scalar(
            bronze,
            f"select count(*) from bronze.{table}"
            " where _batch_id[:8] != strftime(_ingested_date, '%Y%m%d')"
            " or not regexp_full_match(_batch_id, '\\d{8}-0[123]')",
        )
        assert bad == 0, table
    row = bronze.execute(
        """
        select count(*) filter (where _batch_id like '%-01'
                                and _ingested_date != event_at::date),
               count(*) filter (where _batch_id like '%-02'
                                and _ingested_date - event_at::date not between 1 and 3),
               count(*) filter (where _batch_id like '%-02') / count(*),
               count(*) filter (where _batch_id like '%-03') / count(*),
               max(_ingested_date)
        from bronze.trip_events
        """
    ).fetchone()
    assert row is not None
    on_time_wrong, late_wrong, late_share, duplicate_share, last_ingested = row
    assert on_time_wrong == late_wrong == 0
    assert 0.02 < late_share < 0.04
    assert 0.005 < duplicate_share < 0.015
    assert last_ingested > date(2024, 3, 19)  # late deliveries arrive after the range


def test_duplicates_repeat_the_payload_in_a_later_batch(
    bronze: duckdb.DuckDBPyConnection,
) -> None:
    row = bronze.execute(
        f"""
        with copies as (
            select event_id,
                   count(*) as deliveries,
                   count(distinct ({PAYLOAD})) as payloads,
                   count(distinct _batch_id) as batches,
                   bool_or(_batch_id like '%-03') as has_redelivery,
                   max(_batch_id) filter (where _batch_id like '%-03')
                       = max(_batch_id) as redelivery_is_last
            from bronze.trip_events group by event_id
        )
        select count(*) filter (where deliveries = 2),
               count(*) filter (where deliveries > 2),
               count(*) filter (where deliveries = 2 and not (payloads = 1 and batches = 2
                                      and has_redelivery and redelivery_is_last)),
               count(*) filter (where deliveries = 1 and has_redelivery)
        from copies
        """
    ).fetchone()
    assert row is not None
    duplicated, more, wrong, orphans = row
    assert duplicated > 0
    assert more == wrong == orphans == 0


def test_rows_are_written_in_ingestion_order(bronze: duckdb.DuckDBPyConnection) -> None:
    """On-time rows first, in trip order (request day and time); then late and re-delivered
    rows sorted by ingestion day, batch and event time. Row groups then span a day or two
    of `event_at` and `_ingested_date`, which is what a backfill's scan prunes on.

    DuckDB writes each block of ~2048 trips as their first events, then their second
    ones, then their third ones, so trip order holds per event sequence number."""
    row = bronze.execute(
        """
        with ordered as (
            select _batch_id like '%-01' as on_time, event_type, event_at, _ingested_date,
                   _batch_id, trip_id, event_id[-1:] as seq, rowid as position
            from bronze.trip_events
        ), on_time as (
            select trip_id < lag(trip_id) over (partition by seq order by position)
                       as trip_goes_back,
                   event_type = 'requested'
                       and event_at < lag(event_at) over (partition by seq order by position)
                       as request_goes_back
            from ordered where on_time
        ), late as (
            select (_ingested_date, _batch_id, event_at)
                       < lag((_ingested_date, _batch_id, event_at)) over (order by position)
                       as goes_back
            from ordered where not on_time
        )
        select (select max(position) from ordered where on_time)
                   < (select min(position) from ordered where not on_time),
               (select count(*) filter (where trip_goes_back or request_goes_back) from on_time),
               (select count(*) filter (where goes_back) from late),
               (select count(*) from late)
        """
    ).fetchone()
    assert row is not None
    on_time_first, on_time_back, late_back, late_rows = row
    assert on_time_first is True
    assert on_time_back == late_back == 0
    assert late_rows > 0


def test_request_times_follow_the_daily_profile(bronze: duckdb.DuckDBPyConnection) -> None:
    """25% of requests in a morning peak (05:00-10:00), 35% in an evening peak
    (14:30-21:30), 40% spread over the day, each on its trip's day."""
    row = bronze.execute(
        """
        select avg((hour(event_at) between 5 and 9)::int),
               avg((event_at::time between '14:30' and '21:30')::int),
               avg((hour(event_at) between 0 and 3)::int),
               count(*) filter (where event_at::date != strptime(trip_id[2:9], '%Y%m%d')::date)
        from bronze.trip_events where event_type = 'requested'
        """
    ).fetchone()
    assert row is not None
    morning, evening, night, other_day = row
    assert 0.30 < morning < 0.37  # 25% + 40% * 5/24
    assert 0.43 < evening < 0.50  # 35% + 40% * 7/24
    assert 0.05 < night < 0.08  # 40% * 4/24
    assert other_day == 0


def test_row_order_does_not_depend_on_threads(tmp_path: Path) -> None:
    """The insert runs in parallel; DuckDB's batch insert keeps the rows in source order."""
    sums = []
    for threads in (1, 2):
        path = tmp_path / f"threads_{threads}.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute(f"set threads = {threads}")
            # more trips than a row group (122,880 rows) holds: two scan tasks, two batches
            generate_bronze(con, days=1, trips_per_day=123_000, seed=SEED, start_date=START)
            sums.append(
                _scalar(con, "select sum(hash(rowid, t)::hugeint) from bronze.trip_events as t")
            )
    assert sums[0] == sums[1]


def test_event_inserts_are_planned_as_parallel_batch_inserts(tmp_path: Path) -> None:
    """A plain INSERT plan is single-threaded (half the speed on two cores): DuckDB picks
    one when a source cannot number its batches, e.g. a joined `list()` aggregate."""
    with duckdb.connect(str(tmp_path / "plan.duckdb")) as con:
        con.execute("set threads = 2")
        generate_bronze(con, days=2, trips_per_day=10, seed=SEED, start_date=START)
        gen = _Generator(
            schema="bronze",
            seed=SEED,
            first_day=(date(2024, 3, 1) - date(1970, 1, 1)).days,
            days=2,
            trips_per_day=10,
            existing_drivers=20,
            existing_riders=50,
        )
        con.execute(gen.trip_numbers_sql())
        con.execute(gen.late_deliveries_sql())
        for late in (False, True):
            plan = str(con.execute("explain " + gen.trip_events_sql(late=late)).fetchall())
            assert "BATCH_INSERT" in plan, late


def test_drivers_have_history(bronze: duckdb.DuckDBPyConnection) -> None:
    row = bronze.execute(
        """
        select count(distinct driver_id),
               count(*) filter (where _ingested_date = ?) ,
               max(changes),
               count(*) filter (where updated_at < signed_up_at)
        from (select *, count(*) over (partition by driver_id) as changes from bronze.drivers)
        """,
        [START],
    ).fetchone()
    assert row is not None
    drivers, initial_or_first_day, most_records, before_signup = row
    assert drivers == 20  # max(20, trips_per_day / 10)
    assert initial_or_first_day >= drivers
    assert most_records > 1
    assert before_signup == 0
    same_start = _scalar(
        bronze,
        "select count(*) from (select driver_id, updated_at from bronze.drivers"
        " group by all having count(*) > 1)",
    )
    assert same_start == 0
    riders = _scalar(bronze, "select count(*) from bronze.riders")
    assert riders == 75  # max(50, trips_per_day / 2)


def test_append_after_the_range_adds_days_drivers_changes_and_riders(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    _generate(path, days=10)
    second = _generate(path, days=5, start_date=date(2024, 2, 5))
    assert (second.start_date, second.end_date) == (date(2024, 2, 5), date(2024, 2, 9))
    assert second.trip_events > 0
    assert second.riders >= 1
    with duckdb.connect(str(path), read_only=True) as con:
        assert _scalar(con, "select count(distinct trip_id) from bronze.trip_events") == (
            15 * TRIPS_PER_DAY
        )
        assert _scalar(con, "select count(distinct rider_id) from bronze.riders") == (
            75 + second.riders
        )
        first_new_rider = _scalar(
            con, "select min(_ingested_date) from bronze.riders where rider_id > 'r000075'"
        )
        assert isinstance(first_new_rider, date)
        assert first_new_rider >= date(2024, 2, 5)
        initial_records = _scalar(
            con, "select count(*) from bronze.drivers where updated_at < '2024-01-20'"
        )
        assert initial_records == 20  # no second initial record on the append
        newest_change = _scalar(con, "select max(updated_at) from bronze.drivers")
        assert isinstance(newest_change, datetime)
        assert newest_change.date() <= date(2024, 2, 9)


def test_a_file_named_bronze_does_not_confuse_catalog_and_schema(tmp_path: Path) -> None:
    result = _generate(tmp_path / "bronze.duckdb", days=2)
    with duckdb.connect(str(tmp_path / "bronze.duckdb"), read_only=True) as con:
        rows = _scalar(con, "select count(*) from bronze.bronze.trip_events")
    assert rows == result.trip_events > 0


def test_overlapping_append_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    _generate(path, days=10)
    with duckdb.connect(str(path)) as con:
        before = _checksums(con)
    for start in (date(2024, 1, 29), date(2024, 1, 25), date(2023, 12, 1)):
        with pytest.raises(BadInput) as raised:
            _generate(path, days=5, start_date=start)
        assert str(raised.value) == (
            "bronze already holds events for 2024-01-20..2024-01-29;"
            " choose --start-date after 2024-01-29"
        )
    with duckdb.connect(str(path)) as con:
        assert _checksums(con) == before


def test_a_refused_append_leaves_no_temporary_tables(tmp_path: Path) -> None:
    """The trips are numbered in temporary tables before the transaction; they are dropped
    whether the call writes or is refused, and the connection stays usable."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        generate_bronze(con, days=3, trips_per_day=TRIPS_PER_DAY, seed=SEED, start_date=START)
        with pytest.raises(BadInput):
            generate_bronze(con, days=3, trips_per_day=TRIPS_PER_DAY, seed=SEED, start_date=START)
        assert _scalar(con, "select count(*) from duckdb_tables() where temporary") == 0
        later = generate_bronze(
            con, days=1, trips_per_day=TRIPS_PER_DAY, seed=SEED, start_date=date(2024, 1, 23)
        )
        assert later.trip_events > 0
        assert _scalar(con, "select count(*) from duckdb_tables() where temporary") == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"days": 0}, "--days must be at least 1, got 0"),
        ({"days": 3651}, "--days must be at most 3650, got 3651"),
        ({"days": "7"}, "--days must be an integer, got '7'"),
        ({"trips_per_day": 0}, "--trips-per-day must be at least 1, got 0"),
        (
            {"trips_per_day": 1_000_001},
            "--trips-per-day must be at most 1000000, got 1000001",
        ),
        ({"trips_per_day": True}, "--trips-per-day must be an integer, got True"),
        ({"seed": -1}, "--seed must be at least 0, got -1"),
        (
            {"seed": 2**63},
            "--seed must be at most 9223372036854775807, got 9223372036854775808",
        ),
        (
            {"start_date": "2024-01-01"},
            "--start-date must be a date, got '2024-01-01'",
        ),
        (
            {"start_date": datetime(2024, 1, 1, 12)},
            "--start-date must be a date, got datetime.datetime(2024, 1, 1, 12, 0)",
        ),
        (
            {"start_date": date(1999, 12, 31)},
            "--start-date and --days must stay within 2000-01-01..2099-12-31,"
            " got 1999-12-31..2000-02-28",
        ),
        (
            {"start_date": date(2099, 12, 1)},
            "--start-date and --days must stay within 2000-01-01..2099-12-31,"
            " got 2099-12-01..2100-01-29",
        ),
    ],
)
def test_bad_arguments_are_refused_before_writing(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    path = tmp_path / "w.duckdb"
    with pytest.raises(BadInput) as raised:
        _generate(path, **overrides)
    assert str(raised.value) == message
    with duckdb.connect(str(path)) as con:
        assert _scalar(con, "select count(*) from duckdb_tables()") == 0
