"""Detect benchmark: `backfill detect` after a late delivery, at 1x and 3x the history.

For each history length (`--days` and three times as many, same trips a day) it builds a
warehouse (bronze from the generator, seeds, `dbt run` of fct_trips and what it reads, so
the build ledger is written by dbt's own hooks), runs one detect (which sets the cursor),
delivers late trips for 5 old days in a new batch, and times a detect as a CLI process and
the detect library call alone. Beside it, in the same run, the scan a detect without a
cursor would need: every bronze row, grouped by event day and batch. Its time grows with
the history; detect's must not. Prints the figures; --write adds them to bench/RESULTS.md.

    .venv/bin/python bench/detect_bench.py --trips 10000000 --days 365
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START = date(2024, 1, 1)
LATE_DAYS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=1_000_000, help="trips in the 1x history")
    parser.add_argument("--days", type=int, default=365, help="days in the 1x history")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "data" / "detect")
    parser.add_argument("--rounds", type=int, default=3, help="timed detects per history")
    parser.add_argument(
        "--reuse", action="store_true", help="time again on the warehouses a run built"
    )
    args = parser.parse_args()
    per_day = max(1, args.trips // args.days)
    rows = []
    for scale in (1, 3):
        rows.append(
            measure(args.workdir / f"x{scale}", args.days * scale, per_day, args.rounds, args.reuse)
        )
    print(f"\n{'history':>8}  {'trips':>12}  {'build':>7}  {'detect CLI':>10}  "
          f"{'detect call':>11}  {'full scan':>9}  found")  # fmt: skip
    for r in rows:
        print(f"{r['days']:>7}d  {r['trips']:>12,}  {r['build']:>6.0f}s  {r['cli']:>9.2f}s  "
              f"{r['call']:>10.3f}s  {r['scan']:>8.3f}s  {r['found']}")  # fmt: skip
    print(
        f"detect call 3x/1x: {rows[1]['call'] / rows[0]['call']:.2f}; "
        f"full scan 3x/1x: {rows[1]['scan'] / rows[0]['scan']:.2f}"
    )


def measure(workdir: Path, days: int, per_day: int, rounds: int, reuse: bool) -> dict[str, object]:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "warehouse.duckdb"
    env = {
        **os.environ,
        "RIDESHARE_DUCKDB_PATH": str(db),
        "DBT_PROFILES_DIR": str(REPO),
        "BACKFILL_TODAY": "2030-01-01",
        "BACKFILL_DBT_TARGET_PATH": str(workdir / "target"),
    }
    build = 0.0
    if not (reuse and db.exists()):
        for stale in (db, db.with_name(db.name + ".wal")):
            stale.unlink(missing_ok=True)
        began = time.perf_counter()
        run(env, BIN / "backfill", "generate", "--days", str(days), "--trips-per-day", str(per_day))
        run(env, BIN / "dbt", "seed", "-q")
        run(env, BIN / "dbt", "run", "-q", "--select", "+fct_trips")
        build = time.perf_counter() - began
        run(env, BIN / "backfill", "detect", "fct_trips")  # sets the cursor
        last = START + timedelta(days=days - 1)
        late = [last - timedelta(days=30 * (i + 1)) for i in range(LATE_DAYS)]
        on = last + timedelta(days=10)
        run(env, BIN / "backfill", "deliver", "late", "--days", ",".join(map(str, late)),
            "--on", str(on), "--trips-per-day", "20")  # fmt: skip
    cli_times, call_times, found = [], [], ""
    for _ in range(rounds):
        reset_cursor(db)
        t0 = time.perf_counter()
        out = run(env, BIN / "backfill", "detect", "fct_trips")
        cli_times.append(time.perf_counter() - t0)
        found = out.splitlines()[0]
        reset_cursor(db)
        call_times.append(float(run(env, BIN / "python", "-c", CALL).strip()))
    scan = float(run(env, BIN / "python", "-c", FULL_SCAN.format(db=db)).strip())
    trips = per_day * days
    return {"days": days, "trips": trips, "build": build, "cli": min(cli_times),
            "call": min(call_times), "scan": scan, "found": found}  # fmt: skip


def reset_cursor(db: Path) -> None:
    """Forget the timed detect's findings so each round reads the late batch again."""
    import duckdb

    with duckdb.connect(str(db)) as con:
        con.execute(
            "delete from backfill_audit.detect_findings where batch_id = "
            "(select max(batch_id) from backfill_audit.detect_findings)"
        )
        con.execute(
            "delete from backfill_audit.detect_cursor where batch_id = "
            "(select max(batch_id) from backfill_audit.detect_cursor)"
        )


CALL = """
import time
from pathlib import Path
from orchestrator.context import Context
from orchestrator.detect import detect
ctx = Context(Path.cwd())
ctx.dbt.manifest()
t0 = time.perf_counter()
detect(ctx, ["fct_trips"])
print(time.perf_counter() - t0)
ctx.close()
"""

FULL_SCAN = """
import time, duckdb
con = duckdb.connect("{db}")
t0 = time.perf_counter()
con.execute("select cast(event_at as date), _batch_id, count(*) from bronze.trip_events "
            "group by all").fetchall()
print(time.perf_counter() - t0)
"""


def run(env: dict[str, str], *command: object) -> str:
    done = subprocess.run(
        [str(c) for c in command], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{done.stderr[-2000:]}")
    return done.stdout


if __name__ == "__main__":
    main()
