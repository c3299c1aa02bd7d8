"""Crash benchmark: N kill-and-resume trials of `backfill run --execute`, and what they found.

Builds the test warehouse (40 days x 200 trips), prepares one approved 3-chunk plan and a
clean reference run, then runs N trials (tests/reliability/crash_harness.py): first every
fault point at every chunk (SIGKILL), an exception at every point, torn publish commits
and double kills; then SIGKILLs at random times (every `--fresh-every`-th in a brand-new
CLI process, the others forked from this process after start-up) and random double kills.
After every trial it checks checksums against the reference, duplicate keys, the audit
store against the data, and every concurrent read. Prints trials, real kills, points
covered, failures and time.

    .venv/bin/python -m bench.crash_bench --trials 200   (from the repository root)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from tests.reliability import crash_harness as harness

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="number of trials")
    parser.add_argument("--seed", type=int, default=20261122, help="seed of the random kills")
    parser.add_argument(
        "--fresh-every", type=int, default=10, help="every Nth random kill in a new process"
    )
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "data" / "crash")
    parser.add_argument("--keep", action="store_true", help="keep every trial's warehouse")
    args = parser.parse_args()

    started = time.monotonic()
    workdir: Path = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    os.environ["BACKFILL_DBT_TARGET_PATH"] = str(workdir / "target")
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    os.environ.pop("BACKFILL_FAULT", None)

    print("building the warehouse and preparing the plan ...", flush=True)
    template = harness.build_template(workdir / "template.duckdb")
    scenario = harness.prepare(template, workdir / "scenario")
    setup = time.monotonic() - started
    print(
        f"plan {scenario.backfill_id}: {len(scenario.chunks)} chunks; a clean forked run takes "
        f"{scenario.run_seconds:.1f}s (set-up {setup:.0f}s)",
        flush=True,
    )

    trials = harness.many_trials(args.trials, args.seed, args.fresh_every)
    results = []
    for index, trial in enumerate(trials, start=1):
        trial_dir = workdir / "trials" / f"{index:04d}-{trial.name}"
        result = harness.run_trial(scenario, trial, trial_dir)
        results.append(result)
        verdict = "ok" if not result.problems else "FAILED"
        where = "; ".join(p.where for p in result.phases if p.kill.how != "none")
        print(f"[{index}/{len(trials)}] {trial.name}: {verdict} ({where}) {result.seconds:.1f}s")
        if result.problems:
            print(result.report(), flush=True)
        elif not args.keep:
            shutil.rmtree(trial_dir, ignore_errors=True)

    elapsed = time.monotonic() - started
    failures = [r for r in results if r.problems]
    phases = [p for r in results for p in r.phases if p.kill.how != "none"]
    signals = Counter(p.returncode for p in phases)
    fresh = sum(p.kill.fresh for p in phases)
    reads = sum(1 for r in results for p in r.phases for o in p.observations if o["t"] == "read")
    print()
    print(f"trials:           {len(results)} ({len(phases)} interrupted phases)")
    print(
        f"real kills:       {signals[-9]} SIGKILL, {signals[-25]} SIGXFSZ (torn commit); "
        f"{fresh} of the interrupted phases in a new CLI process"
    )
    print(f"exceptions:       {signals[1]} (':raise' fault points)")
    print(f"finished first:   {signals[0]} (a random kill that came after the run ended)")
    print(f"concurrent reads: {reads:,} checked, none may see a half-published chunk")
    print("points covered:")
    for where, count in sorted(harness.coverage(results).items()):
        print(f"  {count:4d}  {where}")
    print(f"failures:         {len(failures)}")
    for result in failures:
        print(f"  {result.trial.name}: {result.problems[0]}")
    print(f"time:             {elapsed:.0f}s ({setup:.0f}s set-up, {elapsed - setup:.0f}s trials)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
