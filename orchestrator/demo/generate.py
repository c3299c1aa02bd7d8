"""Generate deterministic synthetic bronze data (trip events, drivers, riders) inside DuckDB.

Everything is computed by SQL inside DuckDB from hash-based pseudo-random numbers (a
hash of the seed, a salt and an integer key such as the trip's day and number, mapped to
[0, 1)): never `random()` and never a Python loop over rows, so the same arguments
always produce the same rows. The draws of a trip depend only on the seed, the trip's
calendar day and its number within the day, so generating a range in one call or in
several appends gives the same trips (the rider and driver pools aside, which can grow
between calls). Trip numbers follow request time within a day: trip n of N is requested
in the n-th N-quantile of the day's time-of-day distribution.

Rows are written roughly in ingestion order (see `_Generator.trip_events_sql`), so a row
group's zone maps on `event_at` and `_ingested_date` span a day or two. At 10 million
trips most of the time goes to DuckDB compressing and writing ~30 million rows of seven
strings each, so what matters most is that the insert runs on every core.
`bench/generate_bench.py` times it.

Bronze is immutable: this module creates the tables when missing and otherwise only
appends. The layout follows `docs/conventions.md`.

Schema versions: trip events whose `event_at` falls on or after `SCHEMA_V2_FROM`
(2024-02-15) are schema v2 (`distance_km`, `base_fare_cents`); earlier ones are v1
(`distance_miles`, `base_fare`). Driver and rider rows are all v1.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction

import duckdb

from orchestrator.errors import BadInput

SCHEMA_V2_FROM = date(2024, 2, 15)
"""Trip events on or after this UTC calendar day carry schema v2."""

MAX_DAYS = 3650
MAX_TRIPS_PER_DAY = 1_000_000
MAX_SEED = 2**63 - 1
EARLIEST_START = date(2000, 1, 1)
LATEST_END = date(2099, 12, 31)

CITIES = 8
_CITY_PERCENT = (22, 16, 14, 12, 11, 9, 8, 8)  # share of trips per city c01..c08
# Share of a day's requests in second `second` (UTC): 25% in a morning peak (a triangle
# over 05:00-10:00), 35% in an evening peak (a triangle over 14:30-21:30), 40% spread evenly.
_TIME_OF_DAY_MASS = (
    "0.40 / 86400"
    " + 0.25 * greatest(0, 9000 - abs(second + 0.5 - 27000)) / (9000 * 9000)"
    " + 0.35 * greatest(0, 12600 - abs(second + 0.5 - 64800)) / (12600 * 12600)"
)
P_ACCEPTED = 0.93  # the other trips are cancelled before a driver accepts
P_COMPLETED = 0.90  # of accepted trips; the others are cancelled after accept
P_LATE = 0.03  # of events: ingested 1-3 days after the event date, batch -02
P_DUPLICATE = 0.01  # of events: delivered again the day after, batch -03
P_SURGE = 0.20  # of trips: surge above 1.00
P_DRIVER_CHANGE = 0.02  # of drivers per day: a change record
NEW_RIDERS_PER_DAY = 0.001  # of the existing riders, on appends

_EPOCH = date(1970, 1, 1)
_TRIP_NUMBERS = "_generate_bronze_trip_numbers"  # temporary tables, dropped after use
_LATE_DELIVERIES = "_generate_bronze_late_deliveries"
_TRIP_KEY_DAY = 2**20  # a trip's key is its day (since 1970) * 2**20 + its number in the day
# Writing VARCHAR columns dominates the cost of 30 million events. Naming the compression
# skips DuckDB's trial of every method per segment: FSST for the ids with many values
# (for rider ids as small as dictionary and cheaper), dictionary for the rest.
_TRIP_EVENTS_DDL = """
create table if not exists {schema}.trip_events (
    event_id varchar not null using compression fsst,
    trip_id varchar not null using compression fsst,
    event_type varchar not null using compression dictionary,
    event_at timestamp not null,
    driver_id varchar using compression dictionary,
    rider_id varchar not null using compression fsst,
    city_id varchar not null using compression dictionary,
    duration_seconds integer,
    surge_multiplier decimal(4, 2) not null,
    distance_miles double,
    base_fare decimal(10, 2),
    distance_km double,
    base_fare_cents bigint,
    _ingested_date date not null,
    _batch_id varchar not null using compression dictionary,
    _schema_version integer not null
)
"""
_DRIVERS_DDL = """
create table if not exists {schema}.drivers (
    driver_id varchar not null,
    full_name varchar not null,
    city_id varchar not null,
    rating decimal(3, 2) not null,
    tier varchar not null,
    vehicle_make varchar not null,
    vehicle_model varchar not null,
    vehicle_year integer not null,
    signed_up_at timestamp not null,
    updated_at timestamp not null,
    _ingested_date date not null,
    _batch_id varchar not null,
    _schema_version integer not null
)
"""
_RIDERS_DDL = """
create table if not exists {schema}.riders (
    rider_id varchar not null,
    full_name varchar not null,
    email varchar not null,
    city_id varchar not null,
    signed_up_at timestamp not null,
    _ingested_date date not null,
    _batch_id varchar not null,
    _schema_version integer not null
)
"""

_FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Daniel", "Elena", "Farah", "Gabriel", "Hana", "Ivan", "Julia",
    "Kofi", "Laura", "Mateo", "Nina", "Omar", "Priya", "Quentin", "Rosa", "Samir", "Tara",
    "Umar", "Valeria", "Wei", "Ximena", "Yusuf", "Zoe", "Aiden", "Bianca", "Carlos", "Dana",
    "Emeka", "Fatima",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Garcia", "Chen", "Okafor", "Kowalski", "Nguyen", "Patel", "Rossi", "Silva",
    "Müller", "Kim", "Haddad", "Johnson", "Ivanova", "Tanaka", "Dubois", "Novak", "Singh",
    "Hughes", "Moreno", "Larsen", "Costa", "Yilmaz", "Andersen",
)  # fmt: skip
_VEHICLES = (
    ("Toyota", "Prius"), ("Toyota", "Camry"), ("Honda", "Accord"), ("Honda", "Civic"),
    ("Hyundai", "Ioniq"), ("Kia", "Niro"), ("Tesla", "Model 3"), ("Tesla", "Model Y"),
    ("Ford", "Fusion"), ("Nissan", "Leaf"), ("Chevrolet", "Bolt"), ("Volkswagen", "Passat"),
)  # fmt: skip
_TIERS = ("standard", "plus", "premium")

# Salts: each pseudo-random quantity draws from its own stream.
_S_CITY, _S_REQUEST_TIME, _S_ACCEPT, _S_COMPLETE = 1, 2, 5, 6  # 3 and 4 retired
_S_ACCEPT_DELAY, _S_CANCEL_DELAY, _S_PICKUP, _S_DISTANCE, _S_SPEED = 7, 8, 9, 10, 11
_S_SURGE, _S_SURGE_LEVEL, _S_DRIVER, _S_RIDER = 12, 13, 14, 15
_S_LATE, _S_LATE_DAYS, _S_DUPLICATE = 100, 110, 120  # + event sequence 1..3
_S_D_FIRST, _S_D_LAST, _S_D_SIGNUP, _S_D_RATING, _S_D_TIER, _S_D_VEHICLE, _S_D_YEAR = range(
    200, 207
)
_S_D_CHANGE, _S_D_CHANGE_TIME, _S_D_TIER_CHANGE, _S_D_VEHICLE_CHANGE = range(210, 214)
_S_R_FIRST, _S_R_LAST, _S_R_SIGNUP, _S_R_SIGNUP_DAY = range(300, 304)


@dataclass(frozen=True)
class GenerateResult:
    """What one `generate_bronze` call wrote (row counts are rows appended by this call)."""

    start_date: date
    end_date: date
    trip_events: int
    drivers: int
    riders: int
    late_events: int
    duplicate_events: int
    seconds: float


def generate_bronze(
    con: duckdb.DuckDBPyConnection,
    *,
    days: int,
    trips_per_day: int,
    seed: int,
    start_date: date = date(2024, 1, 1),
) -> GenerateResult:
    """Append `days` days of synthetic trips, driver changes and riders to bronze.

    Creates schema `bronze` and its three tables when missing. Raises `BadInput` (and
    writes nothing) when an argument is out of range or bronze already holds trips
    requested on or after `start_date`. All rows are written in one transaction.
    """
    _validate(days=days, trips_per_day=trips_per_day, seed=seed, start_date=start_date)
    started = time.perf_counter()
    end_date = start_date + timedelta(days=days - 1)
    trips = _Trips(
        seed=seed,
        first_day=(start_date - _EPOCH).days,
        days=days,
        trips_per_day=trips_per_day,
    )
    try:
        # The temporary tables the events are generated from are committed before the
        # transaction starts: an insert that scans a table created in the running
        # transaction gets no parallel speed-up in DuckDB (half the speed on two cores).
        late, duplicates = trips.create_temporary_tables(con)
        con.execute("begin transaction")
        try:
            schema = _bronze_schema(con)
            con.execute(f"create schema if not exists {schema}")
            for ddl in (_TRIP_EVENTS_DDL, _DRIVERS_DDL, _RIDERS_DDL):
                con.execute(ddl.format(schema=schema))
            _check_no_overlap(con, schema, start_date)
            gen = _Generator(
                **asdict(trips),
                schema=schema,
                existing_drivers=_count(
                    con, f"select count(distinct driver_id) from {schema}.drivers"
                ),
                existing_riders=_count(
                    con, f"select count(distinct rider_id) from {schema}.riders"
                ),
            )
            riders = _count(con, gen.riders_sql())
            drivers = _count(con, gen.drivers_sql())
            trip_events = _count(con, gen.trip_events_sql(late=False))
            trip_events += _count(con, gen.trip_events_sql(late=True))
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    finally:
        trips.drop_temporary_tables(con)
    return GenerateResult(
        start_date=start_date,
        end_date=end_date,
        trip_events=trip_events,
        drivers=drivers,
        riders=riders,
        late_events=late,
        duplicate_events=duplicates,
        seconds=round(time.perf_counter() - started, 3),
    )


def _validate(*, days: int, trips_per_day: int, seed: int, start_date: date) -> None:
    for name, value, low, high in (
        ("--days", days, 1, MAX_DAYS),
        ("--trips-per-day", trips_per_day, 1, MAX_TRIPS_PER_DAY),
        ("--seed", seed, 0, MAX_SEED),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(f"{name} must be an integer, got {value!r}")
        if value < low:
            raise BadInput(f"{name} must be at least {low}, got {value}")
        if value > high:
            raise BadInput(f"{name} must be at most {high}, got {value}")
    if isinstance(start_date, datetime) or not isinstance(start_date, date):
        raise BadInput(f"--start-date must be a date, got {start_date!r}")
    end_date = start_date + timedelta(days=days - 1)
    if start_date < EARLIEST_START or end_date > LATEST_END:
        raise BadInput(
            f"--start-date and --days must stay within {EARLIEST_START}..{LATEST_END}, "
            f"got {start_date}..{end_date}"
        )


def _bronze_schema(con: duckdb.DuckDBPyConnection) -> str:
    """`bronze` qualified by the current catalog: a file named bronze.duckdb makes a bare
    `bronze.x` ambiguous (catalog or schema)."""
    row = con.execute("select current_database()").fetchone()
    catalog = str(row[0]) if row is not None else "memory"
    return '"' + catalog.replace('"', '""') + '".bronze'


def _check_no_overlap(con: duckdb.DuckDBPyConnection, schema: str, start_date: date) -> None:
    """Bronze is append-only: new trips must be requested after every existing one."""
    row = con.execute(
        f"select min(event_at)::date, max(event_at)::date from {schema}.trip_events"
        " where event_type = 'requested'"
    ).fetchone()
    if row is None or row[0] is None:
        return
    first, last = row
    if start_date <= last:
        raise BadInput(
            f"bronze already holds events for {first}..{last}; choose --start-date after {last}"
        )


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: tuple[str, ...], u: str) -> str:
    """SQL choosing one of `values` uniformly by the [0, 1) expression `u`."""
    return f"{_sql_list(values)}[1 + floor({u} * {len(values)})::integer]"


@dataclass(frozen=True)
class _Trips:
    """The trips of one call and the pseudo-random draws everything is made from."""

    seed: int
    first_day: int  # days since 1970-01-01 of start_date
    days: int
    trips_per_day: int

    def u(self, salt: int, key: str) -> str:
        """SQL for a pseudo-random double in [0, 1) drawn from the seed, `salt` and `key`.

        `key` is a BIGINT SQL expression below 2**40 that identifies the thing drawn for
        (a trip, an event, a driver-day). DuckDB's multi-argument `hash(a, b, c)` combines
        its arguments too weakly (draws that differ only in one argument are correlated),
        so the key and salt are packed into one integer, xor-ed with a 64-bit mix of the
        seed and hashed once; the top 53 bits of the hash become the double.
        """
        return self.draw(self.base(key), salt)

    def base(self, key: str) -> str:
        """The packed, seeded integer that `draw` hashes (salt bits still zero)."""
        return f"xor(({key}) * 1024, {self.seed_mix}::bigint)"

    @staticmethod
    def draw(base: str, salt: int) -> str:
        """`u(salt, key)` given `base(key)`, e.g. a column computed once per trip."""
        return f"((hash(xor({base}, {salt})) >> 11)::double / 9007199254740992.0)"

    @property
    def seed_mix(self) -> int:
        """splitmix64 of the seed, as a signed 64-bit integer."""
        z = (self.seed + 0x9E3779B97F4A7C15) % 2**64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        z ^= z >> 31
        return z - 2**64 if z >= 2**63 else z

    @staticmethod
    def chance(base: str, salt: int, p: float) -> str:
        """SQL for `draw(base, salt) < p`, compared on the hash itself.

        `(h >> 11) / 2**53 < p` holds exactly when `h < ceil(p * 2**53) * 2**11`, so the
        flag is the same as with the double but costs no shift, cast or division.
        """
        threshold = math.ceil(Fraction(p) * 2**53) * 2**11
        return f"(hash(xor({base}, {salt})) < {threshold}::ubigint)"

    def is_accepted(self, trip_base: str = "trip_base") -> str:
        return self.chance(trip_base, _S_ACCEPT, P_ACCEPTED)

    def is_late(self, event_base: str) -> str:
        return self.chance(event_base, _S_LATE, P_LATE)

    def is_duplicated(self, event_base: str) -> str:
        return self.chance(event_base, _S_DUPLICATE, P_DUPLICATE)

    def trip_numbers_sql(self) -> str:
        """Create the temporary table numbering this call's trips 0, 1, ... in order."""
        return (
            f"create or replace temp table {_TRIP_NUMBERS} as "
            f"select i from range({self.days * self.trips_per_day}) as r(i)"
        )

    def late_deliveries_sql(self) -> str:
        """Create the temporary table of the deliveries that are not on time.

        One row per late delivery (batch -02) or re-delivery (batch -03) of an event: its
        trip key `tk`, its sequence number, the copy (0 the original, 1 the re-delivery),
        the days from the event's day to its ingestion and the batch number. Only hashes
        are computed here (~4% of the events qualify); the rows themselves are built by
        `trip_events_sql(late=True)`.
        """
        first, tpd = self.first_day, self.trips_per_day
        return f"""
        create or replace temp table {_LATE_DELIVERIES} as
        with trips as (
            select tk, {self.is_accepted(self.base("tk * 4"))} as is_accepted
            from (select ({first} + i // {tpd}) * {_TRIP_KEY_DAY} + i % {tpd} + 1 as tk
                  from {_TRIP_NUMBERS})
        ), events as (
            select tk, seq, {self.base("tk * 4 + seq")} as event_base
            from trips, range(1, 4) as s(seq)
            where seq < 3 or is_accepted
        ), flagged as (
            select tk, seq, event_base,
                   {self.is_late("event_base")} as is_late,
                   {self.is_duplicated("event_base")} as is_duplicated
            from events
        )
        select tk, seq, copy,
               case when is_late
                   then 1 + floor({self.draw("event_base", _S_LATE_DAYS)} * 3)::integer
                   else 0 end + copy as delay_days,
               case when copy = 1 then 3 else 2 end as batch_no
        from (select * from flagged where is_late or is_duplicated), range(0, 2) as c(copy)
        where (copy = 0 and is_late) or (copy = 1 and is_duplicated)
        """

    def create_temporary_tables(self, con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        """Create the trip numbers and the late deliveries; return (late, re-delivered).

        The trip numbers are a table because a table scan is a parallel, order-preserving
        source (`range()` is single-threaded). The late and re-delivered counts come
        from the small table instead of a scan of the strings written later.
        """
        con.execute(self.trip_numbers_sql())
        con.execute(self.late_deliveries_sql())
        row = con.execute(
            "select count(*) filter (where copy = 0), count(*) filter (where copy = 1)"
            f" from {_LATE_DELIVERIES}"
        ).fetchone()
        return (int(row[0]), int(row[1])) if row is not None else (0, 0)

    @staticmethod
    def drop_temporary_tables(con: duckdb.DuckDBPyConnection) -> None:
        """Best effort: the tables also go when the connection closes."""
        for table in (_TRIP_NUMBERS, _LATE_DELIVERIES):
            with contextlib.suppress(duckdb.Error):
                con.execute(f"drop table if exists {table}")


@dataclass(frozen=True)
class _Generator(_Trips):
    """The SQL that appends one call's rows to bronze."""

    schema: str  # the bronze schema, catalog-qualified and quoted
    existing_drivers: int
    existing_riders: int

    @property
    def drivers_total(self) -> int:
        return max(self.existing_drivers, 20, self.trips_per_day // 10)

    @property
    def riders_pool(self) -> int:
        """Riders trips of this call choose from (riders created by this call are not)."""
        return self.existing_riders or max(50, self.trips_per_day // 2)

    @property
    def new_riders(self) -> int:
        if self.existing_riders == 0:
            return self.riders_pool
        target = max(50, self.trips_per_day // 2)
        growth = max(1, round(self.existing_riders * NEW_RIDERS_PER_DAY * self.days))
        return max(target - self.existing_riders, growth)

    # -- riders ---------------------------------------------------------------------------

    def riders_sql(self) -> str:
        """Insert riders `existing+1 ..`; on the first call they signed up in the 3 years
        before start_date and are ingested on start_date, later ones sign up during the
        range and are ingested that day."""
        u = self.u
        if self.existing_riders == 0:
            signup = (
                f"make_timestamp(({self.first_day} - 1 - floor({u(_S_R_SIGNUP_DAY, 'no')} * 1095)"
                f")::bigint * 86400000000 + floor({u(_S_R_SIGNUP, 'no')} * 86400)::bigint"
                " * 1000000)"
            )
            ingested = f"(date '1970-01-01' + {self.first_day}::integer)"
        else:
            signup = (
                f"make_timestamp(({self.first_day} + floor({u(_S_R_SIGNUP_DAY, 'no')} * "
                f"{self.days}))::bigint * 86400000000 + floor({u(_S_R_SIGNUP, 'no')} * 86400)"
                "::bigint * 1000000)"
            )
            ingested = "signed_up_at::date"
        return f"""
        insert into {self.schema}.riders by name
        with numbered as (
            select no,
                   {_pick(_FIRST_NAMES, u(_S_R_FIRST, "no"))} as first_name,
                   {_pick(_LAST_NAMES, u(_S_R_LAST, "no"))} as last_name,
                   {signup} as signed_up_at
            from range({self.existing_riders + 1},
                       {self.existing_riders + self.new_riders + 1}) as r(no)
        ), dated as (
            select *, {ingested} as ingested from numbered
        )
        select printf('r%06d', no) as rider_id,
               first_name || ' ' || last_name as full_name,
               strip_accents(lower(first_name || '.' || last_name)) || no || '@example.com'
                   as email,
               printf('c%02d', 1 + (no - 1) % {CITIES}) as city_id,
               signed_up_at,
               ingested as _ingested_date,
               strftime(ingested, '%Y%m%d') || '-01' as _batch_id,
               1 as _schema_version
        from dated
        order by no
        """

    # -- drivers --------------------------------------------------------------------------

    def drivers_sql(self) -> str:
        """Insert initial records for new drivers and ~2% change records per driver-day.

        A change always moves the rating by up to +-0.15 (kept within 3.00..5.00) and
        sometimes sets a new tier or vehicle; attributes a change does not set carry over
        from the driver's latest record (in bronze or earlier in this call), so every row
        is a full snapshot of the driver.
        """
        u = self.u
        first, days = self.first_day, self.days
        makes = _sql_list(tuple(m for m, _ in _VEHICLES))
        models = _sql_list(tuple(m for _, m in _VEHICLES))

        def vehicle(key: str) -> str:
            return f"1 + floor({u(_S_D_VEHICLE, key)} * {len(_VEHICLES)})::integer"

        vehicle_change = f"{u(_S_D_VEHICLE_CHANGE, 'no * 65536 + eday')} < 0.1"
        return f"""
        insert into {self.schema}.drivers by name
        with latest as (
            select * exclude (_ingested_date, _batch_id, _schema_version)
            from {self.schema}.drivers
            qualify row_number() over (
                partition by driver_id order by updated_at desc, _batch_id desc) = 1
        ), initial as (
            select no,
                   make_timestamp((({first} - 1 - floor({u(_S_D_SIGNUP, "no * 65536")} * 1095))
                       * 86400 + floor({u(_S_D_CHANGE_TIME, "no * 65536")} * 86400))::bigint
                       * 1000000) as signed_up_at,
                   {vehicle("no * 65536")} as vehicle_no
            from range({self.existing_drivers + 1}, {self.drivers_total + 1}) as r(no)
        ), new_drivers as (
            select printf('d%05d', no) as driver_id,
                   {_pick(_FIRST_NAMES, u(_S_D_FIRST, "no * 65536"))} || ' '
                       || {_pick(_LAST_NAMES, u(_S_D_LAST, "no * 65536"))} as full_name,
                   printf('c%02d', 1 + (no - 1) % {CITIES}) as city_id,
                   (4.2 + floor({u(_S_D_RATING, "no * 65536")} * 81) / 100)::decimal(3, 2)
                       as rating,
                   {_pick(_TIERS, u(_S_D_TIER, "no * 65536"))} as tier,
                   {makes}[vehicle_no] as vehicle_make,
                   {models}[vehicle_no] as vehicle_model,
                   (year(signed_up_at) - floor({u(_S_D_YEAR, "no * 65536")} * 8))::integer
                       as vehicle_year,
                   signed_up_at,
                   signed_up_at as updated_at,
                   date '1970-01-01' + {first}::integer as ingested
            from initial
        ), change_days as (
            select no, eday, {vehicle("no * 65536 + eday")} as vehicle_no
            from range(1, {self.drivers_total + 1}) as r(no),
                 range({first}, {first + days}) as d(eday)
            where {u(_S_D_CHANGE, "no * 65536 + eday")} < {P_DRIVER_CHANGE}
        ), changes as (
            select printf('d%05d', no) as driver_id,
                   null::decimal(3, 2) as rating,
                   (floor({u(_S_D_RATING, "no * 65536 + eday")} * 31) - 15) / 100 as rating_step,
                   case when {u(_S_D_TIER_CHANGE, "no * 65536 + eday")} < 0.15
                       then {_pick(_TIERS, u(_S_D_TIER, "no * 65536 + eday"))} end as tier,
                   case when {vehicle_change} then {makes}[vehicle_no] end as vehicle_make,
                   case when {vehicle_change} then {models}[vehicle_no] end as vehicle_model,
                   case when {vehicle_change}
                       then (year(date '1970-01-01' + eday::integer)
                             - floor({u(_S_D_YEAR, "no * 65536 + eday")} * 4))::integer
                       end as vehicle_year,
                   make_timestamp(1000000 * (eday * 86400
                       + floor({u(_S_D_CHANGE_TIME, "no * 65536 + eday")} * 86400))::bigint)
                       as updated_at,
                   date '1970-01-01' + eday::integer as ingested
            from change_days
        ), history as (
            select *, null::date as ingested, false as is_new, 0 as rating_step from latest
            union all by name
            select *, true as is_new, 0 as rating_step from new_drivers
            union all by name
            select *, true as is_new from changes
        ), filled as (
            select driver_id,
                   last_value(full_name ignore nulls) over w as full_name,
                   last_value(city_id ignore nulls) over w as city_id,
                   least(5, greatest(3, last_value(rating ignore nulls) over w
                       + coalesce(sum(rating_step) over w, 0)))::decimal(3, 2) as rating,
                   last_value(tier ignore nulls) over w as tier,
                   last_value(vehicle_make ignore nulls) over w as vehicle_make,
                   last_value(vehicle_model ignore nulls) over w as vehicle_model,
                   last_value(vehicle_year ignore nulls) over w as vehicle_year,
                   last_value(signed_up_at ignore nulls) over w as signed_up_at,
                   updated_at, ingested, is_new
            from history
            window w as (partition by driver_id order by updated_at
                         rows between unbounded preceding and current row)
        )
        select driver_id, full_name, city_id, rating, tier, vehicle_make, vehicle_model,
               vehicle_year, signed_up_at, updated_at,
               ingested as _ingested_date,
               strftime(ingested, '%Y%m%d') || '-01' as _batch_id,
               1 as _schema_version
        from filled
        where is_new
        order by ingested, updated_at, driver_id
        """

    # -- trip events ----------------------------------------------------------------------

    def trip_events_sql(self, *, late: bool) -> str:
        """Insert this call's on-time event deliveries or (`late`) the other ones.

        On-time rows (batch -01, ~96%) are written in trip order (request day, trip
        number, event sequence), which is request-time order; the late deliveries and
        re-deliveries listed by `late_deliveries_sql` (batches -02 and -03) follow, sorted
        by ingestion day, batch and event time. Only those ~4% are sorted; no hash join.

        Identifier strings and request-time quantiles are looked up in lists built once
        per call, in a materialized CTE. With the same lists in a plain CTE DuckDB's plan
        depends on the rest of the query, and it has picked a single-threaded INSERT
        (half the speed on two cores) over the parallel, order-preserving BATCH_INSERT.
        """
        draw = self.draw
        first, days, tpd = self.first_day, self.days, self.trips_per_day
        v2_day = (SCHEMA_V2_FROM - _EPOCH).days
        city_ids = _sql_list(tuple(f"c{no:02d}" for no in range(1, CITIES + 1)))
        city_by_percentile = [no for no, pct in enumerate(_CITY_PERCENT, 1) for _ in range(pct)]
        nd, nr = self.drivers_total, self.riders_pool
        if late:
            keyed = f"""
            select tk // {_TRIP_KEY_DAY} as eday, tk % {_TRIP_KEY_DAY} as n, tk,
                   {self.base("tk * 4")} as trip_base, seq, delay_days, batch_no
            from {_LATE_DELIVERIES}
            """
            sequenced = "select * from named"
            on_time, order_by = "", "order by ingest_day, batch_no, event_s, tk, seq"
        else:
            keyed = f"""
            select eday, n, tk, {self.base("tk * 4")} as trip_base
            from (select eday, n, eday * {_TRIP_KEY_DAY} + n as tk
                  from (select {first} + i // {tpd} as eday, i % {tpd} + 1 as n
                        from {_TRIP_NUMBERS}))
            """
            sequenced = """
            select *, 0 as delay_days, 1 as batch_no
            from named, range(1, 4) as s(seq)
            where seq < 3 or is_accepted
            """
            on_time, order_by = f"where not {self.is_late(self.base('tk * 4 + seq'))}", ""
        return f"""
        insert into {self.schema}.trip_events by name
        with time_of_day as (
            select second, mass, sum(mass) over (order by second) - mass as mass_before
            from (select second, {_TIME_OF_DAY_MASS} as mass
                  from range(86400) as s(second))
        ), lookup as materialized (
            select
                (select list(strftime(date '1970-01-01' + eday::integer, 't%Y%m%d-')
                             order by eday)
                 from range({first}, {first + days}) as d(eday)) as trip_prefixes,
                (select list(strftime(date '1970-01-01' + eday::integer, 'e%Y%m%d-')
                             order by eday)
                 from range({first}, {first + days}) as d(eday)) as event_prefixes,
                (select list(lpad(n::varchar, 7, '0') order by n)
                 from range(1, {tpd + 1}) as r(n)) as numbers,
                (select list(second + (k / {tpd} - mass_before) / mass order by k)
                 from range(0, {tpd + 1}) as q(k)
                 asof join time_of_day on k / {tpd} >= mass_before) as request_knots,
                (select list(printf('d%05d', no) order by no)
                 from range(1, {nd + 1}) as r(no)) as driver_ids,
                (select list(printf('r%06d', no) order by no)
                 from range(1, {nr + 1}) as r(no)) as rider_ids,
                (select list(strftime(date '1970-01-01' + ingest_day::integer, '%Y%m%d-0')
                             || batch_no order by ingest_day, batch_no)
                 from range({first}, {first + days + 6}) as d(ingest_day),
                      range(1, 4) as b(batch_no)) as batch_ids
        ), keyed as (
            {keyed}
        ), drawn as (
            select *,
                   {draw("trip_base", _S_CITY)} as u_city,
                   {draw("trip_base", _S_REQUEST_TIME)} as u_request_time,
                   {self.is_accepted()} as is_accepted,
                   {self.chance("trip_base", _S_COMPLETE, P_COMPLETED)} as is_completed,
                   {draw("trip_base", _S_ACCEPT_DELAY)} as u_accept_delay,
                   {draw("trip_base", _S_CANCEL_DELAY)} as u_cancel_delay,
                   {draw("trip_base", _S_PICKUP)} as u_pickup,
                   {draw("trip_base", _S_DISTANCE)} as u_distance,
                   {draw("trip_base", _S_SPEED)} as u_speed,
                   {self.chance("trip_base", _S_SURGE, P_SURGE)} as is_surge,
                   {draw("trip_base", _S_SURGE_LEVEL)} as u_surge,
                   {draw("trip_base", _S_DRIVER)} as u_driver,
                   {draw("trip_base", _S_RIDER)} as u_rider
            from keyed
        ), trips as (
            select * exclude (u_city, u_request_time, u_distance, u_surge),
                   {city_by_percentile}[1 + floor(u_city * 100)::integer] as city_no,
                   eday * 86400 + least(86399, floor(request_knots[n] + u_request_time
                       * (request_knots[n + 1] - request_knots[n])))::bigint as requested_s,
                   round(least(0.8 - ln(1 - u_distance) * 6.5, 120), 2) as km,
                   case when is_surge then round((1.05 + 1.45 * u_surge * u_surge) * 20) / 20
                       else 1 end::decimal(4, 2) as surge_multiplier
            from drawn, lookup
        ), timed as (
            select *,
                   requested_s + 20 + floor(u_accept_delay * 280)::bigint as accepted_s,
                   round(km / (16 + u_speed * 34) * 3600 + 45)::integer as duration_s,
                   city_no + {CITIES} * floor(u_driver * (({nd} - city_no) // {CITIES} + 1))
                       ::bigint as driver_no,
                   city_no + {CITIES} * floor(u_rider * (({nr} - city_no) // {CITIES} + 1))
                       ::bigint as rider_no
            from trips
        ), named as (
            select timed.*,
                   trip_prefixes[eday - {first - 1}] || numbers[n] as trip_id,
                   event_prefixes[eday - {first - 1}] || numbers[n] as event_key,
                   driver_ids[driver_no] as driver_id,
                   rider_ids[rider_no] as rider_id,
                   {city_ids}[city_no] as city_id,
                   round(250 + 95 * km + 25 * duration_s / 60)::bigint as fare_cents
            from timed
        ), sequenced as (
            {sequenced}
        ), events as (
            select *,
                   case seq
                       when 1 then 'requested'
                       when 2 then case when is_accepted then 'accepted' else 'cancelled' end
                       else case when is_completed then 'completed' else 'cancelled' end
                   end as event_type,
                   case seq
                       when 1 then requested_s
                       when 2 then case when is_accepted then accepted_s
                           else requested_s + 30 + floor(u_cancel_delay * 570)::bigint end
                       else case when is_completed
                           then accepted_s + 120 + floor(u_pickup * 600)::bigint + duration_s
                           else accepted_s + 30 + floor(u_cancel_delay * 600)::bigint end
                   end as event_s
            from sequenced
            {on_time}
        ), deliveries as (
            select *,
                   event_s // 86400 >= {v2_day} as is_v2,
                   event_type = 'completed' as has_fare,
                   event_s // 86400 + delay_days as ingest_day
            from events
        )
        select event_key || ['-1', '-2', '-3'][seq] as event_id,
               trip_id,
               event_type,
               make_timestamp(event_s * 1000000) as event_at,
               case when seq = 3 or event_type = 'accepted' then driver_id end as driver_id,
               rider_id,
               city_id,
               case when has_fare then duration_s end as duration_seconds,
               surge_multiplier,
               case when has_fare and not is_v2 then round(km / 1.609344, 2) end
                   as distance_miles,
               case when has_fare and not is_v2 then (fare_cents / 100)::decimal(10, 2) end
                   as base_fare,
               case when has_fare and is_v2 then km end as distance_km,
               case when has_fare and is_v2 then fare_cents end as base_fare_cents,
               date '1970-01-01' + ingest_day::integer as _ingested_date,
               batch_ids[(ingest_day - {first}) * 3 + batch_no] as _batch_id,
               case when is_v2 then 2 else 1 end as _schema_version
        from deliveries
        {order_by}
        """
