"""`backfill detect`: which partitions need a backfill, and why.

- stale: bronze holds rows for the partition in batches newer than the ones it was built
  from (late or re-delivered events);
- missing: bronze has events for a day the model has no partition for, inside its range;
- drifted: the partition was built by code other than today's (`Manifest.code_fingerprint`).

A model that reads bronze directly declares where (`meta.backfill.detect`). Its detect
reads only the bronze rows in batches above a cursor (what earlier detects examined,
kept with their findings in the audit store), maps each row to the partition its key
lives in, and compares the findings with the build ledger: cost grows with the new data,
not with history. A model downstream is stale on the days an upstream partition is
stale, or was rebuilt after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from orchestrator import plan as planning
from orchestrator.audit.ledger import Finding, LedgerEntry
from orchestrator.context import Context
from orchestrator.manifest import Model
from orchestrator.policy import DetectSource
from orchestrator.warehouse.base import quote_literal
from orchestrator.watermark import batch_day, source_watermark

KINDS = ("stale", "missing", "drifted")


@dataclass(frozen=True)
class Partition:
    model: str
    partition: date
    kind: str  # stale | missing | drifted
    evidence: str
    batches: tuple[str, ...] = ()
    rows: int = 0


@dataclass
class ModelReport:
    model: str
    partitions: list[Partition] = field(default_factory=list)
    examined_batches: tuple[str | None, str | None] = (None, None)  # (after, up to)
    bytes_scanned: int | None = None  # the new-rows query's dry-run bytes (BigQuery)
    ledger: dict[date, LedgerEntry] = field(default_factory=dict, repr=False)

    @property
    def ledger_partitions(self) -> int:
        return len(self.ledger)

    def days(self, *kinds: str) -> list[date]:
        wanted = kinds or KINDS
        return sorted({p.partition for p in self.partitions if p.kind in wanted})

    @property
    def summary(self) -> str:
        counts = {k: len({p.partition for p in self.partitions if p.kind == k}) for k in KINDS}
        if not self.ledger_partitions:
            return f"{self.model}: no build recorded in the ledger yet; run dbt or a backfill"
        if not any(counts.values()):
            return f"{self.model}: all {self.ledger_partitions} partitions are up to date"
        found = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        return f"{self.model}: {found} of {self.ledger_partitions} partitions"


def detect(ctx: Context, models: list[str] | None = None) -> list[ModelReport]:
    """Every named model (default: every backfillable one), upstream before downstream."""
    manifest = ctx.dbt.manifest()
    for name in models or []:
        planning.check_identifier(name)
        manifest.model(name).policy()  # an unknown or unbackfillable model is bad input
    order = _backfillable_in_dag_order(ctx)
    wanted = set(models) if models else {m.name for m in order}
    reports: dict[str, ModelReport] = {}
    ctx.audit.ensure()  # detect keeps what it examined (dbt may have made only the ledger)
    parents_of = {m.name: _backfillable_parents(ctx, m) for m in order}
    # A wanted model's staleness depends on what is upstream of it.
    needed = wanted | {p for name in wanted for p in parents_of[name]}
    for model in (m for m in order if m.name in needed):
        parents = [reports[p] for p in parents_of[model.name] if p in reports]
        reports[model.name] = _detect_model(ctx, model, parents)
    return [reports[m.name] for m in order if m.name in wanted]


def _detect_model(ctx: Context, model: Model, parents: list[ModelReport]) -> ModelReport:
    policy = model.policy()
    ledger = ctx.audit.ledger.latest(model.name)
    report = ModelReport(model.name, ledger=ledger)
    if not ledger:
        return report
    if policy.detect is not None:
        _examine_new_batches(ctx, model, policy.detect, ledger, report)
        report.partitions += _late(ctx.audit.ledger.findings(model.name), ledger, model.name)
    report.partitions += _below_stale_parents(model, ledger, parents)
    today_code = ctx.dbt.manifest().code_fingerprint(model.name)
    report.partitions += [
        Partition(
            model.name,
            day,
            "drifted",
            f"built by code {entry.code_fingerprint}, today's is {today_code}",
        )
        for day, entry in sorted(ledger.items())
        if entry.code_fingerprint != today_code
    ]
    report.partitions.sort(key=lambda p: (p.partition, KINDS.index(p.kind)))
    return report


def _examine_new_batches(
    ctx: Context,
    model: Model,
    source: DetectSource,
    ledger: dict[date, LedgerEntry],
    report: ModelReport,
) -> None:
    """Read the bronze rows in batches above the cursor, keep what they touch, move on."""
    wh, records = ctx.warehouse, ctx.audit.ledger
    watermarks = [e.watermark for e in ledger.values() if e.watermark]
    after = records.cursor(model.name) or (min(watermarks) if watermarks else None)
    upto = source_watermark(wh, source, at_least=after)
    report.examined_batches = (after, upto)
    if upto is None or after is None or upto <= after:
        if upto is not None and after is None:
            records.advance(model.name, upto, [])
        return
    new_rows = _new_rows(source, after, upto)
    bounds_sql = f"select min(d), max(d) from ({new_rows}) as new_rows"
    scanned = [wh.dry_run_bytes(bounds_sql)]
    low, high = wh.query(bounds_sql)[0]
    findings = []
    if low is not None:
        # A key's partition is at most spans_days before its earliest new row.
        lo = _date(low - timedelta(days=source.spans_days))
        main_sql = _partitions_sql(model, source, new_rows, lo, _date(high))
        scanned.append(wh.dry_run_bytes(main_sql))
        findings = [
            Finding(day, "late" if day in ledger else "missing", str(batch), int(rows))
            for day, batch, rows in wh.query(main_sql)
        ]
    if any(b is not None for b in scanned):
        report.bytes_scanned = sum(int(b or 0) for b in scanned)
    with wh.transaction():
        records.advance(model.name, upto, findings)


def _new_rows(source: DetectSource, after: str, upto: str) -> str:
    """The source rows of batches in (after, upto], pruned to their ingestion days."""
    since = batch_day(after)
    pruned = f" and {source.ingested} >= {_date(since)}" if since else ""
    return (
        f"select {source.key} as k, cast({source.event_time} as date) as d, "
        f"{source.batch} as b from {source.source} "
        f"where {source.batch} > {quote_literal(after)} "
        f"and {source.batch} <= {quote_literal(upto)}{pruned}"
    )


def _partitions_sql(model: Model, source: DetectSource, new_rows: str, lo: str, hi: str) -> str:
    """Per (partition, batch), the new rows: each key's rows go to the partition that holds
    the key already (read only in [lo, hi], so pruned), else to the day of its earliest new
    row."""
    pf, key = model.policy().partition_field, source.key
    return f"""
        with new_rows as ({new_rows}),
        new_keys as (select k, min(d) as first_day from new_rows group by k),
        known as (
            select m.{key} as k, max(m.{pf}) as p
            from {model.relation} as m
            where m.{pf} between {lo} and {hi}
              and m.{key} in (select k from new_keys)
            group by 1
        )
        select coalesce(known.p, new_keys.first_day) as partition_day, new_rows.b, count(*)
        from new_rows
        join new_keys on new_rows.k = new_keys.k
        left join known on new_rows.k = known.k
        group by 1, 2
        order by 1, 2
    """


def _late(findings: list[Finding], ledger: dict[date, LedgerEntry], model: str) -> list[Partition]:
    """Findings newer than the partition's build: stale; for a day the model lacks inside
    its range: missing. A day after the range is new data a regular run will build."""
    first, last = min(ledger), max(ledger)
    by_day: dict[date, list[Finding]] = {}
    for f in findings:
        entry = ledger.get(f.partition)
        if entry is not None and f.batch_id <= (entry.watermark or ""):
            continue  # built from this batch or a later one
        if entry is None and not first <= f.partition <= last:
            continue
        by_day.setdefault(f.partition, []).append(f)
    out = []
    for day, found in sorted(by_day.items()):
        batches = tuple(sorted({f.batch_id for f in found}))
        rows = sum(f.rows for f in found)
        entry = ledger.get(day)
        if entry is None or entry.rows == 0:
            evidence = f"{rows} bronze rows in batches {', '.join(batches)}; no partition built"
            out.append(Partition(model, day, "missing", evidence, batches, rows))
        else:
            evidence = (
                f"{rows} bronze rows in batches {', '.join(batches)}, newer than "
                f"{entry.watermark or 'an unknown batch'} it was built from"
            )
            out.append(Partition(model, day, "stale", evidence, batches, rows))
    return out


def _below_stale_parents(
    model: Model, ledger: dict[date, LedgerEntry], parents: list[ModelReport]
) -> list[Partition]:
    """A partition is stale where an upstream partition of the same day is stale or
    missing, or was rebuilt after it; missing where upstream has the day and it has not."""
    out: dict[date, Partition] = {}
    first, last = min(ledger), max(ledger)
    for parent in parents:
        for p in parent.partitions:
            if p.kind in ("stale", "missing") and first <= p.partition <= last:
                kind = "stale" if p.partition in ledger else "missing"
                evidence = f"upstream {parent.model} {p.partition} is {p.kind}"
                out.setdefault(p.partition, Partition(model.name, p.partition, kind, evidence))
        for day, entry in parent.ledger.items():
            mine = ledger.get(day)
            if day in out or not first <= day <= last:
                continue
            if mine is None:
                evidence = f"upstream {parent.model} has {day} ({entry.rows} rows), this has none"
                out[day] = Partition(model.name, day, "missing", evidence)
            elif entry.built_at > mine.built_at:
                evidence = (
                    f"upstream {parent.model} was rebuilt at {entry.built_at:%Y-%m-%d %H:%M:%S} "
                    f"({entry.writer} {entry.writer_id}), after this at "
                    f"{mine.built_at:%Y-%m-%d %H:%M:%S}"
                )
                out[day] = Partition(model.name, day, "stale", evidence)
    return list(out.values())


def _backfillable_in_dag_order(ctx: Context) -> list[Model]:
    manifest = ctx.dbt.manifest()
    roots = [manifest.model(n) for n in manifest.model_names() if _backfillable(manifest.model(n))]
    order: list[Model] = []
    for root in sorted(roots, key=lambda m: len(_ancestors(ctx, m))):
        if root not in order:
            order.append(root)
    return order


def _backfillable_parents(ctx: Context, model: Model) -> list[str]:
    """Backfillable models upstream of `model` (through views and ephemerals too)."""
    manifest, upstream = ctx.dbt.manifest(), _ancestors(ctx, model)
    return [
        manifest.model(n).name
        for n in manifest.model_names()
        if _backfillable(manifest.model(n)) and manifest.model(n).unique_id in upstream
    ]


def _ancestors(ctx: Context, model: Model) -> set[str]:
    manifest, seen, stack = ctx.dbt.manifest(), set(), list(model.parents)
    while stack:
        uid = stack.pop()
        if uid not in seen:
            seen.add(uid)
            stack.extend(manifest.nodes.get(uid, {}).get("depends_on", {}).get("nodes", []))
    return seen


def _backfillable(model: Model) -> bool:
    raw = model.meta.get("backfill")
    return model.is_incremental and isinstance(raw, dict) and raw.get("enabled", True) is not False


def _date(day: date) -> str:
    return f"cast({quote_literal(day.isoformat())} as date)"


def as_json(reports: list[ModelReport]) -> list[dict[str, Any]]:
    return [
        {
            "model": r.model,
            "summary": r.summary,
            "examined_batches": {"after": r.examined_batches[0], "up_to": r.examined_batches[1]},
            "bytes_scanned": r.bytes_scanned,
            "partitions": [
                {
                    "partition": p.partition.isoformat(),
                    "kind": p.kind,
                    "evidence": p.evidence,
                    "batches": list(p.batches),
                    "rows": p.rows,
                }
                for p in r.partitions
            ],
        }
        for r in reports
    ]
