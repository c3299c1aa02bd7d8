"""`backfill sync MODEL`: push the model's pending online-store syncs again."""

from __future__ import annotations

from typing import Any

from orchestrator.context import Context
from orchestrator.errors import BadInput, WorkFailed
from orchestrator.lock import Locks
from orchestrator.online.policy import online_policy_from_meta
from orchestrator.online.syncs import retry_pending
from orchestrator.plan import check_identifier

# The lock a sync takes names no backfill: it only keeps a publish from racing it.
SYNC_LOCK_ID = "sync"


def sync_model(ctx: Context, model_name: str, requested_by: str | None = None) -> dict[str, Any]:
    """Retry every pending (or failed) sync of the model, oldest first, from the warehouse
    as it is now; exit 1 when any is still not synced."""
    check_identifier(model_name)
    who = ctx.who(requested_by)
    model = ctx.dbt.manifest().model(model_name)
    online = online_policy_from_meta(model.name, model.meta)
    if online is None:
        raise BadInput(f"model {model.name} has no meta.backfill.online sink")
    locks = Locks(ctx.audit)
    ctx.audit.ensure()
    locks.acquire(model.name, SYNC_LOCK_ID, who)
    try:
        outcomes = retry_pending(
            ctx.warehouse,
            online,
            relation=model.relation,
            partition_field=model.policy().partition_field,
        )
    finally:
        locks.release(model.name, SYNC_LOCK_ID, who)
    result = {
        "model": model.name,
        "syncs": [o.record.as_dict() for o in outcomes],
        "synced": sum(1 for o in outcomes if o.synced),
    }
    left = [o.record for o in outcomes if not o.synced]
    if left:
        raise WorkFailed(
            f"{len(left)} online sync(s) of {model.name} are still {left[0].status}: "
            f"{left[0].error}; retry with `backfill sync {model.name}`"
        )
    return result
