"""`status` and `history`: the audit store as people read it (read-only)."""

from __future__ import annotations

from typing import Any

from orchestrator import plan as planning
from orchestrator.context import Context
from orchestrator.lifecycle import Status
from orchestrator.lock import Locks
from orchestrator.planner import load_plan


def status(ctx: Context, backfill_id: str | None = None) -> list[dict[str, Any]]:
    """One backfill with its reason, times, chunks (each with its outcome and the
    partitions it changed) and validation checks (failed first), or the latest 20."""
    if backfill_id is None:
        return _interrupted(ctx, ctx.audit.plans.history(limit=20))
    plan = load_plan(ctx, backfill_id)
    current = ctx.audit.plans.current(plan.backfill_id) or {}
    states = ctx.audit.chunks.states(plan.backfill_id)
    before = ctx.audit.chunks.partitions(plan.backfill_id, "before")
    after = ctx.audit.chunks.partitions(plan.backfill_id, "after")
    chunks = []
    for c in plan.chunks:
        state = states.get((c.model, c.chunk_no))
        changed = sorted(
            day.isoformat()
            for (model, day), now in after.items()
            if model == c.model and c.start <= day <= c.end and before.get((model, day)) != now
        )
        chunks.append(
            {
                **c.as_dict(),
                "state": state.state if state else "pending",
                "rows_before": state.rows_before if state else None,
                "rows_after": state.rows_after if state else None,
                "changed_partitions": changed,
            }
        )
    started, completed = current.get("started_at"), current.get("completed_at")
    row = {
        **current,
        "category": plan.category,
        "duration_seconds": (completed - started).total_seconds()
        if started is not None and completed is not None
        else None,
        "chunks": chunks,
        "validation": ctx.audit.chunks.validation_results(plan.backfill_id),
        "fingerprint": plan.fingerprint,
        "impact": plan.impact,
    }
    return _interrupted(ctx, [row])


def history(ctx: Context, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    if model is not None:
        planning.check_identifier(model)
        ctx.dbt.manifest().model(model)  # an unknown model is bad input, not an empty list
    return _interrupted(ctx, ctx.audit.plans.history(model, limit))


def _interrupted(ctx: Context, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Show a `running` backfill whose process is gone as `interrupted`.

    Display only: the audit log keeps `running`; resuming the plan (`backfill run PLAN
    --execute`) continues it and `backfill rollback PLAN` undoes what it published.
    """
    locks = Locks(ctx.audit)
    for row in rows:
        if row.get("status") == Status.RUNNING and locks.is_interrupted(
            str(row["model"]), str(row["backfill_id"])
        ):
            row["status"] = str(Status.INTERRUPTED)
    return rows
