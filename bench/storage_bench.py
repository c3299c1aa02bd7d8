"""DuckDB storage choices of the backfill path, each measured against the default it replaces.

On a copy of the benchmark's built warehouse (`bench/backfill_bench.py --workdir DIR` keeps
it as DIR/built.duckdb), fct_trips' range is written in the same chunks a backfill uses,
one commit per chunk:
  backup: a backup table as DuckDB compresses it by default, against the one
          `DuckDBWarehouse.backup_range` creates (text columns stored uncompressed);
  publish: the chunk's DELETE + INSERT committed with DuckDB's default checkpoint
          threshold (16 MiB: a checkpoint at each large commit), against the warehouse's
          `CHECKPOINT_THRESHOLD` plus the one checkpoint when the command ends.
Prints seconds, the file growth and the ratios; each pair runs side by side in one run.

    .venv/bin/python bench/storage_bench.py --warehouse /tmp/b10/built.duckdb
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date, timedelta
from functools import partial
from pathlib import Path

from orchestrator.warehouse.duckdb import CHECKPOINT_THRESHOLD, DuckDBWarehouse

FACTS, FIELD = "marts.fct_trips", "trip_date"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="a built warehouse")
    parser.add_argument("--chunk-days", type=int, default=31)
    args = parser.parse_args()
    source: Path = args.warehouse
    scratch = source.with_name("storage-bench.duckdb")

    results: dict[str, tuple[float, float]] = {}
    runs = [
        ("backup, compressed (before)", "16MiB", partial(backup, "copy_range")),
        ("backup, text uncompressed (backup_range)", "16MiB", partial(backup, "backup_range")),
        ("publish, checkpoint per commit (before)", "16MiB", publish),
        (
            f"publish, threshold {CHECKPOINT_THRESHOLD}, one checkpoint",
            CHECKPOINT_THRESHOLD,
            publish,
        ),
    ]
    for name, threshold, run in runs:
        shutil.copyfile(source, scratch)
        wh = DuckDBWarehouse(scratch)
        wh.execute(f"set checkpoint_threshold = '{threshold}'")
        chunks = chunk_ranges(wh, args.chunk_days)
        size = scratch.stat().st_size
        t0 = time.perf_counter()
        run(wh, chunks)
        wh.execute("checkpoint")  # what closing the warehouse does: part of the cost
        seconds = time.perf_counter() - t0
        wh.close()
        results[name] = (seconds, (scratch.stat().st_size - size) / 2**20)
        print(f"{name}: {seconds:.1f} s, file +{results[name][1]:.0f} MiB", flush=True)
    scratch.unlink()

    names = list(results)
    print(f"backup: uncompressed text / compressed = {ratio(results, names[1], names[0]):.2f}")
    print(f"publish: one checkpoint / per commit = {ratio(results, names[3], names[2]):.2f}")


def chunk_ranges(wh: DuckDBWarehouse, days: int) -> list[tuple[date, date]]:
    first, last = wh.query(f"select min({FIELD}), max({FIELD}) from {FACTS}")[0]
    ranges, start = [], first
    while start <= last:
        end = min(start + timedelta(days=days - 1), last)
        ranges.append((start, end))
        start = end + timedelta(days=1)
    return ranges


def backup(method: str, wh: DuckDBWarehouse, chunks: list[tuple[date, date]]) -> None:
    """Copy each chunk's rows into a backup table with `method` (a backup's first copy
    creates the table: `copy_range` as DuckDB compresses by default, `backup_range` its way)."""
    wh.execute("create schema if not exists backfill_backups")
    for start, end in chunks:
        with wh.transaction():
            getattr(wh, method)(FACTS, f"backfill_backups.bench_{method}", FIELD, start, end)


def publish(wh: DuckDBWarehouse, chunks: list[tuple[date, date]]) -> None:
    """Each chunk's rows, held in memory as a staged chunk is, replace the chunk's range."""
    for start, end in chunks:
        staged = wh.transient_relation("backfill_staging.bench_chunk")
        wh.create_table_as(
            staged, f"select * from {FACTS} where {FIELD} between '{start}' and '{end}'"
        )
        with wh.transaction():
            wh.copy_range(staged, FACTS, FIELD, start, end)
        wh.drop_relation(staged)


def ratio(results: dict[str, tuple[float, float]], new: str, old: str) -> float:
    return results[new][0] / results[old][0]


if __name__ == "__main__":
    main()
