"""Human output: every table and line the CLI prints, and JSON. No rules, no SQL."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from orchestrator.audit import PlanRecord
    from orchestrator.backfills import (
        DryRunReport,
        ModelReport,
        ProgressCallback,
        Review,
        RollbackReport,
        RunReport,
        StepCallback,
    )
    from orchestrator.demo.deliveries import Delivery
    from orchestrator.demo.generate import GenerateResult
    from orchestrator.maintain import Expiry
    from orchestrator.plan import Chunk


def as_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=_default))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# -- one layout per command ---------------------------------------------------------------
def generated(result: GenerateResult, as_json_: bool) -> None:
    if as_json_:
        return as_json(asdict(result))
    click.echo(
        f"bronze: {result.trip_events:,} trip events, {result.drivers:,} driver records, "
        f"{result.riders:,} riders for {result.start_date}..{result.end_date} "
        f"({result.late_events:,} late, {result.duplicate_events:,} duplicates) "
        f"in {result.seconds:.1f}s"
    )


def lookml(files: list[str], output_dir: Path, check_only: bool, as_json_: bool) -> None:
    if as_json_:
        return as_json({"output": str(output_dir), "files": files, "check": check_only})
    if check_only:
        click.echo(f"{output_dir} matches the dbt contracts")
        return None
    for name in files:
        click.echo(f"wrote {output_dir / name}")
    click.echo(f"{len(files)} LookML files in {output_dir}, generated from the dbt contracts")
    return None


def plan(record: PlanRecord, as_json_: bool) -> None:
    if as_json_:
        return as_json(asdict(record))
    impact = record.impact
    click.echo(
        f"plan {record.backfill_id}: {record.model} {record.start}..{record.end} "
        f"({impact['partitions']} partitions, {len(record.chunks)} chunks)"
    )
    click.echo(
        f"requested by {record.requested_by}; category {record.category}; fingerprint "
        f"{record.fingerprint}; rows now {impact['rows_now']:,}; critical: {impact['critical']}"
    )
    table(
        ["chunk", "model", "start", "end"],
        [[c.chunk_no, c.model, c.start.isoformat(), c.end.isoformat()] for c in record.chunks],
    )
    for item in impact["downstream"]:
        click.echo(f"downstream: {item['model']} ({item['action']})")
    for exposure in impact["exposures"]:
        click.echo(f"exposure: {exposure}")
    for warning in impact.get("warnings", []):
        click.echo(f"warning: {warning}")
    click.echo(f"next: backfill dry-run {record.backfill_id}")


def detected(reports: list[ModelReport], as_json_: bool) -> None:
    if as_json_:
        from orchestrator.detect import as_json as detect_json

        return as_json(detect_json(reports))
    for report in reports:
        click.echo(report.summary)
        if report.partitions:
            table(
                ["partition", "kind", "evidence"],
                [[p.partition, p.kind, p.evidence] for p in report.partitions],
            )
    stale = [r.model for r in reports if r.days("stale", "missing")]
    if stale:
        click.echo(f"next: backfill plan {stale[0]} --stale --missing --downstream")
    return None


def reviewed(result: Review, as_json_: bool) -> None:
    if as_json_:
        return as_json(asdict(result))
    click.echo(f"backfills since {result.since:%Y-%m-%d %H:%M} UTC")
    table(
        [
            "model",
            "category",
            "outcome",
            "backfills",
            "partitions",
            "changed",
            "rows changed",
            "time (s)",
            "failed checks",
            "rollbacks",
        ],
        [
            [
                g.model,
                g.category,
                g.outcome,
                g.backfills,
                g.partitions,
                g.partitions_changed,
                g.rows_changed,
                f"{g.seconds:.1f}",
                g.failed_checks,
                g.rollbacks,
            ]
            for g in result.groups
        ],
    )
    for item in result.repeated:
        click.echo(
            f"backfilled {len(item['backfills'])} times: {item['model']} {item['partition']} "
            f"({', '.join(item['backfills'])})"
        )
    return None


def reported(result: dict[str, Any], as_json_: bool) -> None:
    if as_json_:
        return as_json(result)
    click.echo(f"wrote {result['output']} ({result['partitions']} partitions)")
    return None


def delivered(result: Delivery, as_json_: bool) -> None:
    if as_json_:
        return as_json(asdict(result))
    days = ", ".join(d.isoformat() for d in result.days)
    click.echo(
        f"delivered batch {result.batch_id} ({result.kind}): {result.trips} trips, "
        f"{result.events} events for {days}"
    )
    return None


def dry_run(report: DryRunReport, as_json_: bool) -> None:
    if as_json_:
        return as_json(asdict(report))
    billed = report.bytes_processed is not None
    headers = ["chunk", "model", "start", "end", "rows to replace", "rows read (est.)"]
    headers += ["bytes processed"] if billed else []
    table(
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


def approved(result: dict[str, Any], as_json_: bool) -> None:
    if as_json_:
        return as_json(result)
    click.echo(
        f"plan {result['backfill_id']} approved by {result['approver']} "
        f"(fingerprint {result['fingerprint']}); next: backfill run {result['backfill_id']} "
        "--execute"
    )


def ran(report: RunReport, as_json_: bool) -> None:
    if as_json_:
        return as_json(asdict(report))
    click.echo(
        f"backfill {report.backfill_id} {report.status}: {len(report.chunks_run)} chunks "
        f"run, {report.chunks_skipped} already done, {report.rows_after:,} rows written "
        f"in {report.seconds:.1f}s"
    )


@dataclass
class Progress:
    """What the run reports as it goes: chunks done, and each chunk's steps as they end."""

    on_progress: ProgressCallback | None = None
    on_step: StepCallback | None = None


@contextmanager
def progress(disabled: bool) -> Iterator[Progress]:
    """On a terminal, a bar on stderr naming the model, the chunk's range and the step that
    just ended (with rows, elapsed, ETA); without one (a scheduler's log), one line per
    chunk step with its duration."""
    if disabled:
        yield Progress()
        return
    if not sys.stderr.isatty():
        yield Progress(on_step=_log_step)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as Bar,
    )

    bar = Bar(
        TextColumn("{task.fields[where]}"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("backfill", total=None, rows=0, where="chunk")

    def on_progress(done: int, total: int, rows: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total, rows=rows)

    def on_step(chunk: Chunk, index: int, total: int, step: str, seconds: float) -> None:
        where = f"{chunk.model} {chunk.start}..{chunk.end} · {step} done"
        bar.update(task, where=where)

    try:
        yield Progress(on_progress, on_step)
    finally:
        if bar.live.is_started:
            bar.stop()


def _log_step(chunk: Chunk, index: int, total: int, step: str, seconds: float) -> None:
    click.echo(
        f"{chunk.model} chunk {index}/{total} {chunk.start}..{chunk.end}: {step} {seconds:.2f}s",
        err=True,
    )


def status(plan_id: str | None, rows: list[dict[str, Any]], as_json_: bool) -> None:
    if as_json_:
        return as_json(rows if plan_id is None else rows[0])
    if plan_id is None:
        return history(rows, False)
    current = rows[0]
    click.echo(
        f"backfill {plan_id}: {current.get('model')} {current.get('start_date')}.."
        f"{current.get('end_date')} status {current.get('status')}; requested by "
        f"{current.get('requested_by')}, approved by {current.get('approved_by') or '-'}"
    )
    click.echo(f"reason: {current.get('reason') or '-'} (category {current.get('category')})")
    duration = current.get("duration_seconds")
    click.echo(
        f"started {_text(current.get('started_at'))} UTC, ended "
        f"{_text(current.get('completed_at'))} UTC"
        + (f", {duration:.1f}s" if duration is not None else "")
    )
    if current.get("error"):
        click.echo(f"error: {current['error']}")
    table(
        ["chunk", "model", "start", "end", "state", "rows before", "rows after", "changed"],
        [
            [
                c["chunk_no"],
                c["model"],
                c["start"],
                c["end"],
                c["state"],
                c["rows_before"],
                c["rows_after"],
                ", ".join(c["changed_partitions"]) or "-",
            ]
            for c in current["chunks"]
        ],
    )
    checks = current.get("validation") or []
    if checks:
        failed = sum(1 for c in checks if not c["passed"])
        click.echo(f"validation: {len(checks)} checks, {failed} failed")
        table(
            ["chunk", "check", "partition", "observed", "expected", "result"],
            [
                [
                    f"{c['model']} {c['chunk_no']}",
                    c["check"],
                    c["partition"],
                    c["observed"],
                    c["expected"],
                    "passed" if c["passed"] else "FAILED",
                ]
                for c in checks
            ],
        )
    return None


def history(rows: list[dict[str, Any]], as_json_: bool) -> None:
    if as_json_:
        return as_json(rows)
    table(
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


def unlocked(result: dict[str, Any], as_json_: bool) -> None:
    if as_json_:
        return as_json(result)
    click.echo(f"cleared the lock on {result['model']} held by backfill {result['backfill_id']}")


def rolled_back(report: RollbackReport, as_json_: bool) -> None:
    if as_json_:
        return as_json(asdict(report))
    table(
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
    count = len(report.partitions)
    if report.executed:
        forced = " (forced over changed partitions)" if report.conflicts else ""
        click.echo(f"rolled back {report.backfill_id}: {count} partitions restored{forced}")
    else:
        click.echo(f"(dry run: add --execute to restore these {count} partitions)")


def versions(rows: list[dict[str, Any]], as_json_: bool) -> None:
    if as_json_:
        return as_json(rows)
    table(
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


def exported(result: dict[str, Any], as_json_: bool) -> None:
    if as_json_:
        return as_json(result)
    click.echo(
        f"wrote {result['rows']:,} rows of {result['model']} version {result['version']} "
        f"to {result['output']}"
    )


def snapshot(result: dict[str, Any], as_json_: bool) -> None:
    if as_json_:
        return as_json(result)
    click.echo(
        f"snapshot {result['relation']}: {result['rows']:,} rows at version "
        f"{result['version']} (checksum {result['checksum']})"
    )


def lineage(result: dict[str, Any], partition: str | None, as_json_: bool) -> None:
    rows = result["rows"]
    if as_json_:
        return as_json(rows)
    if not rows:
        click.echo(
            f"no backfill has written {result['relation']}"
            + (f" partition {partition}" if partition else "")
            + "; it is as dbt built it"
        )
        return None
    table(
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
    return None


def synced(result: dict[str, Any], as_json_: bool) -> None:
    if as_json_:
        return as_json(result)
    syncs = result["syncs"]
    if not syncs:
        click.echo(f"{result['model']}: no online sync is pending; nothing was written")
        return None
    table(
        ["version", "kind", "partitions", "status", "upserted", "deleted", "unchanged"],
        [
            [
                s["version_id"],
                s["kind"],
                f"{s['partitions'][0]}..{s['partitions'][-1]}" if s["partitions"] else "-",
                s["status"],
                s["keys_upserted"],
                s["keys_deleted"],
                s["keys_unchanged"],
            ]
            for s in syncs
        ],
    )
    click.echo(f"{result['model']}: {result['synced']} online sync(s) done")
    return None


def maintained(expired: list[Expiry], executed: bool, as_json_: bool) -> None:
    if as_json_:
        return as_json([asdict(e) for e in expired])
    verb = "removed" if executed else "would remove"
    for item in expired:
        click.echo(f"{verb} {item.relation}: {item.reason}")
    click.echo(f"{verb} {len(expired)} relation(s)" + ("" if executed else "; add --execute"))


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "__dict__"):
        return vars(value)
    return str(value)
