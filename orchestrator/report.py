"""`report`: a backfill, or a model's partitions, as one self-contained HTML file.

Two steps, kept apart so each can be tested and reused: `backfill_report` and
`model_report` read the audit store (and the warehouse, through its protocol) into plain
frozen data; `render_html` turns that data into one HTML page with the Jinja2 templates in
`orchestrator/templates/`. The page has inline CSS and server-drawn SVG, no script and no
URL it would load, so it opens offline and can be attached to a review as it is.

Nothing here writes to the warehouse: a report is read-only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.audit import utcnow
from orchestrator.context import Context
from orchestrator.errors import BadInput
from orchestrator.plan import check_identifier, check_plan_id
from orchestrator.planner import load_plan
from orchestrator.status import status as current_status

# A partition's outcome in a backfill; the value is its stable CSS class suffix.
CHANGED = "changed"  # published, and its rows or checksum differ from before
UNCHANGED = "unchanged"  # published with exactly the rows it had
FAILED_VALIDATION = "failed-validation"  # its chunk was refused by validation
ROLLED_BACK = "rolled-back"  # published, then restored by a rollback
NOT_RUN = "not-run"  # its chunk never reached publish (pending, interrupted, dbt error)
OUTCOMES = (CHANGED, UNCHANGED, FAILED_VALIDATION, ROLLED_BACK, NOT_RUN)
OUTCOME_LABELS = {
    CHANGED: "changed",
    UNCHANGED: "unchanged",
    FAILED_VALIDATION: "failed validation",
    ROLLED_BACK: "rolled back",
    NOT_RUN: "not run",
}

# The step a chunk state closes: its time is the gap since the chunk's previous state.
STEPS = ("backup", "stage", "validate", "publish")
_STEP_OF_STATE = {
    "backed_up": "backup",
    "staged": "stage",
    "validated": "validate",
    "failed_validation": "validate",
    "publishing": "publish",
    "published": "publish",
}
_IN_FLIGHT = frozenset({"started", "backed_up", "staged", "validated", "publishing"})

# The model calendar: where a partition's content comes from.
DBT_BUILD = "v0"  # no version replaced it: as dbt built it
NO_PARTITION = "none"  # no rows and no version: a gap
_FIRST_DAY, _LAST_DAY = date(1900, 1, 1), date(9999, 12, 31)
EMPTY = "\u2013"  # an en dash: no value


# -- the data of a backfill report ------------------------------------------------------
@dataclass(frozen=True)
class PartitionOutcome:
    """One day partition of one model the plan covers, and what the backfill did to it."""

    model: str
    day: date
    chunk_no: int
    chunk_state: str  # the chunk's latest recorded state, or "pending"
    outcome: str  # one of OUTCOMES
    rows_before: int | None  # None where nothing was measured
    rows_after: int | None  # None unless published
    checksum_before: str | None = None
    checksum_after: str | None = None
    rows_at_plan_time: bool = False  # rows_before comes from the plan, not a backup

    @property
    def rows_delta(self) -> int | None:
        if self.rows_before is None or self.rows_after is None:
            return None
        return self.rows_after - self.rows_before


@dataclass(frozen=True)
class CheckResult:
    """One check of one chunk's latest validation."""

    model: str
    chunk_no: int
    check: str
    partition: str
    observed: str
    expected: str
    passed: bool


@dataclass(frozen=True)
class ChunkTiming:
    """Seconds per step of one chunk, from the gaps between its recorded states."""

    model: str
    chunk_no: int
    start: date
    end: date
    state: str
    steps: Mapping[str, float]
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None = None

    @property
    def total(self) -> float:
        return sum(self.steps.values())


@dataclass(frozen=True)
class Approval:
    approver: str
    approved_at: datetime
    comment: str
    fingerprint: str
    current: bool  # bound to the plan's fingerprint


@dataclass(frozen=True)
class DryRun:
    ok: bool
    created_at: datetime
    fingerprint: str
    rows_read: int | None
    bytes_processed: int | None
    error: str | None


@dataclass(frozen=True)
class StatusEvent:
    event_no: int
    status: str
    recorded_at: datetime
    error: str | None


@dataclass(frozen=True)
class LineageInput:
    relation: str
    range: str | None  # "start..end" when the backfill range filtered it


@dataclass(frozen=True)
class LineageEntry:
    """What produced one published chunk: the inputs, the code and the dbt invocation."""

    output_relation: str
    start: date
    end: date
    inputs: tuple[LineageInput, ...]
    git_commit: str
    config_hash: str
    invocation_id: str
    produced_at: datetime


@dataclass(frozen=True)
class VersionEntry:
    version_id: str
    version_no: int
    kind: str
    created_at: datetime


@dataclass(frozen=True)
class DiffRow:
    """One sample row of a row-level diff: `before` for removed and changed rows, `after`
    for added and changed ones; values in `RowDiff.columns` order."""

    kind: str  # added | removed | changed
    before: tuple[Any, ...] | None = None
    after: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class RowDiff:
    """A row-level diff of the staged rows against production by unique key (a preview),
    with per-column counts and sample rows. Optional: a report renders it when given."""

    added: int
    removed: int
    changed: int
    unchanged: int | None = None
    changed_by_column: Mapping[str, int] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    samples: tuple[DiffRow, ...] = ()


@dataclass(frozen=True)
class ReportData:
    """Everything one backfill's report shows, read from the audit store."""

    backfill_id: str
    model: str
    start: date
    end: date
    status: str
    reason: str
    requested_by: str
    created_at: datetime
    chunk_days: int
    downstream: bool
    fingerprint: str
    project_hash: str
    git_commit: str
    impact: Mapping[str, Any]
    approvals: tuple[Approval, ...]
    dry_runs: tuple[DryRun, ...]
    events: tuple[StatusEvent, ...]
    partitions: tuple[PartitionOutcome, ...]
    checks: tuple[CheckResult, ...]
    timings: tuple[ChunkTiming, ...]
    lineage: tuple[LineageEntry, ...]
    versions: tuple[VersionEntry, ...]
    generated_at: datetime
    rows_affected: int | None = None
    error: str | None = None
    category: str | None = None  # the plan's category, once plans carry one
    diff: RowDiff | None = None  # the row-level diff, once previews exist

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(p.model for p in self.partitions))

    def outcome_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for p in self.partitions:
            counts[p.outcome] += 1
        return counts


# -- the data of a model calendar ---------------------------------------------------------
@dataclass(frozen=True)
class Writer:
    """What last wrote some partitions: dbt's own build (version 0) or a dataset version."""

    key: str  # stable CSS class suffix: v0, v1, ... or none
    label: str
    version_no: int | None
    kind: str  # dbt | backfill | rollback | none
    backfill_id: str | None = None
    backfill_status: str | None = None
    created_at: datetime | None = None
    description: str = ""


@dataclass(frozen=True)
class CalendarDay:
    day: date
    rows: int
    writer: str  # a Writer.key


@dataclass(frozen=True)
class ModelCalendar:
    """A model's partitions, each with the version that last wrote it."""

    model: str
    relation: str
    partition_field: str
    days: tuple[CalendarDay, ...]
    writers: tuple[Writer, ...]
    generated_at: datetime
    stale: Mapping[date, str] | None = None  # day -> why, once detection reports it

    def writer_counts(self) -> dict[str, int]:
        counts = {w.key: 0 for w in self.writers}
        for d in self.days:
            counts[d.writer] = counts.get(d.writer, 0) + 1
        return counts


# -- reading ------------------------------------------------------------------------------
def backfill_report(ctx: Context, backfill_id: str) -> ReportData:
    """One backfill as its report shows it (read-only)."""
    plan = load_plan(ctx, backfill_id)
    audit = ctx.audit
    current = current_status(ctx, plan.backfill_id)[0]
    states = audit.chunks.states(plan.backfill_id)
    before = audit.chunks.partitions(plan.backfill_id, "before")
    after = audit.chunks.partitions(plan.backfill_id, "after")
    at_plan_time = {
        date.fromisoformat(day): int(rows)
        for day, rows in (plan.impact.get("rows_per_partition") or {}).items()
    }

    partitions = []
    for chunk in plan.chunks:
        state = states.get((chunk.model, chunk.chunk_no))
        reached = state.state if state else "pending"
        measured = reached not in ("pending", "started")  # its backup recorded `before`
        written = reached in ("published", "rolled_back")
        for day in _days(chunk.start, chunk.end):
            b, a = before.get((chunk.model, day)), after.get((chunk.model, day))
            planned = chunk.model == plan.model and not measured
            if measured:
                rows_before: int | None = b[0] if b else 0
            else:
                rows_before = at_plan_time.get(day, 0) if chunk.model == plan.model else None
            partitions.append(
                PartitionOutcome(
                    model=chunk.model,
                    day=day,
                    chunk_no=chunk.chunk_no,
                    chunk_state=reached,
                    outcome=_outcome(reached, b, a),
                    rows_before=rows_before,
                    rows_after=(a[0] if a else 0) if written else None,
                    checksum_before=b[1] if b else None,
                    checksum_after=a[1] if a else None,
                    rows_at_plan_time=planned,
                )
            )

    return ReportData(
        backfill_id=plan.backfill_id,
        model=plan.model,
        start=plan.start,
        end=plan.end,
        status=str(current.get("status") or "planned"),
        reason=plan.reason,
        requested_by=plan.requested_by,
        created_at=plan.created_at,
        chunk_days=plan.chunk_days,
        downstream=plan.downstream,
        fingerprint=plan.fingerprint,
        project_hash=plan.project_hash,
        git_commit=plan.git_commit,
        impact=plan.impact,
        approvals=tuple(
            Approval(
                approver=str(a["approver"]),
                approved_at=a["approved_at"],
                comment=str(a["comment"] or ""),
                fingerprint=str(a["fingerprint"]),
                current=a["fingerprint"] == plan.fingerprint,
            )
            for a in audit.plans.approvals(plan.backfill_id)
        ),
        dry_runs=tuple(_dry_run(d) for d in audit.plans.dry_runs(plan.backfill_id)),
        events=tuple(
            StatusEvent(int(e["event_no"]), str(e["status"]), e["recorded_at"], e["error"])
            for e in audit.plans.events(plan.backfill_id)
        ),
        partitions=tuple(partitions),
        checks=tuple(
            CheckResult(
                model=str(c["model"]),
                chunk_no=int(c["chunk_no"]),
                check=str(c["check"]),
                partition=str(c["partition"] or ""),
                observed=str(c["observed"] or ""),
                expected=str(c["expected"] or ""),
                passed=bool(c["passed"]),
            )
            for c in sorted(  # per chunk, by check (the page puts each chunk's failures first)
                audit.chunks.validation_results(plan.backfill_id),
                key=lambda c: (c["model"], c["chunk_no"], c["check"], c["partition"]),
            )
        ),
        timings=_timings(audit.chunks.events(plan.backfill_id)),
        lineage=tuple(_lineage(row) for row in audit.lineage.of_backfill(plan.backfill_id)),
        versions=tuple(
            VersionEntry(
                str(v["version_id"]), int(v["version_no"]), str(v["kind"]), v["created_at"]
            )
            for v in audit.versions.created_by(plan.backfill_id)
        ),
        generated_at=utcnow(),
        rows_affected=current.get("rows_affected"),
        error=current.get("error"),
        category=getattr(plan, "category", None),
    )


def model_report(
    ctx: Context, model_name: str, stale: Mapping[date, str] | None = None
) -> ModelCalendar:
    """Every partition of a backfillable model with the version that last wrote it
    (read-only). `stale` marks days a detection found out of date."""
    check_identifier(model_name)
    model = ctx.dbt.manifest().model(model_name)
    field_name = model.policy().partition_field
    wh = ctx.warehouse
    if not wh.relation_exists(model.relation):
        raise BadInput(f"{model.relation} does not exist yet; build it first with `dbt run`")
    rows = wh.partition_rows(model.relation, field_name, _FIRST_DAY, _LAST_DAY)
    last = {r["partition_date"]: r for r in ctx.audit.versions.last_writers(model.name)}
    statuses = ctx.audit.plans.statuses() if last else {}

    writers = [Writer(DBT_BUILD, "dbt build (no backfill)", 0, "dbt")]
    for v in ctx.audit.versions.list_versions(model.name):
        backfill_id = str(v["created_by_backfill"] or "") or None
        by = f" {backfill_id}" if backfill_id else ""
        writers.append(
            Writer(
                key=f"v{int(v['version_no'])}",
                label=f"{v['version_id']} ({v['kind']}{by})",
                version_no=int(v["version_no"]),
                kind=str(v["kind"]),
                backfill_id=backfill_id,
                backfill_status=statuses.get(backfill_id or ""),
                created_at=v["created_at"],
                description=str(v["description"] or ""),
            )
        )
    days = []
    if rows or last:
        for day in _days(min([*rows, *last]), max([*rows, *last])):
            writer = last.get(day)
            key = f"v{int(writer['version_no'])}" if writer else DBT_BUILD
            if writer is None and day not in rows:
                key = NO_PARTITION
            days.append(CalendarDay(day, rows.get(day, 0), key))
    if any(d.writer == NO_PARTITION for d in days):
        writers.append(Writer(NO_PARTITION, "no partition", None, "none"))
    return ModelCalendar(
        model=model.name,
        relation=model.relation,
        partition_field=field_name,
        days=tuple(days),
        writers=tuple(writers),
        generated_at=utcnow(),
        stale=stale,
    )


def _outcome(reached: str, before: tuple[int, str] | None, after: tuple[int, str] | None) -> str:
    if reached == "failed_validation":
        return FAILED_VALIDATION
    if reached == "rolled_back":
        return ROLLED_BACK
    if reached == "published":
        return UNCHANGED if before == after else CHANGED
    return NOT_RUN


def _timings(events: Sequence[Mapping[str, Any]]) -> tuple[ChunkTiming, ...]:
    by_chunk: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for e in events:
        by_chunk.setdefault((str(e["model"]), int(e["chunk_no"])), []).append(e)
    out = []
    for (model, chunk_no), rows in by_chunk.items():
        steps = dict.fromkeys(STEPS, 0.0)
        previous: Mapping[str, Any] | None = None
        for row in rows:
            step = _STEP_OF_STATE.get(str(row["state"]))
            if step and previous is not None and previous["state"] in _IN_FLIGHT:
                steps[step] += (row["updated_at"] - previous["updated_at"]).total_seconds()
            previous = row
        work = [r for r in rows if r["state"] != "rolled_back"]
        last = rows[-1]
        out.append(
            ChunkTiming(
                model=model,
                chunk_no=chunk_no,
                start=last["start_date"],
                end=last["end_date"],
                state=str(last["state"]),
                steps=steps,
                started_at=work[0]["updated_at"] if work else None,
                finished_at=work[-1]["updated_at"] if work else None,
                attempts=sum(1 for r in rows if r["state"] == "started"),
                error=last["error"],
            )
        )
    return tuple(out)


def _dry_run(row: Mapping[str, Any]) -> DryRun:
    chunks = row["estimates"] if isinstance(row["estimates"], list) else []
    rows_read = [c.get("rows_read_estimate") for c in chunks if isinstance(c, dict)]
    scanned = [c.get("bytes_processed") for c in chunks if isinstance(c, dict)]
    return DryRun(
        ok=bool(row["ok"]),
        created_at=row["created_at"],
        fingerprint=str(row["fingerprint"]),
        rows_read=sum(int(r) for r in rows_read if r is not None) if rows_read else None,
        bytes_processed=(
            sum(int(b) for b in scanned if b is not None)
            if any(b is not None for b in scanned)
            else None
        ),
        error=row["error"],
    )


def _lineage(row: Mapping[str, Any]) -> LineageEntry:
    inputs = []
    for i in row["input_relations"]:
        scope = i.get("range")
        inputs.append(
            LineageInput(str(i["relation"]), f"{scope[0]}..{scope[1]}" if scope else None)
        )
    return LineageEntry(
        output_relation=str(row["output_relation"]),
        start=row["partition_start"],
        end=row["partition_end"],
        inputs=tuple(inputs),
        git_commit=str(row["git_commit"]),
        config_hash=str(row["config_hash"]),
        invocation_id=str(row["dbt_invocation_id"] or ""),
        produced_at=row["produced_at"],
    )


def _days(start: date, end: date) -> Iterable[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


# -- writing ------------------------------------------------------------------------------
def check_report_path(output: Path) -> Path:
    """Where a report may be written: a new .html file in an existing directory."""
    if output.suffix != ".html":
        raise BadInput(f"output {str(output)!r} must be a .html file")
    if ".." in output.parts:
        raise BadInput(f"output {str(output)!r} must not contain '..'")
    if output.exists() or output.is_symlink():
        raise BadInput(f"output {str(output)!r} already exists; choose a new file")
    if not output.parent.is_dir():
        raise BadInput(f"output directory {str(output.parent)!r} does not exist")
    return output


def write_report(
    ctx: Context, output: Path, *, plan_id: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """`backfill report PLAN_ID --html FILE` or `backfill report --model MODEL --html FILE`:
    write one self-contained HTML file; returns what was written."""
    if (plan_id is None) == (model is None):
        raise BadInput("give either a plan id or --model MODEL")
    if plan_id is not None:
        check_plan_id(plan_id)
    else:
        check_identifier(model or "")
    path = check_report_path(output)
    data: ReportData | ModelCalendar
    if plan_id is not None:
        data = backfill_report(ctx, plan_id)
        summary: dict[str, Any] = {"report": "backfill", "backfill_id": data.backfill_id}
        summary["partitions"] = len(data.partitions)
    else:
        data = model_report(ctx, model or "")
        summary = {"report": "model", "model": data.model, "partitions": len(data.days)}
    page = render_html(data)
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(page)
    except FileExistsError:
        raise BadInput(f"output {str(path)!r} already exists; choose a new file") from None
    return {**summary, "output": str(path), "bytes": len(page.encode())}


# -- rendering ----------------------------------------------------------------------------
# Writer colours of the model calendar, in version order (then repeated); dbt's own build
# and gaps have fixed ones. Distinguishable with the common colour-vision deficiencies.
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#b07aa1",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#3b3b98",
)
_FIXED_COLOURS = {DBT_BUILD: "#d9e2ec", NO_PARTITION: "#ffffff"}


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=_num,
        when=_when,
        secs=_secs,
        short=lambda value, n=12: str(value or "")[:n],
        signed=lambda value: "" if value is None else f"{value:+,}",
    )
    return env


def render_html(data: ReportData | ModelCalendar) -> str:
    """The report as one HTML page: inline CSS and SVG, no script, nothing to download."""
    env = _environment()
    if isinstance(data, ReportData):
        return env.get_template("backfill_report.html").render(
            r=data,
            generated_at=data.generated_at,
            labels=OUTCOME_LABELS,
            outcomes=OUTCOMES,
            counts=data.outcome_counts(),
            models=[
                {
                    "name": name,
                    "months": _months({p.day: p for p in data.partitions if p.model == name}),
                    "chart": _chart([p for p in data.partitions if p.model == name]),
                }
                for name in data.models
            ],
            totals=_totals(data),
            checks=_checks_view(data),
            steps=STEPS,
            longest=max((t.total for t in data.timings), default=0.0),
        )
    colours = {}
    versions = 0
    for w in data.writers:
        if w.key in _FIXED_COLOURS:
            colours[w.key] = _FIXED_COLOURS[w.key]
        else:
            colours[w.key] = _PALETTE[versions % len(_PALETTE)]
            versions += 1
    return env.get_template("model_calendar.html").render(
        c=data,
        generated_at=data.generated_at,
        months=_months({d.day: d for d in data.days}),
        colours=colours,
        text_colours={k: _text_on(v) for k, v in colours.items()},
        counts=data.writer_counts(),
        stale=data.stale or {},
    )


def _totals(data: ReportData) -> dict[str, Any]:
    """The headline numbers: rows before and after where both were measured."""
    measured = [
        p for p in data.partitions if p.rows_before is not None and p.rows_after is not None
    ]
    before = sum(p.rows_before or 0 for p in measured)
    after = sum(p.rows_after or 0 for p in measured)
    failed = sum(1 for c in data.checks if not c.passed)
    return {
        "rows_before": before if measured else None,
        "rows_after": after if measured else None,
        "rows_delta": after - before if measured else None,
        "checks": len(data.checks),
        "checks_failed": failed,
        "seconds": sum(t.total for t in data.timings),
        "chunks": len({(p.model, p.chunk_no) for p in data.partitions}),
    }


def _checks_view(data: ReportData) -> list[dict[str, Any]]:
    """Checks grouped per chunk (with the chunk's days), failures first within each."""
    groups: dict[tuple[str, int], list[CheckResult]] = {}
    for c in data.checks:
        groups.setdefault((c.model, c.chunk_no), []).append(c)
    spans: dict[tuple[str, int], list[date]] = {}
    for p in data.partitions:
        spans.setdefault((p.model, p.chunk_no), []).append(p.day)
    return [
        {
            "model": model,
            "chunk_no": chunk_no,
            "days": spans.get((model, chunk_no), []),
            "checks": sorted(rows, key=lambda c: (c.passed, c.check, c.partition)),
            "failed": sum(1 for c in rows if not c.passed),
        }
        for (model, chunk_no), rows in groups.items()
    ]


def _months(by_day: Mapping[date, Any]) -> list[dict[str, Any]]:
    """Calendar months (weeks from Monday) covering the days; a day outside `by_day` is
    shown greyed, the blank before a month's first day is None."""
    if not by_day:
        return []
    first, last = min(by_day), max(by_day)
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        start = date(year, month, 1)
        nxt = date(year + month // 12, month % 12 + 1, 1)
        cells: list[dict[str, Any] | None] = [None] * start.weekday()
        for day in _days(start, nxt - timedelta(days=1)):
            cells.append({"day": day, "item": by_day.get(day)})
        cells += [None] * (-len(cells) % 7)
        months.append(
            {
                "title": start.strftime("%B %Y"),
                "weeks": [cells[i : i + 7] for i in range(0, len(cells), 7)],
            }
        )
        year, month = nxt.year, nxt.month
    return months


def _chart(partitions: Sequence[PartitionOutcome]) -> dict[str, Any]:
    """An SVG bar chart, geometry computed here: per partition a bar of rows before and,
    where published, a bar of rows after."""
    width, height = 1100.0, 260.0
    left, right, top, bottom = 64.0, 16.0, 14.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(partitions), 1)
    peak = max([p.rows_before or 0 for p in partitions] + [p.rows_after or 0 for p in partitions])
    step = _nice_step(peak)
    top_value = max(step * math.ceil(peak / step), step)
    slot = plot_w / n
    bar = min(slot * 0.36, 22.0)

    def y(value: int) -> float:
        return top + plot_h - plot_h * value / top_value

    groups = []
    for i, p in enumerate(partitions):
        centre = left + slot * (i + 0.5)
        rects = []
        if p.rows_before is not None:
            rects.append(
                {"cls": "bar-before", "x": centre - bar - 0.5, "w": bar,
                 "y": y(p.rows_before), "h": top + plot_h - y(p.rows_before)}
            )  # fmt: skip
        if p.rows_after is not None:
            rects.append(
                {"cls": f"bar-after outcome-{p.outcome}", "x": centre + 0.5, "w": bar,
                 "y": y(p.rows_after), "h": top + plot_h - y(p.rows_after)}
            )  # fmt: skip
        groups.append({"p": p, "rects": rects, "x": centre - slot / 2, "w": slot})
    every = max(1, math.ceil(n / 16))
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "top": top,
        "base": top + plot_h,
        "groups": groups,
        "yticks": [{"y": y(v), "label": _num(v)} for v in range(0, int(top_value) + 1, int(step))],
        "xlabels": [
            {"x": left + slot * (i + 0.5), "label": p.day.strftime("%b %d")}
            for i, p in enumerate(partitions)
            if i % every == 0
        ],
    }


def _nice_step(peak: float) -> int:
    """A round tick step giving about four ticks up to `peak`."""
    if peak <= 4:
        return 1
    raw = peak / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return max(1, int(factor * magnitude))
    return int(10 * magnitude)


def _text_on(hex_colour: str) -> str:
    """Dark or white text, whichever reads better on the colour."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#102a43" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"


def _num(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _when(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _secs(value: float | None) -> str:
    if value is None:
        return EMPTY
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"
