"""The bodies of the managed_backfill tasks: each makes one call of the orchestrator's library,
as a CLI command does, so every rule the CLI enforces holds here too.

Every task pushes two XComs: `backfill_id` and `outcome` (a small dict whose `status` says
what happened). A library error fails the task with the library's one-line message; its
`outcome` is pushed first, so `report` can say why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from backfill_ops.catalog import project_dir

if TYPE_CHECKING:
    from airflow.sdk import Context as TaskContext

    from orchestrator.context import Context

# The triggering user `airflow dags test` records: nobody signed in to Airflow.
DAG_TEST_USER = "dag_test"
STEPS = ("plan", "dry_run", "approval", "run")

log = logging.getLogger(__name__)


def requester(context: TaskContext) -> str | None:
    """The Airflow user who triggered the run. None when nobody did (`airflow dags test`):
    the library then names the requester as the CLI does ($BACKFILL_OPERATOR, else the OS
    user), since whoever runs `dags test` is at a shell on the Airflow host."""
    user = context["dag_run"].triggering_user_name
    return None if user in (None, "", DAG_TEST_USER) else str(user)


def plan_id(context: TaskContext) -> str:
    backfill_id = context["ti"].xcom_pull(task_ids="plan", key="backfill_id")
    if not backfill_id:
        raise AirflowFailException("the plan task recorded no backfill id")
    return str(backfill_id)


def record(context: TaskContext, backfill_id: str | None, outcome: dict[str, Any]) -> None:
    context["ti"].xcom_push(key="backfill_id", value=backfill_id)
    context["ti"].xcom_push(key="outcome", value=outcome)
    log.info("backfill %s: %s", backfill_id or "(none planned)", outcome)


@contextmanager
def library(context: TaskContext, backfill_id: str | None) -> Iterator[Context]:
    """The library's Context for one task; its error fails the task with its own line."""
    from orchestrator.context import Context  # heavy: imported when a task runs, not at parse
    from orchestrator.errors import BackfillError, BadInput, ValidationFailed

    ctx = Context(project_dir())
    try:
        yield ctx
    except BackfillError as exc:
        log.error("Error: %s", exc)
        record(context, backfill_id, {"status": "failed", "error": str(exc)})
        if isinstance(exc, BadInput | ValidationFailed):  # would fail the same way again
            raise AirflowFailException(str(exc)) from None
        raise  # the work failed: the task's retries apply, and a retried run resumes
    finally:
        ctx.close()


def plan(context: TaskContext) -> None:
    from orchestrator import backfills

    params = context["params"]
    with library(context, None) as ctx:
        rec = backfills.create_plan(
            ctx,
            params["model"],
            params["start_date"],
            params["end_date"],
            chunk_days=params["chunk_days"],
            reason=params["reason"],
            category=params["category"],
            requested_by=requester(context),
        )
    outcome = {
        "status": "planned",
        "model": rec.model,
        "chunks": len(rec.chunks),
        "rows_now": rec.impact["rows_now"],
        "critical": rec.impact["critical"],
        "fingerprint": rec.fingerprint,
    }
    record(context, rec.backfill_id, outcome)


def dry_run(context: TaskContext) -> None:
    from orchestrator import backfills

    backfill_id = plan_id(context)
    with library(context, backfill_id) as ctx:
        report = backfills.dry_run(ctx, backfill_id)
    outcome = {
        "status": "dry_run_ok",
        "rows_to_replace": report.rows_to_replace,
        "rows_read_estimate": report.rows_read_estimate,
        "cost_usd": report.cost_usd,
        "compiled_dir": report.compiled_dir,
    }
    record(context, backfill_id, outcome)


def approve(context: TaskContext, approver: str, comment: str) -> None:
    """Record the Airflow approval in the library, which may still refuse it."""
    from orchestrator import backfills

    backfill_id = plan_id(context)
    with library(context, backfill_id) as ctx:
        current = backfills.status(ctx, backfill_id)[0]
        if current.get("approved_by") != approver:  # else a retried task: recorded already
            backfills.approve(ctx, backfill_id, approver, comment)
    record(context, backfill_id, {"status": "approved", "approver": approver})


def run(context: TaskContext) -> None:
    from orchestrator import backfills

    if context["params"]["dry_run"]:
        raise AirflowSkipException("dry_run is true: nothing is written")
    backfill_id = plan_id(context)
    with library(context, backfill_id) as ctx:
        report = backfills.run(ctx, backfill_id, requested_by=requester(context))
    outcome = {
        "status": str(report.status),
        "chunks_run": len(report.chunks_run),
        "chunks_skipped": report.chunks_skipped,
        "rows_after": report.rows_after,
    }
    record(context, backfill_id, outcome)
