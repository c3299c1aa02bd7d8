"""managed_backfill: one backfill of one dbt model per DAG run, through every gate.

plan -> dry_run -> approval -> run -> report. `dry_run` is true unless the trigger says
otherwise: a dry run plans and compiles, asks nobody, writes no partition, and its
`approval` and `run` are skipped. With `dry_run: false` the approval step waits for an
Airflow user to approve (Browse > Required Actions, or the HITL REST API); that user is the
approver, and the library refuses what `backfill approve` would refuse. `run` resumes at
the first unpublished chunk when retried. See docs/airflow.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task
from backfill_ops import steps
from backfill_ops.approval import BackfillApproval
from backfill_ops.catalog import backfillable_models
from backfill_ops.report import report as report_outcome

from orchestrator.plan import CATEGORIES  # a light module: no dbt, no warehouse

with DAG(
    dag_id="managed_backfill",
    description="Plan, dry-run, approve and run one backfill with the orchestrator",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["backfill"],
    doc_md=__doc__,
    params={
        "model": Param(
            type="string",
            enum=backfillable_models(),
            description="An incremental model that declares meta.backfill",
        ),
        "start_date": Param(type="string", format="date", description="First day, YYYY-MM-DD"),
        "end_date": Param(type="string", format="date", description="Last day, inclusive"),
        "dry_run": Param(True, type="boolean", description="Plan and dry-run only"),
        "chunk_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Days per chunk; empty for the model's meta.backfill.chunk_days",
        ),
        "category": Param("other", type="string", enum=list(CATEGORIES)),
        "reason": Param(type="string", minLength=1, description="Why, for the audit log"),
    },
) as dag:
    # `run` retries once, after [core] default_task_retry_delay: a retry resumes at the
    # first unpublished chunk (a lock held, a busy warehouse file, a transient error). The
    # other steps never retry: a plan retry would plan twice, an approval retry ask twice.

    @task(retries=0)
    def plan() -> None:
        steps.plan(get_current_context())

    @task(retries=0)
    def dry_run() -> None:
        steps.dry_run(get_current_context())

    @task(retries=1)
    def run() -> None:
        steps.run(get_current_context())

    @task(retries=0, trigger_rule=TriggerRule.ALL_DONE)
    def report() -> None:
        report_outcome(get_current_context())

    approval = BackfillApproval(task_id="approval", retries=0)
    # A preview step (stage every chunk and diff it against production) goes between
    # dry_run and approval once the library has one: dry_run() >> preview() >> approval.
    plan() >> dry_run() >> approval >> run() >> report()
