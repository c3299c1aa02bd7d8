"""Backfill benchmark: the safe path against the single-statement floor and a per-day loop.

Builds a bronze set and the warehouse, then measures side by side, in one run:
  (a) floor: fct_trips' compiled SQL for the whole range, executed directly as one range
      DELETE + INSERT in one transaction (no backup, staging, validation or records);
  (b) `backfill run --execute` of the same range, end to end as a CLI process (after
      plan, dry-run and approve, which are timed too): backup + staging + validation +
      atomic publish + audit, version and lineage records, per chunk;
  (c) a loop of one `dbt run --vars` per day (how teams backfill today), sampled on a few
      days and extrapolated to the whole range (said so in the output).
Prints b/a and c/b and writes bench/RESULTS.md with the command that produced them.

    .venv/bin/python bench/backfill_bench.py --trips 10000000 --days 365
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START = date(2024, 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=10_000_000, help="trips in total")
    parser.add_argument("--days", type=int, default=365, help="days of data = backfill range")
    parser.add_argument("--chunk-days", type=int, default=None, help="default: the policy's")
    parser.add_argument("--sample-days", type=int, default=3, help="days run in loop (c)")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "data")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the workdir's warehouse if it has the data (skips generate and build)",
    )
    args = parser.parse_args()

    workdir: Path = args.workdir.resolve()
    db = workdir / "bench.duckdb"
    reuse = args.reuse and db.exists()
    if not reuse:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
    env = {
        **os.environ,
        "RIDESHARE_DUCKDB_PATH": str(db),
        "BACKFILL_DBT_TARGET_PATH": str(workdir / "target"),
        "OPENLINEAGE_DIR": str(workdir / "openlineage"),
        "BACKFILL_OPERATOR": "bench",
    }
    os.environ.update(env)
    end = START + timedelta(days=args.days - 1)
    per_day = max(1, args.trips // args.days)
    timings: dict[str, float] = {}

    if reuse:
        print(f"... reusing {db}; refreshing its views", flush=True)
        dbt(env, "run", "--select", "config.materialized:view")
    else:
        build(env, args.days, per_day, timings)
    rows = scalar(db, "select count(*) from marts.fct_trips")
    loads = [os.getloadavg()[0]]

    floor = run_floor(env, db, START, end)
    timings["(a) floor: one DELETE+INSERT"] = floor
    loads.append(os.getloadavg()[0])

    plan_args = [
        "plan",
        "fct_trips",
        "--start",
        str(START),
        "--end",
        str(end),
        "--json",
        "--reason",
        "benchmark",
        "--requested-by",
        "alice",
    ]
    if args.chunk_days:
        plan_args += ["--chunk-days", str(args.chunk_days)]
    with timed(timings, "plan"):
        plan = json.loads(cli(env, *plan_args))
    plan_id = plan["backfill_id"]
    with timed(timings, "dry-run"):
        cli(env, "dry-run", plan_id, "--json")
    with timed(timings, "approve"):
        cli(env, "approve", plan_id, "--approver", "bob", "--json")
    with timed(timings, "(b) backfill run --execute"):
        report = json.loads(cli(env, "run", plan_id, "--execute", "--json"))
    loads.append(os.getloadavg()[0])
    steps: dict[str, float] = {}
    for chunk in report["chunks_run"]:
        for step, seconds in chunk["seconds"].items():
            steps[step] = steps.get(step, 0.0) + seconds
    in_run = report["seconds"]

    sample = [
        START + timedelta(days=i * max(1, args.days // args.sample_days))
        for i in range(args.sample_days)
    ]
    loop_seconds = []
    for day in sample:
        t0 = time.perf_counter()
        dbt(
            env,
            "run",
            "--select",
            "fct_trips",
            "--vars",
            json.dumps({"backfill_start": str(day), "backfill_end": str(day)}),
        )
        loop_seconds.append(time.perf_counter() - t0)
    per_day_loop = sum(loop_seconds) / len(loop_seconds)
    loop_total = per_day_loop * args.days
    timings[f"(c) dbt run per day, {args.sample_days} days sampled, x{args.days}"] = loop_total

    b = timings["(b) backfill run --execute"]
    lines = report_lines(
        args, rows, plan, timings, steps, in_run, floor, b, loop_total, per_day_loop, sample
    )
    lines.insert(
        5,
        f"Load average (1 min) before (a), after (a), after (b): "
        f"{', '.join(f'{x:.2f}' for x in loads)}; reused warehouse: {'yes' if reuse else 'no'}.",
    )
    print("\n".join(lines))
    if not args.no_write:
        (REPO / "bench" / "RESULTS.md").write_text("\n".join(lines) + "\n")


def build(env: dict[str, str], days: int, per_day: int, timings: dict[str, float]) -> None:
    """Bronze from the generator, then seeds and every model built by dbt."""
    with timed(timings, "generate bronze"):
        cli(env, "generate", "--days", str(days), "--trips-per-day", str(per_day), "--seed", "1")
    with timed(timings, "initial dbt build (seeds + models)"):
        dbt(env, "seed")
        dbt(env, "run")


def run_floor(env: dict[str, str], db: Path, start: date, end: date) -> float:
    """Compile once through dbt, then time only the SQL: the fastest a backfill can be."""
    code = f"""
import time, duckdb
from pathlib import Path
from orchestrator.dbt import Dbt
sql = Dbt(Path({str(REPO)!r})).compile(
    "fct_trips", {{"backfill_start": "{start}", "backfill_end": "{end}"}}).sql
Dbt(Path({str(REPO)!r})).release_warehouse()
con = duckdb.connect({str(db)!r})
cols = ", ".join(r[0] for r in con.execute(
    "select column_name from information_schema.columns where table_schema = 'marts' "
    "and table_name = 'fct_trips' order by ordinal_position").fetchall())
t0 = time.perf_counter()
con.execute("begin transaction")
con.execute("delete from marts.fct_trips where trip_date between '{start}' and '{end}'")
con.execute(f"insert into marts.fct_trips ({{cols}}) select {{cols}} from ({{sql}})")
con.execute("commit")
print(time.perf_counter() - t0)
"""
    out = subprocess.run(
        [str(BIN / "python"), "-c", code],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return float(out.stdout.strip().splitlines()[-1])


def report_lines(
    args: argparse.Namespace,
    rows: int,
    plan: dict,
    timings: dict[str, float],
    steps: dict[str, float],
    in_run: float,
    floor: float,
    b: float,
    loop_total: float,
    per_day_loop: float,
    sample: list[date],
) -> list[str]:
    command = "`.venv/bin/python bench/backfill_bench.py " + " ".join(sys.argv[1:]) + "`"
    wap_free = b - steps.get("backup", 0.0) - steps.get("validate", 0.0)
    chunk_days = plan["chunk_days"]
    lines = [
        "# Backfill benchmark",
        "",
        f"Command: {command} (run from the repo root; `make bench` runs the defaults).",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}; date {date.today()}.",
        f"Data: {rows:,} trips in fct_trips over {args.days} days; backfill of the whole "
        f"range in {len(plan['chunks'])} chunks of {chunk_days} days.",
        "",
        "| measurement | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in timings.items()]
    lines += [
        "",
        "Ratios (measured side by side in this run):",
        "",
        f"- **b/a = {b / floor:.2f}** — the whole safe path, CLI process start to exit, "
        "over the single-statement floor",
        f"- b/a inside the run = {in_run / floor:.2f} (without process start, dbt parse and "
        "the fingerprint re-check)",
        f"- (b - backup - validate)/a = {wap_free / floor:.2f} — the run without the two steps "
        "write-audit-publish adds (issue 3's path: chunked build, atomic publish, checksums, "
        "audit, version and lineage rows), derived from the step times of the same run",
        f"- **c/b = {loop_total / b:.1f}** — a per-day `dbt run --vars` loop over the safe path",
        f"- plan + dry-run = {timings['plan'] + timings['dry-run']:.1f} s",
        "",
        "Steps of (b), summed over chunks:",
        "",
        "| step | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {step} | {seconds:.1f} |" for step, seconds in steps.items()]
    lines += [
        "",
        f"(c) is extrapolated: {len(sample)} single-day `dbt run` processes "
        f"({', '.join(str(d) for d in sample)}) took {per_day_loop:.1f} s each on average; "
        f"x {args.days} days = {loop_total:.0f} s. Running the whole loop would take that long.",
    ]
    return lines


class timed:
    def __init__(self, into: dict[str, float], name: str) -> None:
        self.into, self.name = into, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()
        print(f"... {self.name}", flush=True)

    def __exit__(self, *exc: object) -> None:
        self.into[self.name] = time.perf_counter() - self.t0


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [str(BIN / "backfill"), *args, "--project-dir", str(REPO)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"backfill {args[0]} failed: {out.stderr.strip()}")
    return out.stdout


def dbt(env: dict[str, str], *args: str) -> None:
    out = subprocess.run(
        [
            str(BIN / "dbt"),
            *args,
            "--project-dir",
            str(REPO),
            "--profiles-dir",
            str(REPO),
            "--target-path",
            env["BACKFILL_DBT_TARGET_PATH"] + "_cli",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if out.returncode != 0:
        sys.exit(f"dbt {args[0]} failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")


def scalar(db: Path, sql: str) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


if __name__ == "__main__":
    main()
