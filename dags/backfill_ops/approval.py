"""The approval step: Airflow's human-in-the-loop approval, recorded by the library.

The Airflow user who answers "Approve" becomes the backfill's approver. The library still
decides: it refuses an approver who is the requester of a critical model, an approver not
in `meta.backfill.approvers`, and a plan without a successful dry run of its fingerprint,
so Airflow can never approve what `backfill approve` would refuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from backfill_ops import steps

if TYPE_CHECKING:
    from airflow.sdk import Context as TaskContext


class BackfillApproval(ApprovalOperator):
    """Asks for an approval of the planned backfill; skipped when the run is a dry run."""

    def __init__(self, *, params: ParamsDict | None = None, **kwargs: Any) -> None:
        # The approver's form: one optional comment, stored with the approval.
        form = ParamsDict(params or {})  # the DAG's params, which Airflow passes in
        form["comment"] = Param("", type="string", description="Stored with it", source="task")
        super().__init__(
            subject="Approve backfill {{ ti.xcom_pull(task_ids='plan', key='backfill_id') }} "
            "of {{ params.model }}",
            params=form,
            **kwargs,
        )

    def execute(self, context: TaskContext) -> Any:
        if context["params"]["dry_run"]:
            # No request for a human: a dry run must leave no approval row and never wait.
            raise AirflowSkipException("dry_run is true: nothing to approve")
        self.body = _body(context)
        return super().execute(context)

    def execute_complete(self, context: TaskContext, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context, event)  # a rejection skips `run`
        user = result.get("responded_by_user") or {}
        who = str(user.get("name") or "")
        if result["chosen_options"] != [self.APPROVE]:
            steps.record(context, steps.plan_id(context), {"status": "rejected", "by": who})
            return result
        if not who:  # e.g. a timeout's default answer: there is no one to record
            raise AirflowFailException("the approval has no responding user to record")
        comment = str((result.get("params_input") or {}).get("comment") or "")
        run = context["dag_run"]
        steps.approve(context, who, comment or f"approved in Airflow: {run.dag_id} {run.run_id}")
        return result


def _body(context: TaskContext) -> str:
    """What the approver reads: the plan and its dry run, from their XComs."""
    ti, params = context["ti"], context["params"]
    plan = ti.xcom_pull(task_ids="plan", key="outcome") or {}
    dry = ti.xcom_pull(task_ids="dry_run", key="outcome") or {}
    return "\n".join(
        [
            f"**{params['model']}** {params['start_date']} .. {params['end_date']}: "
            f"{plan.get('chunks')} chunk(s), {plan.get('rows_now')} rows now, "
            f"critical: {plan.get('critical')}",
            f"Reason: {params['reason']} (category {params['category']})",
            f"Dry run: {dry.get('rows_to_replace')} rows to replace, "
            f"~{dry.get('rows_read_estimate')} rows read, cost (USD): {dry.get('cost_usd')}; "
            f"SQL in {dry.get('compiled_dir')}",
            f"Fingerprint: {plan.get('fingerprint')}",
            "Approving records you as the approver. On a critical model the requester may "
            "not approve their own plan.",
        ]
    )
