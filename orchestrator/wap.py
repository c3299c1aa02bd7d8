"""Write-audit-publish of one chunk: back up, stage, validate, publish, record.

Production is only ever changed by `publish`, by default one transaction that swaps the
chunk's partitions and writes the chunk's audit rows, so a chunk is either fully published
and recorded or not at all. Every step records its state before the next one starts,
so a crash anywhere resumes by redoing the chunk from its backup step: the backup is
taken from production, which an unpublished chunk never changed.

A chunk is built where the warehouse keeps relations that live only while the command
runs (`transient_relation`: in memory on DuckDB, the staging dataset on BigQuery). It is
copied to its named staging relation only when validation fails, to be inspected.

A model may opt into `publish: partition_copy` (policy.PUBLISH_MODES): the chunk is built
in its named staging relation, recorded `publishing`, then copied one partition at a time
and recorded `published` in a transaction of its own. A crash in between leaves some
partitions new and some old; the resume goes straight to the copies (production changed,
so the chunk's `before` comes from the audit store), and a rollback restores it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from orchestrator.audit import AuditStore, ChunkState, PlanRecord
from orchestrator.errors import ValidationFailed, WorkFailed
from orchestrator.faults import fault_point
from orchestrator.manifest import CompiledDataTest, Model
from orchestrator.online import (
    OnlinePolicy,
    days_between,
    online_policy_from_meta,
    register_sync,
    sync_published,
)
from orchestrator.plan import Chunk
from orchestrator.validate import validate_chunk
from orchestrator.warehouse.base import PartitionStats
from orchestrator.watermark import source_watermark

STAGING_SCHEMA = "backfill_staging"
BACKUP_SCHEMA = "backfill_backups"


@dataclass(frozen=True)
class ChunkOutcome:
    model: str
    chunk_no: int
    rows_before: int
    rows_after: int
    seconds: dict[str, float]  # per step: measure, backup, stage, validate, publish, cleanup
    online: str | None = None  # the online store sync: synced, pending, failed (or no sink)


def staging_relation(model: str, backfill_id: str, chunk_no: int) -> str:
    return f"{STAGING_SCHEMA}.{_safe(model)}__{backfill_id}__c{chunk_no:03d}"


def backup_relation(model: str, backfill_id: str) -> str:
    return f"{BACKUP_SCHEMA}.{_safe(model)}__{backfill_id}"


@dataclass(frozen=True)
class ChunkWork:
    """What one chunk needs: its plan, range, compiled SQL, model and the model's inputs."""

    plan: PlanRecord
    chunk: Chunk
    sql: str
    model: Model
    inputs: list[dict[str, str | None]]
    invocation_id: str
    data_tests: tuple[CompiledDataTest, ...] = ()
    prior: ChunkState | None = None  # the chunk's last record, if a run began it
    code_fingerprint: str = ""  # the model's code as the ledger names it (Manifest)

    @property
    def prior_state(self) -> str | None:
        return None if self.prior is None else self.prior.state


def run_chunk(
    audit: AuditStore, work: ChunkWork, on_step: Callable[[str, float], None] | None = None
) -> ChunkOutcome:
    """Back up, stage, validate and publish one chunk; `on_step(step, seconds)` hears each
    step as it ends (the progress display, a scheduler's log)."""
    wh = audit.wh
    chunk, backfill_id = work.chunk, work.plan.backfill_id
    relation, policy = work.model.relation, work.model.policy()
    model, chunk_no, start, end = chunk.model, chunk.chunk_no, chunk.start, chunk.end
    online = online_policy_from_meta(model, work.model.meta)  # bad config: before any write
    by_partition = policy.publish == "partition_copy"
    staging = staging_relation(model, backfill_id, chunk_no)
    # Copying partition by partition can stop halfway; the resume copies the rest from
    # the staged rows, so they must outlive the process.
    building = staging if by_partition else wh.transient_relation(staging)
    for schema in (STAGING_SCHEMA, BACKUP_SCHEMA):
        wh.ensure_schema(schema)

    clock = _Clock(on_step)
    if work.prior_state == "publishing" and wh.relation_exists(building):
        staged = _recorded_stage(audit, work, start, end)
    elif work.prior_state == "publishing":
        raise WorkFailed(
            f"chunk {chunk_no} of {backfill_id} was half-published and its staged rows in "
            f"{staging} are gone (expired or dropped); roll it back with "
            f"`backfill rollback {backfill_id} --execute --requested-by NAME`"
        )
    else:
        staged = _stage(audit, work, building, staging, start, end, clock)

    if online is not None:
        audit.ensure()  # the sync's record is written inside the publish: no DDL there
    if by_partition:
        rows_after, version_id = _publish_by_partition(
            audit, work, building, staged, start, end, online
        )
    else:
        with wh.transaction():  # the swap and all its records commit together
            wh.copy_range(building, relation, policy.partition_field, start, end)
            rows_after, version_id = _record_published(audit, work, staged, start, end, online)
    fault_point("after_publish")
    clock.lap("publish")
    synced = None
    if online is not None:  # only published rows reach the online store; never raises
        synced = sync_published(
            wh,
            online,
            relation=relation,
            partition_field=policy.partition_field,
            partitions=days_between(start, end),
            version_id=version_id,
            backfill_id=backfill_id,
            chunk_no=chunk_no,
        ).record.status
        clock.lap("online sync")
    wh.drop_relation(building)
    if building != staging:  # rows kept by an earlier attempt that failed validation
        wh.drop_relation(staging)
    clock.lap("cleanup")
    return ChunkOutcome(model, chunk_no, staged.rows_before, rows_after, clock.laps, synced)


@dataclass(frozen=True)
class _Staged:
    """A validated chunk waiting to be published, and what production held before it."""

    before: dict[date, PartitionStats]
    rows_before: int
    checksum_before: str
    staged_rows: int
    watermark: str | None = None  # the highest source batch the staged build could read


def _stage(
    audit: AuditStore,
    work: ChunkWork,
    building: str,
    staging: str,
    start: date,
    end: date,
    clock: _Clock,
) -> _Staged:
    """Measure, back up, build and validate the chunk; production is not touched."""
    wh, chunk, backfill_id = audit.wh, work.chunk, work.plan.backfill_id
    relation, policy = work.model.relation, work.model.policy()
    model, chunk_no, pf = chunk.model, chunk.chunk_no, policy.partition_field
    backup = backup_relation(model, backfill_id)
    before = wh.partition_stats(relation, pf, start, end)
    rows_before, checksum_before = _summary(before)
    audit.chunks.record(
        backfill_id, chunk, "started", rows_before=rows_before, checksum_before=checksum_before
    )
    fault_point("after_started")
    clock.lap("measure")

    with wh.transaction():  # the backup and its record land together
        wh.backup_range(relation, backup, pf, start, end)
        audit.chunks.record_partitions(backfill_id, model, chunk_no, "before", _rows(before))
        audit.chunks.record(
            backfill_id,
            chunk,
            "backed_up",
            rows_before=rows_before,
            checksum_before=checksum_before,
        )
    fault_point("after_backup")
    clock.lap("backup")

    by_partition = policy.publish == "partition_copy"
    # Read before the build: a bound on what it reads (pruned from the newest known batch).
    known = audit.ledger.newest_watermark(model) if policy.detect is not None else None
    watermark = source_watermark(wh, policy.detect, at_least=known)
    wh.create_table_as(building, work.sql, shaped_like=relation if by_partition else None)
    staged_rows = int(wh.query(f"select count(*) from {building}")[0][0])
    audit.chunks.record(
        backfill_id,
        chunk,
        "staged",
        rows_before=rows_before,
        rows_after=staged_rows,
        checksum_before=checksum_before,
    )
    fault_point("after_stage")
    clock.lap("stage")

    results = validate_chunk(
        wh, building, relation, policy, start, end, work.data_tests, work.model.relation_name
    )
    failures = [r for r in results if not r.passed]
    if failures and building != staging:  # keep the rejected rows for inspection
        wh.create_table_as(staging, f"select * from {building}")
        wh.drop_relation(building)
    with wh.transaction():
        audit.chunks.record_validation(backfill_id, model, chunk_no, [r.as_dict() for r in results])
        state = "failed_validation" if failures else "validated"
        error = "; ".join(f"{f.check} [{f.partition}]: {f.observed}" for f in failures) or None
        audit.chunks.record(
            backfill_id,
            chunk,
            state,
            rows_before=rows_before,
            rows_after=staged_rows,
            checksum_before=checksum_before,
            error=error,
        )
    if failures:
        raise ValidationFailed(
            f"validation failed for {model} chunk {chunk_no} ({start}..{end}): {error}; "
            f"production unchanged, staged rows kept in {staging}",
            [f.as_dict() for f in failures],
            staging,
        )
    fault_point("after_validate")
    clock.lap("validate")
    return _Staged(before, rows_before, checksum_before, staged_rows, watermark)


def _recorded_stage(audit: AuditStore, work: ChunkWork, start: date, end: date) -> _Staged:
    """A half-published chunk as recorded before its first partition copy: production has
    changed since, so its `before` must come from the audit store, not be measured again."""
    model, state = work.chunk.model, work.prior
    assert state is not None  # only a chunk recorded `publishing` gets here
    before = {
        day: PartitionStats(day, rows, checksum)
        for (name, day), (rows, checksum) in audit.chunks.partitions(
            work.plan.backfill_id, "before"
        ).items()
        if name == model and start <= day <= end
    }
    return _Staged(
        before, int(state.rows_before or 0), str(state.checksum_before), int(state.rows_after or 0)
    )


def _publish_by_partition(
    audit: AuditStore,
    work: ChunkWork,
    building: str,
    staged: _Staged,
    start: date,
    end: date,
    online: OnlinePolicy | None,
) -> tuple[int, str]:
    """Replace the chunk's partitions one at a time, then record the chunk as published.

    `publishing` and the staged checksums are recorded before the first copy, so a resume
    redoes the copies (each replaces a whole partition, so redoing one is harmless) and a
    rollback can tell a half-published partition from one changed by someone else.
    """
    wh, chunk, backfill_id = audit.wh, work.chunk, work.plan.backfill_id
    relation, pf = work.model.relation, work.model.policy().partition_field
    model, chunk_no = chunk.model, chunk.chunk_no
    if work.prior_state != "publishing":
        with wh.transaction():
            staged_stats = wh.partition_stats(building, pf, start, end)
            audit.chunks.record_partitions(
                backfill_id, model, chunk_no, "staged", _rows(staged_stats)
            )
            audit.chunks.record(
                backfill_id,
                chunk,
                "publishing",
                rows_before=staged.rows_before,
                rows_after=staged.staged_rows,
                checksum_before=staged.checksum_before,
            )
    staged_days = wh.partition_rows(building, pf, start, end)
    present_days = wh.partition_rows(relation, pf, start, end)
    for day in _days(start, end):
        if day in staged_days:
            wh.copy_partition(building, relation, pf, day)
        elif day in present_days:  # the day has no rows any more: it must become empty
            wh.delete_partition(relation, pf, day)
        else:
            continue
        fault_point("between_partition_copies")
    with wh.transaction():
        return _record_published(audit, work, staged, start, end, online)


def _record_published(
    audit: AuditStore,
    work: ChunkWork,
    staged: _Staged,
    start: date,
    end: date,
    online: OnlinePolicy | None,
) -> tuple[int, str]:
    """The chunk's after-checksums, dataset version, deltas, lineage, tag and state;
    returns the rows the chunk's partitions now hold."""
    wh, chunk, plan = audit.wh, work.chunk, work.plan
    relation, pf = work.model.relation, work.model.policy().partition_field
    model, chunk_no = chunk.model, chunk.chunk_no
    after = wh.partition_stats(relation, pf, start, end)
    rows_after, checksum_after = _summary(after)
    audit.chunks.record_partitions(plan.backfill_id, model, chunk_no, "after", _rows(after))
    version = audit.versions.version_for(
        model,
        plan.backfill_id,
        "backfill",
        plan.fingerprint,
        plan.reason or f"backfill {plan.backfill_id}",
    )
    backup = backup_relation(model, plan.backfill_id)
    audit.versions.record_deltas(version, model, start, end, staged.before, after, backup)
    audit.ledger.record(
        model,
        [(day, after[day].rows if day in after else 0) for day in days_between(start, end)],
        watermark=staged.watermark,
        code_fingerprint=work.code_fingerprint,
        writer="backfill",
        writer_id=plan.backfill_id,
    )
    if online is not None:  # pending until pushed: a crash after the commit leaves work
        register_sync(
            wh,
            online,
            partitions=days_between(start, end),
            version_id=version.version_id,
            backfill_id=plan.backfill_id,
            chunk_no=chunk_no,
        )
    audit.lineage.record(
        plan.backfill_id,
        plan.git_commit,
        relation,
        start,
        end,
        work.inputs,
        work.sql,
        work.invocation_id,
    )
    wh.tag_relation(relation, {"backfill_id": plan.backfill_id, "git_commit": plan.git_commit[:12]})
    audit.chunks.record(
        plan.backfill_id,
        chunk,
        "published",
        rows_before=staged.rows_before,
        rows_after=rows_after,
        checksum_before=staged.checksum_before,
        checksum_after=checksum_after,
    )
    fault_point("inside_publish")
    return rows_after, version.version_id


class _Clock:
    """Seconds spent in each step, for the benchmark's per-step report and the progress."""

    def __init__(self, on_lap: Callable[[str, float], None] | None = None) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()
        self._on_lap = on_lap

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = self.laps.get(step, 0.0) + now - self._last
        if self._on_lap is not None:
            self._on_lap(step, now - self._last)
        self._last = now


def _rows(stats: dict[date, PartitionStats]) -> list[tuple[date, int, str]]:
    return [(s.partition, s.rows, s.checksum) for s in stats.values()]


def _summary(stats: dict[date, PartitionStats]) -> tuple[int, str]:
    """Total rows and one checksum over the chunk's partitions (empty partitions drop out)."""
    digest = hashlib.sha256()
    for s in sorted(stats.values(), key=lambda s: s.partition):
        digest.update(f"{s.partition}:{s.rows}:{s.checksum};".encode())
    return sum(s.rows for s in stats.values()), digest.hexdigest()[:16]


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _safe(model: str) -> str:
    return model.replace(".", "_")
