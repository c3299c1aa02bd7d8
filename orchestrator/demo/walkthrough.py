"""`make demo`: build the demo warehouse from nothing and walk one backfill through every gate."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

from orchestrator import backfills
from orchestrator.context import Context
from orchestrator.demo import require_duckdb
from orchestrator.demo.deliveries import deliver_late
from orchestrator.demo.generate import generate_bronze
from orchestrator.warehouse.duckdb import DuckDBWarehouse

Echo = Callable[[str], None]
FIRST_DAYS = 80
LATER_DAYS = 10
TRIPS_PER_DAY = 2000
START = date(2024, 1, 1)


def run_demo(ctx: Context, echo: Echo) -> None:
    require_duckdb(ctx.target, "demo")
    wh = ctx.warehouse
    assert isinstance(wh, DuckDBWarehouse)  # require_duckdb: the target is duckdb
    began = time.monotonic()
    wh.close()
    if wh.path.exists():
        echo(f"demo: starting over; removing the previous demo warehouse {wh.path}")
        wh.path.unlink()
        wh.path.with_name(wh.path.name + ".wal").unlink(missing_ok=True)

    _step(echo, f"generate {FIRST_DAYS} days of bronze events from {START}")
    result = generate_bronze(
        wh.con, days=FIRST_DAYS, trips_per_day=TRIPS_PER_DAY, seed=42, start_date=START
    )
    echo(
        f"  {result.trip_events:,} trip events ({result.late_events:,} late, "
        f"{result.duplicate_events:,} duplicates)"
    )
    _step(
        echo, "dbt build: seeds, staging views, incremental facts, versioned dims, snapshots, tests"
    )
    # Unit tests of incremental models read `this`, so they run once the facts exist.
    ctx.dbt.invoke(["build", "--exclude-resource-type", "unit_test"])
    ctx.dbt.invoke(["test", "--select", "test_type:unit"])

    later = date.fromordinal(START.toordinal() + FIRST_DAYS)
    _step(
        echo,
        f"a later delivery: {LATER_DAYS} more days from {later}, with late events "
        "for days already built",
    )
    generate_bronze(wh.con, days=LATER_DAYS, trips_per_day=TRIPS_PER_DAY, seed=42, start_date=later)
    _step(
        echo,
        "dbt build again: facts rewrite the last lookback_days and append new days; "
        "snapshots record driver changes",
    )
    ctx.dbt.invoke(["build"])

    _step(echo, "backfill fct_trips 2024-02-01..2024-02-07: plan -> dry-run -> approve -> run")
    plan = backfills.create_plan(
        ctx,
        "fct_trips",
        "2024-02-01",
        "2024-02-07",
        reason="demo: replay a week after a fare-rule fix",
        requested_by="alice",
    )
    echo(
        f"  plan {plan.backfill_id}: {len(plan.chunks)} chunk(s), "
        f"{plan.impact['rows_now']:,} rows now, exposures: {', '.join(plan.impact['exposures'])}"
    )
    report = backfills.dry_run(ctx, plan.backfill_id)
    echo(
        f"  dry run: {report.rows_to_replace:,} rows to replace, "
        f"~{report.rows_read_estimate:,} rows read; SQL in {report.compiled_dir}/"
    )
    backfills.approve(ctx, plan.backfill_id, "bob", "demo approval")
    echo("  approved by bob (fct_trips is critical: alice may not approve her own plan)")
    run = backfills.run(ctx, plan.backfill_id, requested_by="alice")
    echo(
        f"  run: {run.status}, {len(run.chunks_run)} chunk(s), {run.rows_after:,} rows "
        f"published in {run.seconds:.1f}s"
    )

    _late_data(ctx, echo)

    _step(echo, "summary")
    _summary(ctx, echo)
    echo(f"demo finished in {time.monotonic() - began:.0f}s; warehouse: {wh.path}")
    echo(
        f"try: .venv/bin/backfill history   |   .venv/bin/backfill status {plan.backfill_id}"
        "   |   .venv/bin/backfill detect   |   .venv/bin/backfill review --since 30d"
    )


def _late_data(ctx: Context, echo: Echo) -> None:
    """A delivery older than lookback_days: detect names the days, a stale plan fixes them."""
    days = [date(2024, 1, 20), date(2024, 2, 10)]
    delivered_on = date.fromordinal(START.toordinal() + FIRST_DAYS + LATER_DAYS + 5)
    _step(
        echo,
        f"a late delivery on {delivered_on}: trips of {days[0]} and {days[1]}, far beyond the "
        "lookback, that no dbt run will pick up",
    )
    wh = ctx.warehouse
    assert isinstance(wh, DuckDBWarehouse)
    deliver_late(wh.con, days, 25, delivered_on)
    for report in backfills.detect(ctx, ["fct_trips"]):
        echo(f"  detect: {report.summary}")
        for p in report.partitions:
            echo(f"    {p.partition} {p.kind}: {p.evidence}")
    plan = backfills.create_plan(
        ctx,
        "fct_trips",
        downstream=True,
        reason="demo: late delivery",
        requested_by="alice",
        category="late_data",
        detected=("stale",),
    )
    chunks = ", ".join(f"{c.model} {c.start}" for c in plan.chunks)
    echo(f"  plan {plan.backfill_id} --stale --downstream: {chunks}")
    backfills.dry_run(ctx, plan.backfill_id)
    backfills.approve(ctx, plan.backfill_id, "bob", "late data, checked the evidence")
    run = backfills.run(ctx, plan.backfill_id, requested_by="alice")
    echo(f"  run: {run.status}, {len(run.chunks_run)} chunk(s)")
    for report in backfills.detect(ctx):
        echo(f"  detect: {report.summary}")
    for group in backfills.review(ctx, "30d").groups:
        echo(
            f"  review: {group.model} {group.category} {group.outcome}: {group.backfills} "
            f"backfill(s), {group.partitions_changed} of {group.partitions} partitions changed"
        )


def _step(echo: Echo, text: str) -> None:
    echo(f"==> {text}")


def _summary(ctx: Context, echo: Echo) -> None:
    wh = ctx.warehouse
    rows = wh.query(
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_schema in ('bronze', 'seeds', 'staging', 'marts', 'snapshots') "
        "order by 1, 2"
    )
    partition_fields = {
        "fct_trips": "trip_date",
        "fct_driver_daily_earnings": "earning_date",
        "fct_driver_daily_features": "feature_date",
        "trip_events": "_ingested_date",
    }
    lines = []
    for schema, name, kind in rows:
        count = int(wh.query(f"select count(*) from {schema}.{name}")[0][0])
        field = partition_fields.get(name)
        parts = (
            str(wh.query(f"select count(distinct {field}) from {schema}.{name}")[0][0])
            if field
            else ""
        )
        lines.append((f"{schema}.{name}", "view" if kind == "VIEW" else "table", count, parts))
    lines += [(name, "table", count, "") for name, count in ctx.audit.row_counts().items()]
    width = max(len(name) for name, *_ in lines)
    echo(f"  {'relation'.ljust(width)}  {'kind':<5}  {'rows':>10}  partitions")
    for name, label, count, parts in lines:
        echo(f"  {name.ljust(width)}  {label:<5}  {count:>10,}  {parts}")
