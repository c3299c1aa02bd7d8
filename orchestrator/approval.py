"""`approve`: the gate between a dry run and a run, bound to the plan's fingerprint."""

from __future__ import annotations

from typing import Any

from orchestrator import plan as planning
from orchestrator.context import Context
from orchestrator.errors import BadInput
from orchestrator.lifecycle import Action, Status, require
from orchestrator.planner import current_fingerprint, load_plan


def approve(
    ctx: Context, backfill_id: str, approver: str, comment: str | None = None
) -> dict[str, Any]:
    note = planning.check_reason(comment, "comment")
    plan = load_plan(ctx, backfill_id)
    who = planning.check_person(approver, "approver")
    plans = ctx.audit.plans
    existing = plans.approval(plan.backfill_id)
    if existing is not None:
        raise BadInput(
            f"plan {plan.backfill_id} is already approved by {existing['approver']} "
            f"at {existing['approved_at']:%Y-%m-%d %H:%M:%S} UTC"
        )
    require(Action.APPROVE, plans.status(plan.backfill_id), plan.backfill_id)
    if not plans.has_ok_dry_run(plan.backfill_id, plan.fingerprint):
        raise BadInput(
            f"plan {plan.backfill_id} has no successful dry run; "
            f"run `backfill dry-run {plan.backfill_id}` first"
        )
    current, _ = current_fingerprint(ctx, plan)
    if current != plan.fingerprint:  # never record an approval of code nobody dry-ran
        raise BadInput(
            f"plan {plan.backfill_id} changed since its dry run (fingerprint "
            f"{plan.fingerprint}, now {current}): the code, vars or git commit differ; "
            "make a new plan"
        )
    policy = ctx.dbt.manifest().model(plan.model).policy()
    if policy.critical and who == planning.normalise_person(plan.requested_by):
        raise BadInput(f"{plan.model} is critical: the approver must not be the requester ({who})")
    if policy.approvers and who not in {planning.normalise_person(a) for a in policy.approvers}:
        raise BadInput(
            f"{who} may not approve {plan.model}; approvers: {', '.join(policy.approvers)}"
        )
    with ctx.warehouse.transaction():
        plans.record_approval(plan.backfill_id, who, plan.fingerprint, note)
        plans.log(plan, Status.APPROVED, approved_by=who, dry_run=True)
    return {"backfill_id": plan.backfill_id, "approver": who, "fingerprint": plan.fingerprint}
