"""Generator benchmark: `generate_bronze` into a fresh DuckDB file, 10 million trips by default.

Prints trips, seconds (wall and CPU, with the machine's load average: the CPU seconds are
what to compare between runs on a shared machine) and rows per second.

    .venv/bin/python bench/generate_bench.py                  # 365 days x 27,398 trips/day
    .venv/bin/python bench/generate_bench.py --trips 1000000 --days 90 --threads 1
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from orchestrator.errors import BadInput
from orchestrator.generate import generate_bronze


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=10_000_000, help="trips in total")
    parser.add_argument("--days", type=int, default=365, help="days they are spread over")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default)")
    parser.add_argument("--keep", type=Path, help="write the DuckDB file here and keep it")
    args = parser.parse_args(argv)
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep} exists; remove it or choose another path")
    trips_per_day = math.ceil(args.trips / args.days) if args.days > 0 else 0

    with tempfile.TemporaryDirectory(prefix="generate_bench_") as tmp:
        path = args.keep or Path(tmp) / "bench.duckdb"
        load_before = os.getloadavg()[0]
        con = duckdb.connect(str(path))
        try:
            if args.threads:
                con.execute(f"set threads = {int(args.threads)}")
            threads = con.execute("select current_setting('threads')").fetchone()
            wall, cpu = time.perf_counter(), time.process_time()
            result = generate_bronze(
                con, days=args.days, trips_per_day=trips_per_day, seed=args.seed
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        except BadInput as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 2
        finally:
            con.close()
        size_mb = path.stat().st_size / 1e6

    trips = args.days * trips_per_day
    events = result.trip_events
    print(f"trips        {trips:,} ({args.days} days x {trips_per_day:,}/day, seed {args.seed})")
    print(
        f"trip events  {events:,} ({result.late_events:,} late, "
        f"{result.duplicate_events:,} duplicates); {result.drivers:,} driver rows, "
        f"{result.riders:,} riders"
    )
    print(
        f"seconds      {wall:.1f} wall, {cpu:.1f} cpu; {threads[0] if threads else '?'} "
        f"DuckDB threads on {os.cpu_count()} cpus, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(f"rows/s       {events / wall:,.0f} events/s, {trips / wall:,.0f} trips/s (wall)")
    print(f"file         {size_mb:,.0f} MB" + (f" at {args.keep}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
