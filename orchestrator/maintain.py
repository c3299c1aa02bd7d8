"""`backfill maintain`: expire old backups and staging relations, never one still needed.

A backup is kept while the backfill that owns it was active within the window, or while a
dataset version inside the window points at it (exporting or rolling back that version
needs it). Staging tables are kept for inspection inside the window, except those whose
chunk was published (then they are leftovers of a crash after publish). Neither is
expired while a chunk of its backfill is half-published (`publish: partition_copy`
stopped between partitions): the resume copies from the staging, a rollback restores
from the backup. Snapshots are never expired. Every removal is recorded in `maintenance_log`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.audit import utcnow
from orchestrator.context import Context
from orchestrator.errors import BadInput
from orchestrator.wap import BACKUP_SCHEMA, STAGING_SCHEMA

MAX_KEEP_DAYS = 36500  # a century; more would overflow the cutoff date


@dataclass(frozen=True)
class Expiry:
    relation: str
    reason: str


def maintain(
    ctx: Context, keep_days: int, *, execute: bool = False, requested_by: str | None = None
) -> list[Expiry]:
    if keep_days < 0:
        raise BadInput(f"keep days must be 0 or more, not {keep_days}")
    if keep_days > MAX_KEEP_DAYS:
        raise BadInput(f"keep days must be at most {MAX_KEEP_DAYS}, not {keep_days}")
    who = ctx.who(requested_by)
    audit, wh = ctx.audit, ctx.warehouse
    if not audit.exists():
        return []
    cutoff = utcnow() - timedelta(days=keep_days)
    last_activity = audit.plans.last_activity()
    needed_by_version = audit.versions.backups_needed_since(cutoff)
    published = audit.chunks.ever_published()
    # A half-published chunk resumes from its staging and rolls back from its backup.
    half_published = set(audit.chunks.half_published())
    expired: list[Expiry] = []
    for relation, _ in sorted(wh.list_relations(BACKUP_SCHEMA)):
        backfill_id = _owner(relation)
        if relation in needed_by_version or backfill_id in half_published:
            continue
        if _recent(last_activity.get(backfill_id), cutoff):
            continue
        expired.append(
            Expiry(relation, f"backup of {backfill_id}, inactive since before {cutoff:%Y-%m-%d}")
        )
    for relation, _ in sorted(wh.list_relations(STAGING_SCHEMA)):
        backfill_id = _owner(relation)
        chunk = relation.rsplit("__c", 1)[-1]
        chunk_no = int(chunk) if chunk.isdigit() else -1
        if backfill_id in half_published:
            continue
        if any(b == backfill_id and c == chunk_no for b, _, c in published):
            expired.append(Expiry(relation, f"staging of a published chunk of {backfill_id}"))
        elif not _recent(last_activity.get(backfill_id), cutoff):
            expired.append(
                Expiry(
                    relation, f"staging of {backfill_id}, inactive since before {cutoff:%Y-%m-%d}"
                )
            )
    if execute:
        for item in expired:
            with wh.transaction():
                wh.drop_relation(item.relation)
                audit.maintenance.record_drop(item.relation, item.reason, who)
    return expired


def _owner(relation: str) -> str:
    """The backfill id inside a backup/staging name (`model__bf_x`, `model__rb_bf_x__c001`)."""
    for part in relation.split(".", 1)[1].split("__"):
        if part.startswith("bf_"):
            return part
        if part.startswith("rb_bf_"):
            return part[3:]
    return ""


def _recent(when: datetime | None, cutoff: datetime) -> bool:
    return when is not None and when >= cutoff
