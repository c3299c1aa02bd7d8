"""The task bodies of detect_late_data: one library call each, outcomes to XCom."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from backfill_ops.steps import library, record

if TYPE_CHECKING:
    from airflow.sdk import Context as TaskContext

log = logging.getLogger(__name__)
# Who opens the plans: an automation identity, never an approver of them.
REQUESTER = "airflow-detect"


def detect(context: TaskContext) -> None:
    from orchestrator import backfills

    with library(context, None) as ctx:
        reports = backfills.detect(ctx)
    found: dict[str, Any] = {
        r.model: [d.isoformat() for d in r.days("stale", "missing")] for r in reports
    }
    for r in reports:
        log.info("%s", r.summary)
    context["ti"].xcom_push(key="found", value=found)
    record(context, None, {"status": "detected", "found": found})


def open_plans(context: TaskContext) -> None:
    """A dry-run plan per upstream-most model with findings; its downstream ride along."""
    from orchestrator import backfills

    found = context["ti"].xcom_pull(task_ids="detect", key="found") or {}
    opened: dict[str, str] = {}
    with library(context, None) as ctx:
        below = {m.name for name in found for m in ctx.dbt.manifest().downstream(name)}
        for model, days in found.items():
            if not days or model in below:  # replayed with the model above it
                continue
            plan = backfills.create_plan(
                ctx,
                model,
                downstream=True,
                reason=f"late data found by detect_late_data: {len(days)} partition(s)",
                requested_by=REQUESTER,
                category="late_data",
                detected=("stale", "missing"),
            )
            backfills.dry_run(ctx, plan.backfill_id)
            opened[model] = plan.backfill_id
    record(context, next(iter(opened.values()), None), {"status": "planned", "plans": opened})
