"""Generator benchmark: `generate_bronze` into a fresh DuckDB file, 10 million trips by default.

Prints, per run: trips, events, seconds (wall and CPU, with the machine's load averages:
the machine is shared, so a figure means little without them) and rows per second; then
the zone maps of `event_at` and `_ingested_date` (how many days a row group spans, which
is what lets a backfill's scan of one chunk skip the rest of bronze). With `--runs N` every
run writes a fresh file and the best wall time is printed last.

    .venv/bin/python bench/generate_bench.py --runs 2        # 365 days x 27,398 trips/day
    .venv/bin/python bench/generate_bench.py --trips 1000000 --days 90 --threads 1
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from orchestrator.demo.generate import GenerateResult, generate_bronze
from orchestrator.errors import BadInput

_STATS = re.compile(r"\[Min: ([^,\]]+), Max: ([^\]]+)\]")
START = date(2024, 1, 1)  # generate_bronze's default start date
CHUNK_DAYS = 31  # the backfill policy's chunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trips", type=int, default=10_000_000, help="trips in total")
    parser.add_argument("--days", type=int, default=365, help="days they are spread over")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default)")
    parser.add_argument("--runs", type=int, default=1, help="runs, each into a fresh file")
    parser.add_argument("--keep", type=Path, help="write the DuckDB file here and keep it")
    args = parser.parse_args(argv)
    if args.keep is not None and (args.keep.exists() or args.runs != 1):
        parser.error("--keep needs --runs 1 and a path that does not exist yet")
    if args.days < 1 or args.trips < 1 or args.runs < 1:
        parser.error("--trips, --days and --runs must be at least 1")
    trips_per_day = math.ceil(args.trips / args.days)

    walls = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="generate_bench_") as tmp:
            path = args.keep or Path(tmp) / "bench.duckdb"
            try:
                wall = _run(path, args, trips_per_day, run)
            except BadInput as exc:
                print(f"Error: {exc}", file=sys.stderr)
                return 2
        walls.append(wall)
    if args.runs > 1:
        print(f"best         {min(walls):.1f} s wall of {args.runs} runs")
    return 0


def _run(path: Path, args: argparse.Namespace, trips_per_day: int, run: int) -> float:
    load_before = _load()
    con = duckdb.connect(str(path))
    try:
        if args.threads:
            con.execute(f"set threads = {int(args.threads)}")
        row = con.execute("select current_setting('threads')").fetchone()
        threads = row[0] if row else "?"
        wall, cpu = time.perf_counter(), time.process_time()
        result = generate_bronze(
            con, days=args.days, trips_per_day=trips_per_day, seed=args.seed, start_date=START
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        load_after = _load()
        zones = _zone_maps(con)
    finally:
        con.close()
    size_mb = path.stat().st_size / 1e6
    _report(args, trips_per_day, result, run=run, wall=wall, cpu=cpu, threads=threads)
    print(
        f"load avg     {load_before} before, {load_after} after (1, 5, 15 min) "
        f"on {os.cpu_count()} cpus"
    )
    for column, column_zones in zones.items():
        spans = [(z.high - z.low).total_seconds() / 86400 for z in column_zones]
        print(
            f"zone maps    {column}: {len(spans)} row groups span {statistics.median(spans):.1f}"
            f" days (median), {max(spans):.1f} at most; a {CHUNK_DAYS}-day filter reads"
            f" {_share_read(column_zones, args.days):.1%} of the rows (mean)"
        )
    print(f"file         {size_mb:,.0f} MB" + (f" at {args.keep}" if args.keep else ""))
    return wall


def _report(
    args: argparse.Namespace,
    trips_per_day: int,
    result: GenerateResult,
    *,
    run: int,
    wall: float,
    cpu: float,
    threads: object,
) -> None:
    trips = args.days * trips_per_day
    events = result.trip_events
    print(f"run {run}")
    print(f"trips        {trips:,} ({args.days} days x {trips_per_day:,}/day, seed {args.seed})")
    print(
        f"trip events  {events:,} ({result.late_events:,} late, "
        f"{result.duplicate_events:,} duplicates); {result.drivers:,} driver rows, "
        f"{result.riders:,} riders"
    )
    print(f"seconds      {wall:.1f} wall, {cpu:.1f} cpu; {threads} DuckDB threads")
    print(f"rows/s       {events / wall:,.0f} events/s, {trips / wall:,.0f} trips/s (wall)")


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


@dataclass(frozen=True)
class _Zone:
    low: datetime
    high: datetime
    rows: int


def _zone_maps(con: duckdb.DuckDBPyConnection) -> dict[str, list[_Zone]]:
    """The smallest and largest value and the rows of each row group, per column."""
    con.execute("checkpoint")
    found = con.execute(
        "select column_name, row_group_id, stats, count"
        " from pragma_storage_info('bronze.trip_events')"
        " where column_name in ('event_at', '_ingested_date') and segment_type != 'VALIDITY'"
    ).fetchall()
    zones: dict[tuple[str, int], _Zone] = {}
    for column, row_group, stats, count in found:
        match = _STATS.search(str(stats))
        if match is None:
            continue
        low, high = (_parse(value) for value in match.groups())
        key, rows = (str(column), int(row_group)), int(count)
        if key in zones:
            old = zones[key]
            low, high, rows = min(low, old.low), max(high, old.high), rows + old.rows
        zones[key] = _Zone(low, high, rows)
    result: dict[str, list[_Zone]] = {"event_at": [], "_ingested_date": []}
    for (column, _), zone in sorted(zones.items()):
        result[column].append(zone)
    return result


def _share_read(zones: list[_Zone], days: int) -> float:
    """The share of rows in the row groups a filter on CHUNK_DAYS whole days cannot skip,
    averaged over the chunks of the generated range: what a backfill chunk's scan of
    bronze reads (the days themselves are CHUNK_DAYS / days of it)."""
    first = datetime.combine(START, datetime.min.time())
    total = sum(zone.rows for zone in zones)
    shares = []
    for offset in range(max(1, days - CHUNK_DAYS + 1)):
        low = first + timedelta(days=offset)
        high = low + timedelta(days=CHUNK_DAYS)  # exclusive
        shares.append(sum(z.rows for z in zones if z.low < high and z.high >= low) / total)
    return statistics.mean(shares)


def _parse(value: str) -> datetime:
    value = value.strip()
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    return datetime.fromisoformat(value)


if __name__ == "__main__":
    raise SystemExit(main())
