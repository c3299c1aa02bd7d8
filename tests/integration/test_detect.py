"""Late data, gaps, corrections and code changes are detected exactly, a stale plan fixes
them through the gate, and the result equals a rebuild from scratch of the same bronze.

Every step is real: bronze deliveries appended to a real DuckDB file, dbt's own runs
(whose on-run-end hook keeps the build ledger), the CLI, and an oracle warehouse built by
`dbt build` on a fresh file from a copy of the same bronze."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest
from support import REPO, backfill, checksums, query

from orchestrator.dbt import Dbt
from orchestrator.demo.deliveries import deliver_corrected, deliver_day, deliver_late
from orchestrator.demo.generate import generate_bronze
from orchestrator.warehouse.duckdb import connect
from tests.reliability.crash_harness import snapshot_project

LATE_DAYS = [date(2024, 1, 5), date(2024, 1, 8), date(2024, 1, 12)]
DELIVERED_ON = date(2024, 2, 20)  # after every batch of the template
MODELS = ("fct_trips", "fct_driver_daily_earnings", "fct_driver_daily_features")
FACTS = {
    "fct_trips": ("marts.fct_trips", "trip_date"),
    "fct_driver_daily_earnings": ("marts.fct_driver_daily_earnings", "earning_date"),
}


def detected(*models: str) -> dict[str, dict[date, str]]:
    result = backfill("detect", *models, "--json")
    assert result.exit_code == 0, result.stderr
    return {
        r["model"]: {date.fromisoformat(p["partition"]): p["kind"] for p in r["partitions"]}
        for r in result.json()
    }


def deliver(path: Path, fn: object, *args: object) -> None:
    with connect(path) as con:
        fn(con, *args)  # type: ignore[operator]


def dbt(*args: str) -> None:
    runner = Dbt(REPO)
    try:
        runner.invoke(list(args))
    finally:
        runner.release_warehouse()


def approved_stale_plan(*flags: str) -> str:
    planned = backfill(
        "plan", "fct_trips", *flags, "--downstream", "--category", "late_data",
        "--requested-by", "alice", "--reason", "late delivery", "--json",
    )  # fmt: skip
    assert planned.exit_code == 0, planned.stderr
    plan_id = str(planned.json()["backfill_id"])
    assert backfill("dry-run", plan_id).exit_code == 0
    assert backfill("approve", plan_id, "--approver", "bob").exit_code == 0
    return plan_id


def rebuilt_from_scratch(warehouse: Path, tmp_path: Path) -> Path:
    """A fresh file with a copy of the same bronze, built by `dbt build`."""
    oracle = tmp_path / "oracle.duckdb"
    with duckdb.connect(str(oracle)) as con:
        con.execute(f"attach '{warehouse}' as source (read_only)")
        con.execute("create schema bronze")
        for table in ("trip_events", "drivers", "riders"):
            con.execute(f"create table bronze.{table} as select * from source.bronze.{table}")
    previous = os.environ["RIDESHARE_DUCKDB_PATH"]
    os.environ["RIDESHARE_DUCKDB_PATH"] = str(oracle)
    try:
        dbt("build", "--exclude-resource-type", "unit_test")
    finally:
        os.environ["RIDESHARE_DUCKDB_PATH"] = previous
    return oracle


def test_a_late_delivery_is_detected_exactly_and_a_stale_plan_fixes_it(
    warehouse: Path, tmp_path: Path
) -> None:
    assert detected() == {
        "fct_trips": {},
        "fct_driver_daily_earnings": {},
        "fct_driver_daily_features": {},
    }
    deliver(warehouse, deliver_late, LATE_DAYS, 5, DELIVERED_ON)
    stale = {day: "stale" for day in LATE_DAYS}
    expected = {
        m: stale for m in ("fct_trips", "fct_driver_daily_earnings", "fct_driver_daily_features")
    }
    assert detected() == expected

    dbt("run")  # the scheduler's nightly run: the lookback days only
    assert detected() == expected

    plan_id = approved_stale_plan("--stale")
    plan = backfill("status", plan_id, "--json").json()
    assert {(c["model"], c["start"], c["end"]) for c in plan["chunks"]} == {
        (m, d.isoformat(), d.isoformat()) for m in expected for d in LATE_DAYS
    }
    before = checksums(warehouse)
    run = backfill("run", plan_id, "--execute")
    assert run.exit_code == 0, run.stderr
    after = checksums(warehouse)
    assert {d for d in set(before) | set(after) if before.get(d) != after.get(d)} == set(LATE_DAYS)
    assert detected() == {m: {} for m in expected}

    oracle = rebuilt_from_scratch(warehouse, tmp_path)
    for relation, field in FACTS.values():
        assert checksums(warehouse, relation, field) == checksums(oracle, relation, field)

    review = backfill("review", "--since", "30d", "--json")
    assert review.exit_code == 0, review.stderr
    groups = review.json()["groups"]
    assert [(g["model"], g["category"], g["outcome"], g["backfills"]) for g in groups] == [
        ("fct_trips", "late_data", "succeeded", 1)
    ]
    assert groups[0]["partitions"] == 9 and groups[0]["partitions_changed"] >= 3


def test_each_kind_is_detected_with_its_evidence(warehouse: Path, tmp_path: Path) -> None:
    deliver(warehouse, deliver_corrected, [date(2024, 1, 20)], 3, DELIVERED_ON)
    found = detected("fct_trips")["fct_trips"]
    assert found == {date(2024, 1, 20): "stale"}
    evidence = backfill("detect", "fct_trips", "--json").json()[0]["partitions"][0]
    assert evidence["batches"] == [f"{DELIVERED_ON:%Y%m%d}-05"]
    assert evidence["rows"] == 3

    project = snapshot_project(tmp_path / "project")
    model = project / "models" / "marts" / "core" / "fct_trips.sql"
    model.write_text(model.read_text() + "\n-- a code change\n")
    drifted = backfill("detect", "fct_trips", "--json", project_dir=project)
    assert drifted.exit_code == 0, drifted.stderr
    kinds = {p["kind"] for p in drifted.json()[0]["partitions"]}
    assert kinds == {"stale", "drifted"}
    assert len([p for p in drifted.json()[0]["partitions"] if p["kind"] == "drifted"]) == 40


def test_a_gap_day_whose_events_arrive_late_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gap.duckdb"
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(path))
    monkeypatch.setenv("BACKFILL_TODAY", "2026-11-22")
    with connect(path) as con:
        generate_bronze(con, days=6, trips_per_day=50, seed=3, start_date=date(2024, 1, 1))
        generate_bronze(con, days=6, trips_per_day=50, seed=3, start_date=date(2024, 1, 8))
    dbt("build", "--exclude-resource-type", "unit_test")
    assert query(path, "select count(*) from marts.fct_trips where trip_date = '2024-01-07'") == [
        (0,)
    ]
    deliver(path, deliver_day, date(2024, 1, 7), date(2024, 1, 6), date(2024, 1, 25))
    assert detected("fct_trips") == {"fct_trips": {date(2024, 1, 7): "missing"}}
    plan_id = approved_stale_plan("--missing")
    assert backfill("run", plan_id, "--execute").exit_code == 0
    assert detected("fct_trips") == {"fct_trips": {}}
    assert query(
        path, "select count(*) > 0 from marts.fct_trips where trip_date = '2024-01-07'"
    ) == [(True,)]


def test_an_analysts_dbt_run_over_some_stale_days_clears_exactly_those(warehouse: Path) -> None:
    deliver(warehouse, deliver_late, LATE_DAYS, 5, DELIVERED_ON)
    dbt(
        "run",
        "--select",
        "fct_trips",
        "--vars",
        '{"backfill_start": "2024-01-05", "backfill_end": "2024-01-08"}',
    )
    found = detected()
    assert found["fct_trips"] == {date(2024, 1, 12): "stale"}
    # Upstream was rebuilt after them (the analyst's whole range): the downstream days are
    # stale until replayed, and so is the late day nobody rebuilt.
    rebuilt = [date(2024, 1, d) for d in (5, 6, 7, 8, 12)]
    assert found["fct_driver_daily_earnings"] == {day: "stale" for day in rebuilt}


def test_a_stale_backfill_killed_midway_resumes_and_detect_agrees(warehouse: Path) -> None:
    deliver(warehouse, deliver_late, LATE_DAYS, 5, DELIVERED_ON)
    plan_id = approved_stale_plan("--stale")
    killed = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", plan_id, "--execute",
         "--project-dir", str(REPO)],
        env={**os.environ, "BACKFILL_FAULT": "after_publish@2"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -9
    found = detected("fct_trips")["fct_trips"]
    assert found == {date(2024, 1, 12): "stale"}  # chunks 1 and 2 published, 3 not
    resumed = backfill("run", plan_id, "--execute")
    assert resumed.exit_code == 0, resumed.stderr
    assert detected() == {
        m: {} for m in ("fct_trips", "fct_driver_daily_earnings", "fct_driver_daily_features")
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("detect", "fct_trip"), "unknown model 'fct_trip'; did you mean fct_trips?"),
        (("detect", "dim_riders"),
         "model dim_riders has no meta.backfill policy; it cannot be backfilled (Rebuilt in "
         "full from bronze on every run; it has no partitions.)"),
        (("review", "--since", "30x"),
         "since '30x' must be a period like 30d, 12h or 2w, or a date (YYYY-MM-DD)"),
        (("review", "--since", "2024-02-30"),
         "since date '2024-02-30' is not a valid calendar date"),
        (("review", "--model", "nope"), "unknown model 'nope'"),
        (("plan", "fct_trips", "--stale", "--start", "2024-01-01"),
         "--stale, --missing and --drifted plan exactly the partitions backfill detect finds; "
         "give them without --start and --end"),
        (("plan", "fct_trips", "--stale"),
         "fct_trips has no stale partitions (backfill detect); nothing to plan"),
        (("plan", "fct_trips", "--start", "2024-01-01", "--end", "2024-01-02", "--category",
          "whim"),
         "Invalid value for '--category': 'whim' is not one of 'late_data', 'upstream_fix', "
         "'logic_change', 'metric_change', 'schema_change', 'other'."),
    ],
)  # fmt: skip
def test_bad_input_to_detect_review_and_stale_plans_exits_2(
    warehouse: Path, args: tuple[str, ...], error: str
) -> None:
    result = backfill(*args)
    assert (result.exit_code, result.stderr) == (2, f"Error: {error}\n")
