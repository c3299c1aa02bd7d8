"""`approve`: the gate between a dry run and a run, bound to the plan's fingerprint."""

from __future__ import annotations

from typing import Any

from orchestrator import plan as planning
from orchestrator.context import Context
from orchestrator.errors import BadInput
from orchestrator.lifecycle import Action, Status, require
from orchestrator.planner import current_fingerprint, load_plan


def approve(
    ctx: Context, backfill_id: str, approver: str | None, comment: str | None = None
) -> dict[str, Any]:
    note = planning.check_reason(comment, "comment")
    plan = load_plan(ctx, backfill_id)
    named = (
        planning.check_person(approver, "approver")
        if approver is not None
        else ctx.who(None)  # the signed-in principal, else $BACKFILL_OPERATOR or the OS user
    )
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
    approvers = {planning.normalise_person(a) for a in policy.approvers}
    who, recorded = _approver(ctx, named, approvers)
    if policy.critical and who == planning.normalise_person(plan.requested_by):
        raise BadInput(f"{plan.model} is critical: the approver must not be the requester ({who})")
    acting = recorded.rpartition(" via ")[2]
    if approvers and acting not in approvers:
        raise BadInput(
            f"{acting} may not approve {plan.model}; approvers: {', '.join(policy.approvers)}"
        )
    with ctx.warehouse.transaction():
        plans.record_approval(plan.backfill_id, recorded, plan.fingerprint, note)
        plans.log(plan, Status.APPROVED, approved_by=recorded, dry_run=True)
    return {
        "backfill_id": plan.backfill_id,
        "approver": recorded,
        "fingerprint": plan.fingerprint,
    }


def _approver(ctx: Context, named: str, approvers: set[str]) -> tuple[str, str]:
    """(the person who approves, how the approval records them).

    Where the warehouse authenticates (BigQuery), the approver is its principal. An
    automation identity (a scheduler's service account) listed in `meta.backfill.approvers`
    may approve for the person it names (the Airflow user who clicked approve), recorded
    as `person via automation`; anyone else may only restate their own identity.
    """
    principal = ctx.warehouse.principal()
    if principal is None:
        return named, named
    signed_in = planning.normalise_person(principal)
    if named == signed_in:
        return named, named
    if signed_in in approvers:
        return named, f"{named} via {signed_in}"
    return ctx.who(named, "approver"), named  # refuses: one person is not two
