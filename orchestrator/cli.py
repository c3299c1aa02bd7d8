"""The `backfill` command line: each command parses, makes one library call
(`orchestrator.backfills`) and prints with `orchestrator.render`.

Exit codes: 0 ok, 1 the work failed, 2 bad input. Errors are one `Error:` line on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from orchestrator import backfills, demo, render
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
def library(
    project_dir: Path, target: str | None, *, creates_warehouse: bool = False
) -> Iterator[Context]:
    """One Context per command; library errors become CLI errors."""
    ctx = Context(project_dir, target, creates_warehouse)
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
    with library(project_dir, target):
        result = demo.write_bronze(
            target, days=days, trips_per_day=trips_per_day, seed=seed, start_date=start_date
        )
    render.generated(result, as_json)


@cli.command()
@click.argument("model")
@click.option("--start", default=None, help="First partition (YYYY-MM-DD), inclusive.")
@click.option("--end", default=None, help="Last partition (YYYY-MM-DD), inclusive.")
@click.option("--stale", is_flag=True, help="Plan the stale partitions detect finds.")
@click.option("--missing", is_flag=True, help="Plan the missing partitions detect finds.")
@click.option("--drifted", is_flag=True, help="Plan the drifted partitions detect finds.")
@click.option("--chunk-days", type=int, default=None, help="Days per chunk (default: policy).")
@click.option("--downstream", is_flag=True, help="Also replay the models that read MODEL.")
@click.option("--reason", default=None, help="Why this backfill is needed (one line).")
@click.option(
    "--category",
    type=click.Choice(backfills.CATEGORIES),
    default="other",
    show_default=True,
    help="Why, from a closed list (for the monthly review).",
)
@requested_by
@common
def plan(
    model: str,
    start: str | None,
    end: str | None,
    stale: bool,
    missing: bool,
    drifted: bool,
    chunk_days: int | None,
    downstream: bool,
    reason: str | None,
    category: str,
    requested_by: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Validate a backfill request, scope and chunk it, assess impact, store the plan.

    Either a range (--start and --end) or what `backfill detect` finds (--stale,
    --missing, --drifted). Read-only apart from the plan record.

    \b
    Example:
        backfill plan fct_trips --start 2024-02-01 --end 2024-02-07 --reason "fare fix"
        backfill plan fct_trips --stale --downstream --category late_data
    """
    detected = tuple(
        k for k, on in (("stale", stale), ("missing", missing), ("drifted", drifted)) if on
    )
    if not detected:  # a range, both ends required
        for name, value in (("start", start), ("end", end)):
            if value is None:
                raise click.UsageError(f"Missing option '--{name}'.")
    with library(project_dir, target) as ctx:
        record = backfills.create_plan(
            ctx,
            model,
            start,
            end,
            chunk_days=chunk_days,
            downstream=downstream,
            reason=reason,
            requested_by=requested_by,
            category=category,
            detected=detected,
        )
    render.plan(record, as_json)


@cli.command()
@click.option("--since", default="30d", show_default=True, help="Period: 30d, 12h, 2w or a date.")
@click.option("--model", default=None, help="Only backfills of this model.")
@common
def review(
    since: str, model: str | None, project_dir: Path, target: str | None, as_json: bool
) -> None:
    """Review the period's backfills by model, reason category and outcome.

    Counts, partitions touched and changed, rows changed, time spent, failed checks,
    rollbacks, and the partitions backfilled more than once.

    \b
    Example:
        backfill review --since 30d
    """
    with library(project_dir, target) as ctx:
        result = backfills.review(ctx, since, model)
    render.reviewed(result, as_json)


@cli.command()
@click.argument("kind", type=click.Choice(["late", "corrected", "day"]))
@click.option("--days", "days_text", required=True, help="Days (YYYY-MM-DD, comma-separated).")
@click.option("--on", "on_text", required=True, help="The delivery day (its batch's day).")
@click.option("--trips-per-day", type=int, default=10, show_default=True, help="Trips per day.")
@click.option("--like", default=None, help="For `day`: the day whose events are copied.")
@common
def deliver(
    kind: str,
    days_text: str,
    on_text: str,
    trips_per_day: int,
    like: str | None,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Deliver more bronze for old days (demo tooling): late trips, corrected events, or a
    gap day's events, as one new batch.

    \b
    Example:
        backfill deliver late --days 2024-02-03,2024-02-04 --on 2024-03-31
    """
    with library(project_dir, target):
        result = demo.deliver(
            target, kind, days_text, on_text, trips_per_day=trips_per_day, like=like
        )
    render.delivered(result, as_json)


@cli.command()
@click.argument("models", nargs=-1)
@common
def detect(models: tuple[str, ...], project_dir: Path, target: str | None, as_json: bool) -> None:
    """List the partitions that need a backfill: stale, missing or drifted, with evidence.

    Reads only the bronze batches newer than what it examined before, and the ledger.

    \b
    Example:
        backfill detect fct_trips
    """
    with library(project_dir, target) as ctx:
        reports = backfills.detect(ctx, list(models) or None)
    render.detected(reports, as_json)


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
    render.dry_run(report, as_json)


@cli.command()
@click.argument("plan_id")
@click.option(
    "--approver",
    default=None,
    help="Who approves (not the requester, if critical); on BigQuery the signed-in "
    "principal, which this may only restate (default: it, else $BACKFILL_OPERATOR or the "
    "OS user).",
)
@click.option("--comment", default=None, help="A note kept with the approval.")
@common
def approve(
    plan_id: str,
    approver: str | None,
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
    with library(project_dir, target) as ctx:
        result = backfills.approve(ctx, plan_id, approver, comment)
    render.approved(result, as_json)


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
            render.dry_run(backfills.dry_run(ctx, plan_id), as_json)
            if not as_json:
                click.echo("(dry run: add --execute to write)")
            return
        with render.progress(disabled=as_json) as shown:
            report = backfills.run(
                ctx,
                plan_id,
                requested_by=requested_by,
                on_progress=shown.on_progress,
                on_step=shown.on_step,
            )
    render.ran(report, as_json)


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
        rows = backfills.status(ctx, plan_id)
    render.status(plan_id, rows, as_json)


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
        rows = backfills.history(ctx, model, limit)
    render.history(rows, as_json)


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
    render.unlocked(result, as_json)


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
    with library(project_dir, target) as ctx:
        report = backfills.rollback(
            ctx, plan_id, execute=execute, requested_by=requested_by, force=force
        )
    render.rolled_back(report, as_json)


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
    with library(project_dir, target) as ctx:
        rows = backfills.list_versions(ctx, model)
    render.versions(rows, as_json)


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
    with library(project_dir, target) as ctx:
        result = backfills.export_version(ctx, model, version_no, output)
    render.exported(result, as_json)


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
    with library(project_dir, target) as ctx:
        result = backfills.take_snapshot(ctx, model, tag, model_run_id, requested_by)
    render.snapshot(result, as_json)


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
    with library(project_dir, target) as ctx:
        result = backfills.lineage_of(ctx, model, partition)
    render.lineage(result, partition, as_json)


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
    with library(project_dir, target) as ctx:
        expired = backfills.maintain(ctx, keep_days, execute=execute, requested_by=requested_by)
    render.maintained(expired, execute, as_json)


@cli.command()
@click.argument("plan_id", required=False)
@click.option("--model", default=None, help="A calendar of the model's partitions instead.")
@click.option(
    "--html", "html", type=click.Path(path_type=Path), required=True, help="A new .html file."
)
@common
def report(
    plan_id: str | None,
    model: str | None,
    html: Path,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Write one self-contained HTML report of a backfill, or of a model's partitions.

    \b
    Example:
        backfill report bf_0123456789ab --html review.html
        backfill report --model fct_trips --html fct_trips.html
    """
    if (plan_id is None) == (model is None):
        raise click.UsageError("give a PLAN_ID or --model MODEL (one of them)")
    with library(project_dir, target) as ctx:
        result = backfills.write_report(ctx, html, plan_id=plan_id, model=model)
    render.reported(result, as_json)


@cli.command("sync")
@click.argument("model")
@requested_by
@common
def sync_command(
    model: str, requested_by: str | None, project_dir: Path, target: str | None, as_json: bool
) -> None:
    """Push the online-store syncs a publish or rollback left pending (store unreachable).

    \b
    Example:
        backfill sync fct_driver_daily_features
    """
    with library(project_dir, target) as ctx:
        result = backfills.sync_online(ctx, model, requested_by)
    render.synced(result, as_json)


@cli.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("looker"),
    show_default=True,
    help="Folder of the LookML project files.",
)
@click.option(
    "--connection", default="rideshare", show_default=True, help="Looker connection name."
)
@click.option("--check", "check_only", is_flag=True, help="Only check the files are current.")
@common
def looker(
    output: Path,
    connection: str,
    check_only: bool,
    project_dir: Path,
    target: str | None,
    as_json: bool,
) -> None:
    """Generate LookML views and explores from the dbt contracts of the Looker-facing models.

    One view per relation (each dim_drivers version and the latest view, the facts), typed
    from the contracts; --check fails when the files differ from the contracts.

    \b
    Example:
        backfill looker --output looker/
    """
    with library(project_dir, target) as ctx:
        files = backfills.generate_lookml(ctx, output, connection=connection, check_only=check_only)
    render.lookml(files, output, check_only, as_json)


@cli.command("demo")
@common
def demo_command(project_dir: Path, target: str | None, as_json: bool) -> None:
    """Build the demo warehouse end to end and walk one backfill through every gate.

    \b
    Example:
        backfill demo
    """
    from orchestrator.demo.walkthrough import run_demo

    with library(project_dir, target, creates_warehouse=True) as ctx:
        run_demo(ctx, echo=click.echo)


def main() -> None:
    cli(prog_name="backfill")
