"""`dry-run`: compile every chunk with the plan's vars, write the SQL, estimate the work.

Nothing in the models changes. On a warehouse that bills by bytes (BigQuery) each chunk's
SQL is also submitted as a dry-run job: bytes per chunk, in total, and the on-demand cost.
A model whose `meta.backfill.max_bytes` the plan exceeds is refused here, before approval.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from orchestrator.audit import PlanRecord
from orchestrator.context import Context
from orchestrator.errors import BadInput, WorkFailed
from orchestrator.lifecycle import Action, Status, require
from orchestrator.manifest import Manifest
from orchestrator.planner import current_fingerprint, load_plan

TIB = 2**40
DEFAULT_USD_PER_TIB = 6.25  # BigQuery on-demand price per TiB scanned (override per contract)


@dataclass
class DryRunReport:
    backfill_id: str
    fingerprint: str
    compiled_dir: str
    chunks: list[dict[str, Any]]
    # Where the warehouse bills by bytes scanned (BigQuery): the bytes every chunk's SQL
    # would process, and their on-demand cost at `usd_per_tib`; None elsewhere (DuckDB).
    bytes_processed: int | None = None
    usd_per_tib: float | None = None
    cost_usd: float | None = None

    @property
    def rows_to_replace(self) -> int:
        return sum(int(c["rows_to_replace"]) for c in self.chunks)

    @property
    def rows_read_estimate(self) -> int:
        return sum(int(c["rows_read_estimate"] or 0) for c in self.chunks)


def usd_per_tib() -> float:
    """`$BACKFILL_USD_PER_TIB`, the on-demand price used for dry-run cost (default 6.25)."""
    raw = os.environ.get("BACKFILL_USD_PER_TIB", "").strip()
    if not raw:
        return DEFAULT_USD_PER_TIB
    try:
        price = float(raw)
    except ValueError:
        price = -1.0
    if not price >= 0 or price == float("inf"):
        raise BadInput(f"BACKFILL_USD_PER_TIB must be a price in USD per TiB, got {raw!r}")
    return price


def dry_run(ctx: Context, backfill_id: str) -> DryRunReport:
    plan = load_plan(ctx, backfill_id)
    status = ctx.audit.plans.status(plan.backfill_id)
    require(Action.DRY_RUN, status, plan.backfill_id)
    price = usd_per_tib()
    fp, compiled = current_fingerprint(ctx, plan)
    out_dir = ctx.project_dir / "target" / "backfills" / plan.backfill_id
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = ctx.dbt.manifest()
    wh = ctx.warehouse
    chunks = []
    for chunk, compiled_chunk in zip(plan.chunks, compiled, strict=True):
        sql = compiled_chunk.sql
        model = manifest.model(chunk.model)
        path = out_dir / f"{chunk.model}__chunk_{chunk.chunk_no:03d}.sql"
        path.write_text(sql)
        rows = wh.partition_rows(
            model.relation, model.policy().partition_field, chunk.start, chunk.end
        )
        chunks.append(
            {
                **chunk.as_dict(),
                "rows_to_replace": sum(rows.values()),
                "rows_read_estimate": wh.estimate_rows_read(sql),
                "bytes_processed": wh.dry_run_bytes(sql),
                "compiled_sql": str(path.relative_to(ctx.project_dir)),
            }
        )
    report = DryRunReport(plan.backfill_id, fp, str(out_dir.relative_to(ctx.project_dir)), chunks)
    if any(c["bytes_processed"] is not None for c in chunks):
        report.bytes_processed = sum(int(c["bytes_processed"] or 0) for c in chunks)
        report.usd_per_tib = price
        report.cost_usd = round(report.bytes_processed / TIB * price, 4)
    plans = ctx.audit.plans
    if fp != plan.fingerprint:
        error = (
            f"plan {plan.backfill_id} is stale: the code changed since it was planned "
            f"(fingerprint {plan.fingerprint}, now {fp}); make a new plan"
        )
        plans.record_dry_run(plan.backfill_id, fp, False, chunks, report.compiled_dir, error)
        raise WorkFailed(error)
    over = _over_budget(plan, chunks, manifest)
    if over is not None:
        plans.record_dry_run(plan.backfill_id, fp, False, chunks, report.compiled_dir, over)
        raise BadInput(over)
    with ctx.warehouse.transaction():
        plans.record_dry_run(plan.backfill_id, fp, True, chunks, report.compiled_dir)
        if status is Status.PLANNED:
            plans.log(plan, Status.DRY_RUN_OK, dry_run=True)
    return report


def _over_budget(plan: PlanRecord, chunks: list[dict[str, Any]], manifest: Manifest) -> str | None:
    """The refusal when a model's chunks would process more than its `max_bytes`."""
    for name in dict.fromkeys(c["model"] for c in chunks):
        budget = manifest.model(name).policy().max_bytes
        scanned = [c["bytes_processed"] for c in chunks if c["model"] == name]
        if budget is None or all(b is None for b in scanned):
            continue
        total = sum(int(b or 0) for b in scanned)
        if total > budget:
            return (
                f"plan {plan.backfill_id} would process {_bytes(total)} ({total:,} bytes) for "
                f"{name}, over its meta.backfill.max_bytes of {_bytes(budget)} "
                f"({budget:,} bytes); narrow the range or raise max_bytes"
            )
    return None


def _bytes(count: int) -> str:
    """`1.5 GiB`-style size (binary units, as BigQuery bills)."""
    units, size, index = ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), float(count), 0
    while size >= 1024 and index < len(units) - 1:
        size, index = size / 1024, index + 1
    return f"{count} B" if index == 0 else f"{size:.1f} {units[index]}"
