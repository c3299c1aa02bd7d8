"""Rollback: restore exactly the partitions a backfill replaced, from its backup, atomically.

A backfill that ended (succeeded or failed) or was interrupted (killed mid-run: logged
`running`, its lock gone or stale) can be rolled back; its published chunks are restored,
and so is a chunk left half-published by `publish: partition_copy` (each of its partitions
holds either the rows from before or the staged ones). Refused when any of those
partitions changed after the backfill wrote them (a later backfill or a dbt run), unless
forced; a forced rollback is recorded as such. The partitions being replaced are
themselves backed up first, so a rollback is a dataset version like any other and can be
exported or undone. A rollback always runs as one transaction, whatever the publish mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from orchestrator import notify
from orchestrator.audit import ChunkState, PlanRecord
from orchestrator.context import Context
from orchestrator.errors import BadInput, WorkFailed
from orchestrator.lifecycle import Action, Status, require
from orchestrator.lock import Locks
from orchestrator.online import (
    days_between,
    online_policy_from_meta,
    register_sync,
    sync_published,
)
from orchestrator.planner import load_plan
from orchestrator.wap import backup_relation
from orchestrator.warehouse.base import PartitionStats

# Chunk states whose partitions the backfill changed: `publishing` is a partition copy
# that stopped between partitions.
RESTORED_CHUNK_STATES = {"published", "publishing"}


@dataclass
class RollbackReport:
    backfill_id: str
    executed: bool
    forced: bool
    partitions: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def rollback(
    ctx: Context,
    backfill_id: str,
    *,
    execute: bool = False,
    requested_by: str | None = None,
    force: bool = False,
) -> RollbackReport:
    plan = load_plan(ctx, backfill_id)
    who = ctx.who(requested_by)
    audit = ctx.audit
    status = audit.plans.status(plan.backfill_id)
    if status is Status.ROLLED_BACK:
        raise BadInput(f"backfill {plan.backfill_id} is already rolled back")
    if status is Status.RUNNING and not Locks(audit).is_interrupted(plan.model, plan.backfill_id):
        raise BadInput(
            f"backfill {plan.backfill_id} is running; roll it back once it has ended "
            "or been interrupted"
        )
    require(Action.ROLLBACK, status, plan.backfill_id)
    published = [
        s
        for s in audit.chunks.states(plan.backfill_id).values()
        if s.state in RESTORED_CHUNK_STATES
    ]
    if not published:
        raise BadInput(
            f"backfill {plan.backfill_id} published nothing; there is nothing to roll back"
        )

    manifest = ctx.dbt.manifest()
    before = audit.chunks.partitions(plan.backfill_id, "before")
    after = audit.chunks.partitions(plan.backfill_id, "after")
    staged = audit.chunks.partitions(plan.backfill_id, "staged")
    report = RollbackReport(plan.backfill_id, execute, force)
    for chunk in sorted(published, key=lambda c: (c.model, c.chunk_no)):
        model = manifest.model(chunk.model)
        pf = model.policy().partition_field
        now = ctx.warehouse.partition_stats(model.relation, pf, chunk.start_date, chunk.end_date)
        for day in _days(chunk.start_date, chunk.end_date):
            key = (model.name, day)
            now_state = (now[day].rows, now[day].checksum) if day in now else (0, "0")
            restored = before.get(key, (0, "0"))
            if chunk.state == "published":
                written = {after.get(key, (0, "0"))}
            else:  # half-published: the partition was copied or not yet
                written = {staged.get(key, (0, "0")), restored}
            changed = now_state not in written
            if changed:
                report.conflicts.append(f"{model.name} {day}")
            report.partitions.append(
                {
                    "model": model.name,
                    "partition": day,
                    "rows_now": now_state[0],
                    "rows_restored": restored[0],
                    "changed_since": changed,
                }
            )
    if report.conflicts and not force:
        later = audit.chunks.published_later(plan.model, plan.backfill_id, plan.start, plan.end)
        by = f" (by {', '.join(later)})" if later else " (outside the orchestrator, e.g. dbt run)"
        raise BadInput(
            f"cannot roll back {plan.backfill_id}: {len(report.conflicts)} partition(s) changed "
            f"since it published them{by}, first {report.conflicts[0]}; "
            "pass --force to restore them anyway"
        )
    for name in {c.model for c in published}:
        backup = backup_relation(name, plan.backfill_id)
        if not ctx.warehouse.relation_exists(backup):
            raise BadInput(f"cannot roll back {plan.backfill_id}: its backup {backup} was expired")
    if not execute:
        return report
    _restore(ctx, plan, published, before, who, report)
    notify.notify_model(
        audit,
        manifest.model(plan.model).meta,
        notify.rolled_back(plan, len(report.partitions), who, bool(report.conflicts)),
    )
    return report


def _restore(
    ctx: Context,
    plan: PlanRecord,
    published: list[ChunkState],
    before: dict[tuple[str, date], tuple[int, str]],
    who: str,
    report: RollbackReport,
) -> None:
    audit, wh = ctx.audit, ctx.warehouse
    manifest = ctx.dbt.manifest()
    locks = Locks(audit)
    models = sorted({c.model for c in published})
    online = {
        name: policy
        for name in models
        if (policy := online_policy_from_meta(name, manifest.model(name).meta)) is not None
    }
    if online:
        audit.ensure()  # the syncs are recorded inside the transaction: no DDL there
    resyncs: list[tuple[str, str, str, list[date], str, int]] = []
    for name in models:
        locks.acquire(name, plan.backfill_id, who)
    try:
        with wh.transaction():  # every partition of every chunk, or none
            for chunk in published:
                model = manifest.model(chunk.model)
                pf = model.policy().partition_field
                start, end = chunk.start_date, chunk.end_date
                undo_backup = backup_relation(model.name, f"rb_{plan.backfill_id}")
                replaced = wh.partition_stats(model.relation, pf, start, end)
                wh.backup_range(model.relation, undo_backup, pf, start, end)
                wh.copy_range(
                    backup_relation(model.name, plan.backfill_id), model.relation, pf, start, end
                )
                restored = wh.partition_stats(model.relation, pf, start, end)
                expected = {
                    d: v for (m, d), v in before.items() if m == model.name and start <= d <= end
                }
                if {d: (s.rows, s.checksum) for d, s in restored.items()} != expected:
                    raise WorkFailed(
                        f"rollback of {plan.backfill_id} restored {model.name} {start}..{end} "
                        "with checksums that differ from those recorded before the backfill; "
                        "nothing was changed"
                    )
                audit.chunks.record_partitions(
                    plan.backfill_id,
                    model.name,
                    chunk.chunk_no,
                    "rolled_back",
                    [(d, s.rows, s.checksum) for d, s in restored.items()],
                )
                audit.chunks.record(
                    plan.backfill_id,
                    chunk.chunk,
                    "rolled_back",
                    rows_before=_total(replaced),
                    rows_after=_total(restored),
                )
                version = audit.versions.version_for(
                    model.name,
                    plan.backfill_id,
                    "rollback",
                    plan.fingerprint,
                    f"rollback of {plan.backfill_id}",
                )
                audit.versions.record_deltas(
                    version, model.name, start, end, replaced, restored, undo_backup
                )
                if model.name in online:  # the online store follows the restored rows
                    days = days_between(start, end)
                    register_sync(
                        wh,
                        online[model.name],
                        partitions=days,
                        version_id=version.version_id,
                        backfill_id=plan.backfill_id,
                        chunk_no=chunk.chunk_no,
                        kind="rollback",
                    )
                    resyncs.append((model.name, model.relation, pf, days, version.version_id,
                                    chunk.chunk_no))  # fmt: skip
                wh.tag_relation(
                    model.relation, {"backfill_id": plan.backfill_id, "rolled_back": "true"}
                )
            audit.plans.record_rollback(
                plan, who, report.conflicts, backup_relation(plan.model, plan.backfill_id)
            )
            audit.plans.log(plan, Status.ROLLED_BACK, dry_run=False)
        for name, relation, pf, days, version_id, chunk_no in resyncs:  # after the commit
            sync_published(  # never raises: an outage leaves the sync pending
                wh,
                online[name],
                relation=relation,
                partition_field=pf,
                partitions=days,
                version_id=version_id,
                backfill_id=plan.backfill_id,
                chunk_no=chunk_no,
                kind="rollback",
            )
    finally:
        for name in models:
            locks.release(name, plan.backfill_id, who)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _total(stats: dict[date, PartitionStats]) -> int:
    return sum(s.rows for s in stats.values())
