"""The `backfill` command line: thin commands over the library in orchestrator/.

Exit codes: 0 ok, 1 the work failed, 2 bad input. Errors are one `Error:` line on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from orchestrator import backfills, render
from orchestrator.context import Context, check_target
from orchestrator.errors import BackfillError, ValidationFailed
from orchestrator.options import common, execute, requested_by


class CliError(click.ClickException):
    """A library error shown as one `Error:` line with the library's exit code."""

    def __init__(self, exc: BackfillError) -> None:
        super().__init__(str(exc))
        self.exit_code = exc.exit_code  # type: ignore[misc]  # click reads it per instance


class BackfillGroup(click.Group):
    """Prints usage errors as one `Error:` line (exit 2), like every other bad input."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("standalone_mode", None)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.UsageError as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@contextmanager
def library(project_dir: Path, target: str | None) -> Iterator[Context]:
    """One Context per command; library errors become CLI errors."""
    ctx = Context(project_dir, target)
    try:
        check_target(target)  # before anything is parsed or opened
        yield ctx
    except ValidationFailed as exc:
        for failure in exc.failures:
            click.echo(
                f"  failed: {failure['check']} [{failure['partition']}] "
                f"observed {failure['observed']}, expected {failure['expected']}",
                err=True,
            )
        raise CliError(exc) from exc
    except BackfillError as exc:
        raise CliError(exc) from exc
    finally:
        ctx.close()


@click.group(cls=BackfillGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rideshare-backfills")
def cli() -> None:
    """Plan, dry-run, approve and run safe, audited backfills of dbt models.

    \b
    Example:
        backfill plan fct_trips --start 2024-02-01 --end 2024-02-07 --reason "fare fix"
    """


@cli.command()
@click.option("--days", type=int, required=True, help="Number of event days to generate.")
@click.option("--trips-per-day", type=int, required=True, help="Trips requested per day.")
@click.option("--seed", type=int, default=42, show_default=True, help="Deterministic seed.")
@click.option("--start-date", default="2024-01-01", show_default=True, help="First event day.")
@common
def generate(
    days: int,
    trips_per_day: int,
    seed: int,
    start_date: str,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Generate deterministic bronze data (with late and duplicate events) into the warehouse.

    \b
    Example:
        backfill generate --days 90 --trips-per-day 2000 --seed 42
    """
    from orchestrator.generate import generate_bronze
    from orchestrator.plan import parse_date
    from orchestrator.warehouse.duckdb import connect

    with library(project_dir, target):
        first_day = parse_date(start_date, "start")
        with connect() as con:
            result = generate_bronze(
                con, days=days, trips_per_day=trips_per_day, seed=seed, start_date=first_day
            )
    if as_json:
        render.as_json(asdict(result))
        return
    click.echo(
        f"bronze: {result.trip_events:,} trip events, {result.drivers:,} driver records, "
        f"{result.riders:,} riders for {result.start_date}..{result.end_date} "
        f"({result.late_events:,} late, {result.duplicate_events:,} duplicates) "
        f"in {result.seconds:.1f}s"
    )


@cli.command()
@click.argument("model")
@click.option("--start", required=True, help="First partition (YYYY-MM-DD), inclusive.")
@click.option("--end", required=True, help="Last partition (YYYY-MM-DD), inclusive.")
@click.option("--chunk-days", type=int, default=None, help="Days per chunk (default: policy).")
@click.option("--downstream", is_flag=True, help="Also replay the models that read MODEL.")
@click.option("--reason", default=None, help="Why this backfill is needed (one line).")
@requested_by
@common
def plan(
    model: str,
    start: str,
    end: str,
    chunk_days: int | None,
    downstream: bool,
    reason: str | None,
    requested_by: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Validate a backfill request, scope and chunk it, assess impact, store the plan.

    Read-only apart from the plan record.

    \b
    Example:
        backfill plan fct_trips --start 2024-02-01 --end 2024-02-07 --reason "fare fix"
    """
    from orchestrator.plan import check_chunk_days, check_identifier

    with library(project_dir, target) as ctx:
        if chunk_days is not None:  # bounded by the model's max_days (this needs its policy)
            policy = ctx.dbt.manifest().model(check_identifier(model)).policy()
            check_chunk_days(chunk_days, policy.max_days)
        record = backfills.create_plan(
            ctx,
            model,
            start,
            end,
            chunk_days=chunk_days,
            downstream=downstream,
            reason=reason,
            requested_by=requested_by,
        )
    if as_json:
        render.as_json(asdict(record))
        return
    impact = record.impact
    click.echo(
        f"plan {record.backfill_id}: {record.model} {record.start}..{record.end} "
        f"({impact['partitions']} partitions, {len(record.chunks)} chunks)"
    )
    click.echo(
        f"requested by {record.requested_by}; fingerprint {record.fingerprint}; "
        f"rows now {impact['rows_now']:,}; critical: {impact['critical']}"
    )
    render.table(
        ["chunk", "model", "start", "end"],
        [[c["chunk_no"], c["model"], c["start"], c["end"]] for c in record.chunks],
    )
    for item in impact["downstream"]:
        click.echo(f"downstream: {item['model']} ({item['action']})")
    for exposure in impact["exposures"]:
        click.echo(f"exposure: {exposure}")
    click.echo(f"next: backfill dry-run {record.backfill_id}")


def _print_dry_run(report: backfills.DryRunReport, as_json: bool) -> None:
    if as_json:
        render.as_json(asdict(report))
        return
    billed = report.bytes_processed is not None
    headers = ["chunk", "model", "start", "end", "rows to replace", "rows read (est.)"]
    headers += ["bytes processed"] if billed else []
    render.table(
        [*headers, "compiled sql"],
        [
            [
                c["chunk_no"],
                c["model"],
                c["start"],
                c["end"],
                c["rows_to_replace"],
                c["rows_read_estimate"],
                *([c.get("bytes_processed")] if billed else []),
                c["compiled_sql"],
            ]
            for c in report.chunks
        ],
    )
    cost = (
        f"; {report.bytes_processed:,} bytes processed, ~${report.cost_usd:,.4f} "
        f"at ${report.usd_per_tib:,.2f}/TiB on demand"
        if billed
        else ""
    )
    click.echo(
        f"dry run ok: {report.rows_to_replace:,} rows would be replaced, "
        f"~{report.rows_read_estimate:,} rows read{cost}; fingerprint {report.fingerprint}; "
        "nothing was written to the models"
    )


@cli.command("dry-run")
@click.argument("plan_id")
@common
def dry_run(plan_id: str, project_dir: Path, target: str | None, as_json: bool) -> None:
    """Compile every chunk with dbt and estimate the work; no model changes.

    Compiled SQL goes under target/backfills/PLAN_ID/.

    \b
    Example:
        backfill dry-run bf_0123456789ab
    """
    with library(project_dir, target) as ctx:
        report = backfills.dry_run(ctx, plan_id)
    _print_dry_run(report, as_json)


@cli.command()
@click.argument("plan_id")
@click.option("--approver", required=True, help="Who approves (not the requester, if critical).")
@click.option("--comment", default=None, help="A note kept with the approval.")
@common
def approve(
    plan_id: str,
    approver: str,
    comment: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Approve a dry-run plan; the approval is bound to the plan's fingerprint.

    \b
    Example:
        backfill approve bf_0123456789ab --approver bob --comment "checked the dry run"
    """
    from orchestrator.plan import check_reason

    with library(project_dir, target) as ctx:
        check_reason(comment, "comment")  # refused as a comment, not as a "reason"
        result = backfills.approve(ctx, plan_id, approver, comment)
    if as_json:
        render.as_json(result)
        return
    click.echo(
        f"plan {result['backfill_id']} approved by {result['approver']} "
        f"(fingerprint {result['fingerprint']}); next: backfill run {plan_id} --execute"
    )


@cli.command("run")
@click.argument("plan_id")
@execute
@requested_by
@common
def run_command(
    plan_id: str,
    execute: bool,
    requested_by: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Run an approved plan; without --execute this is a dry run.

    With --execute each chunk is backed up, staged, validated and published atomically.
    Running it again after a failure resumes at the first unfinished chunk.

    \b
    Example:
        backfill run bf_0123456789ab --execute
    """
    with library(project_dir, target) as ctx:
        if not execute:
            _print_dry_run(backfills.dry_run(ctx, plan_id), as_json)
            if not as_json:
                click.echo("(dry run: add --execute to write)")
            return
        with _progress(disabled=as_json) as on_progress:
            report = backfills.run(ctx, plan_id, requested_by=requested_by, on_progress=on_progress)
    if as_json:
        render.as_json(asdict(report))
        return
    click.echo(
        f"backfill {report.backfill_id} {report.status}: {len(report.chunks_run)} chunks "
        f"run, {report.chunks_skipped} already done, {report.rows_after:,} rows written "
        f"in {report.seconds:.1f}s"
    )


@contextmanager
def _progress(disabled: bool) -> Iterator[backfills.ProgressCallback | None]:
    """A progress bar on stderr (chunk, rows, elapsed, ETA), shown once the run has begun."""
    if disabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("chunk"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = progress.add_task("backfill", total=None, rows=0)

    def on_progress(done: int, total: int, rows: int) -> None:
        if not progress.live.is_started:
            progress.start()
        progress.update(task, completed=done, total=total, rows=rows)

    try:
        yield on_progress
    finally:
        if progress.live.is_started:
            progress.stop()


@cli.command()
@click.argument("plan_id", required=False)
@common
def status(plan_id: str | None, project_dir: Path, target: str | None, as_json: bool) -> None:
    """Show one backfill with its chunks, or the latest backfills.

    \b
    Example:
        backfill status bf_0123456789ab
    """
    with library(project_dir, target) as ctx:
        rows = _interrupted(ctx, backfills.status(ctx, plan_id))
    if as_json:
        render.as_json(rows if plan_id is None else rows[0])
        return
    if plan_id is None:
        _history_table(rows)
        return
    current = rows[0]
    click.echo(
        f"backfill {plan_id}: {current.get('model')} {current.get('start_date')}.."
        f"{current.get('end_date')} status {current.get('status')}; requested by "
        f"{current.get('requested_by')}, approved by {current.get('approved_by') or '-'}"
    )
    if current.get("error"):
        click.echo(f"error: {current['error']}")
    render.table(
        ["chunk", "model", "start", "end", "state", "rows before", "rows after"],
        [
            [
                c["chunk_no"],
                c["model"],
                c["start"],
                c["end"],
                c["state"],
                c["rows_before"],
                c["rows_after"],
            ]
            for c in current["chunks"]
        ],
    )


@cli.command()
@click.option("--model", default=None, help="Only backfills of this model.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="At most this many backfills.",
)
@common
def history(
    model: str | None, limit: int, project_dir: Path, target: str | None, as_json: bool
) -> None:
    """List backfills, newest first, with their current status.

    \b
    Example:
        backfill history --model fct_trips
    """
    with library(project_dir, target) as ctx:
        rows = _interrupted(ctx, backfills.history(ctx, model, limit))
    if as_json:
        render.as_json(rows)
        return
    _history_table(rows)


def _interrupted(ctx: Context, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Show a `running` backfill whose process is gone as `interrupted`.

    Display only: the audit log keeps `running`; resuming the plan (`backfill run PLAN
    --execute`) continues it and `backfill rollback PLAN` undoes what it published.
    """
    from orchestrator.lock import Locks

    locks = Locks(ctx.audit)
    for row in rows:
        if row.get("status") == "running" and locks.is_interrupted(
            str(row["model"]), str(row["backfill_id"])
        ):
            row["status"] = "interrupted"
    return rows


def _history_table(rows: list[dict[str, Any]]) -> None:
    render.table(
        [
            "backfill",
            "model",
            "start",
            "end",
            "status",
            "rows",
            "requested by",
            "approved by",
            "updated (UTC)",
        ],
        [
            [
                r["backfill_id"],
                r["model"],
                r["start_date"],
                r["end_date"],
                r["status"],
                r["rows_affected"],
                r["requested_by"],
                r["approved_by"],
                r["recorded_at"],
            ]
            for r in rows
        ],
    )


@cli.command()
@click.argument("model")
@click.option("--reason", default=None, help="Why the lock is cleared.")
@click.option(
    "--force",
    is_flag=True,
    help="Clear a lock this machine cannot prove stale (another host's); needs --reason.",
)
@requested_by
@common
def unlock(
    model: str,
    reason: str | None,
    force: bool,
    requested_by: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Clear a stale lock left by a killed backfill (recorded in lock_events).

    A lock taken on another host (a scheduler's worker, usually, on BigQuery) cannot be
    checked from here: --force clears it, with --reason, when you know its run is gone.

    \b
    Example:
        backfill unlock fct_trips --requested-by alice --reason "run killed by OOM"
    """
    with library(project_dir, target) as ctx:
        result = backfills.unlock(ctx, model, requested_by, reason, force=force)
    if as_json:
        render.as_json(result)
        return
    click.echo(f"cleared the lock on {model} held by backfill {result['backfill_id']}")


@cli.command("rollback")
@click.argument("plan_id")
@execute
@click.option("--force", is_flag=True, help="Restore even partitions changed since (recorded).")
@requested_by
@common
def rollback_command(
    plan_id: str,
    execute: bool,
    force: bool,
    requested_by: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Restore exactly the partitions a backfill replaced, from its backup, atomically.

    Without --execute it shows what it would restore.

    \b
    Example:
        backfill rollback bf_0123456789ab --execute --requested-by alice
    """
    from orchestrator.rollback import rollback

    with library(project_dir, target) as ctx:
        report = rollback(ctx, plan_id, execute=execute, requested_by=requested_by, force=force)
    if as_json:
        render.as_json(asdict(report))
        return
    render.table(
        ["model", "partition", "rows now", "rows restored", "changed since"],
        [
            [
                p["model"],
                p["partition"],
                p["rows_now"],
                p["rows_restored"],
                "yes" if p["changed_since"] else "no",
            ]
            for p in report.partitions
        ],
    )
    if report.executed:
        forced = " (forced over changed partitions)" if report.conflicts else ""
        click.echo(f"rolled back {plan_id}: {len(report.partitions)} partitions restored{forced}")
    else:
        click.echo(f"(dry run: add --execute to restore these {len(report.partitions)} partitions)")


@cli.group()
def versions() -> None:
    """Dataset versions: one per published backfill, with partition-level deltas.

    \b
    Example:
        backfill versions list fct_trips
    """


@versions.command("list")
@click.argument("model")
@common
def versions_list(model: str, project_dir: Path, target: str | None, as_json: bool) -> None:
    """List the versions of a dataset, oldest first (version 0 is dbt's build).

    \b
    Example:
        backfill versions list fct_trips
    """
    from orchestrator.plan import check_identifier
    from orchestrator.versions import list_versions

    with library(project_dir, target) as ctx:
        check_identifier(model)
        ctx.dbt.manifest().model(model)
        rows = list_versions(ctx.audit, model)
    if as_json:
        render.as_json(rows)
        return
    render.table(
        [
            "version",
            "kind",
            "backfill",
            "created (UTC)",
            "partitions",
            "first",
            "last",
            "row change",
            "description",
        ],
        [
            [
                r["version_no"],
                r["kind"],
                r["created_by_backfill"],
                r["created_at"],
                r["partitions"],
                r["first_partition"],
                r["last_partition"],
                r["row_change"],
                r["description"],
            ]
            for r in rows
        ],
    )


@versions.command("export")
@click.argument("model")
@click.option("--version", "version_no", type=int, required=True, help="Version number.")
@click.option(
    "--output", type=click.Path(path_type=Path), required=True, help="A new .parquet file."
)
@common
def versions_export(
    model: str,
    version_no: int,
    output: Path,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Write the dataset as it was at a version to a Parquet file.

    \b
    Example:
        backfill versions export fct_trips --version 3 --output trips_v3.parquet
    """
    from orchestrator.versions import export_version

    with library(project_dir, target) as ctx:
        result = export_version(ctx, model, version_no, output)
    if as_json:
        render.as_json(result)
        return
    click.echo(f"wrote {result['rows']:,} rows of {model} version {version_no} to {output}")


@versions.command("snapshot")
@click.argument("model")
@click.option("--tag", required=True, help="Name of the snapshot (letters, digits, _).")
@click.option("--model-run-id", default=None, help="The ML run that trains on it.")
@requested_by
@common
def versions_snapshot(
    model: str,
    tag: str,
    model_run_id: str | None,
    requested_by: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Take an immutable full snapshot of a dataset that later backfills never touch.

    \b
    Example:
        backfill versions snapshot fct_trips --tag train_2024q1 --model-run-id run-42
    """
    from orchestrator.versions import take_snapshot

    with library(project_dir, target) as ctx:
        result = take_snapshot(ctx, model, tag, model_run_id, requested_by)
    if as_json:
        render.as_json(result)
        return
    click.echo(
        f"snapshot {result['relation']}: {result['rows']:,} rows at version "
        f"{result['version']} (checksum {result['checksum']})"
    )


@cli.command("lineage")
@click.argument("model")
@click.option("--partition", default=None, help="Only what produced this day (YYYY-MM-DD).")
@common
def lineage_command(
    model: str, partition: str | None, project_dir: Path, target: str | None, as_json: bool
) -> None:
    """Which backfill, code and inputs produced a model's partitions.

    \b
    Example:
        backfill lineage fct_trips --partition 2024-02-03
    """
    from orchestrator.lineage import lineage_of
    from orchestrator.plan import check_identifier, parse_date

    with library(project_dir, target) as ctx:
        check_identifier(model)
        day = parse_date(partition, "partition") if partition is not None else None
        relation = ctx.dbt.manifest().model(model).relation
        rows = lineage_of(ctx.audit, relation, day)
    if as_json:
        render.as_json(rows)
        return
    if not rows:
        click.echo(
            f"no backfill has written {relation}"
            + (f" partition {partition}" if partition else "")
            + "; it is as dbt built it"
        )
        return
    render.table(
        [
            "backfill",
            "status",
            "range",
            "git commit",
            "sql hash",
            "dbt invocation",
            "produced (UTC)",
            "inputs",
        ],
        [
            [
                r["backfill_id"],
                r["backfill_status"],
                f"{r['partition_start']}..{r['partition_end']}",
                r["git_commit"][:12],
                r["config_hash"],
                r["dbt_invocation_id"][:8],
                r["produced_at"],
                ", ".join(i["relation"] for i in r["input_relations"]),
            ]
            for r in rows
        ],
    )


@cli.command()
@click.option("--keep-days", type=int, required=True, help="Keep what was active this recently.")
@execute
@requested_by
@common
def maintain(
    keep_days: int,
    execute: bool,
    requested_by: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Expire old backups and staging tables that no kept version needs.

    Without --execute it lists what it would remove.

    \b
    Example:
        backfill maintain --keep-days 30 --execute
    """
    from orchestrator.maintain import maintain as expire

    with library(project_dir, target) as ctx:
        expired = expire(ctx, keep_days, execute=execute, requested_by=requested_by)
    if as_json:
        render.as_json([asdict(e) for e in expired])
        return
    verb = "removed" if execute else "would remove"
    for item in expired:
        click.echo(f"{verb} {item.relation}: {item.reason}")
    click.echo(f"{verb} {len(expired)} relation(s)" + ("" if execute else "; add --execute"))


@cli.command()
@common
def demo(project_dir: Path, target: str | None, as_json: bool) -> None:
    """Build the demo warehouse end to end and walk one backfill through every gate.

    \b
    Example:
        backfill demo
    """
    from orchestrator.demo import run_demo

    with library(project_dir, target) as ctx:
        run_demo(ctx, echo=click.echo)


def main() -> None:
    cli(prog_name="backfill")
