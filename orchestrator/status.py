"""`status` and `history`: the audit store as people read it (read-only)."""

from __future__ import annotations

from typing import Any

from orchestrator import plan as planning
from orchestrator.context import Context
from orchestrator.lifecycle import Status
from orchestrator.lock import Locks
from orchestrator.planner import load_plan


def status(ctx: Context, backfill_id: str | None = None) -> list[dict[str, Any]]:
    """One backfill with its chunks, or the latest 20 backfills."""
    if backfill_id is None:
        return _interrupted(ctx, ctx.audit.plans.history(limit=20))
    plan = load_plan(ctx, backfill_id)
    current = ctx.audit.plans.current(plan.backfill_id) or {}
    states = ctx.audit.chunks.states(plan.backfill_id)
    chunks = []
    for c in plan.chunks:
        state = states.get((c.model, c.chunk_no))
        chunks.append(
            {
                **c.as_dict(),
                "state": state.state if state else "pending",
                "rows_before": state.rows_before if state else None,
                "rows_after": state.rows_after if state else None,
            }
        )
    row = {**current, "chunks": chunks, "fingerprint": plan.fingerprint, "impact": plan.impact}
    return _interrupted(ctx, [row])


def history(ctx: Context, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    if model is not None:
        planning.check_identifier(model)
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
