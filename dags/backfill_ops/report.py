"""The last task: say how the backfill ended, and make the DAG run's state say it too.

Airflow sets a run's state from its last task alone, so `report` (which runs whatever
happened before it) fails when the backfill did not get where this run asked it to go:
`dry_run_ok` for a dry run, `succeeded` (or a rejection by the approver) for a real one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from backfill_ops.steps import STEPS, library, record

if TYPE_CHECKING:
    from airflow.sdk import Context as TaskContext

log = logging.getLogger(__name__)


def report(context: TaskContext) -> None:
    from orchestrator import backfills

    ti = context["ti"]
    dry_run = bool(context["params"]["dry_run"])
    outcomes = {step: ti.xcom_pull(task_ids=step, key="outcome") for step in STEPS}
    backfill_id = ti.xcom_pull(task_ids="plan", key="backfill_id")
    status = "not planned"
    if backfill_id:
        with library(context, backfill_id) as ctx:
            status = str(backfills.status(ctx, backfill_id)[0]["status"])
    rejected = (outcomes["approval"] or {}).get("status") == "rejected"
    summary = {"status": "rejected" if rejected else status, "dry_run": dry_run, "steps": outcomes}
    record(context, backfill_id, summary)
    notify(backfill_id, summary)
    if status != ("dry_run_ok" if dry_run else "succeeded") and not rejected:
        errors = [o["error"] for o in outcomes.values() if o and o.get("error")]
        why = errors[0] if errors else "a task failed before recording an outcome"
        ended = f"backfill {backfill_id} is {status}" if backfill_id else "nothing was planned"
        raise AirflowFailException(f"{ended}: {why}")


def notify(backfill_id: str | None, summary: dict[str, Any]) -> None:
    # The task log for now; a webhook (Slack-compatible) is the next notifier to add here.
    log.info("backfill %s ended %s: %s", backfill_id, summary["status"], summary)
