"""Write-audit-publish of one chunk: back up, stage, validate, publish, record.

Production is only ever changed by `publish`, one transaction that swaps the chunk's
partitions and writes the chunk's audit rows, so a chunk is either fully published
and recorded or not at all. Every step records its state before the next one starts,
so a crash anywhere resumes by redoing the chunk from its backup step: the backup is
taken from production, which an unpublished chunk never changed.

A chunk is built where the warehouse keeps relations that live only while the command
runs (`transient_relation`: in memory on DuckDB, the staging dataset on BigQuery). It is
copied to its named staging relation only when validation fails, to be inspected.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from orchestrator.audit import AuditStore, PlanRecord
from orchestrator.errors import ValidationFailed
from orchestrator.faults import fault_point
from orchestrator.lineage import record_lineage
from orchestrator.manifest import CompiledDataTest, Model
from orchestrator.validate import validate_chunk
from orchestrator.versions import record_deltas, version_for
from orchestrator.warehouse.base import PartitionStats

STAGING_SCHEMA = "backfill_staging"
BACKUP_SCHEMA = "backfill_backups"


@dataclass(frozen=True)
class ChunkOutcome:
    model: str
    chunk_no: int
    rows_before: int
    rows_after: int
    seconds: dict[str, float]  # per step: measure, backup, stage, validate, publish, cleanup


def staging_relation(model: str, backfill_id: str, chunk_no: int) -> str:
    return f"{STAGING_SCHEMA}.{_safe(model)}__{backfill_id}__c{chunk_no:03d}"


def backup_relation(model: str, backfill_id: str) -> str:
    return f"{BACKUP_SCHEMA}.{_safe(model)}__{backfill_id}"


@dataclass(frozen=True)
class ChunkWork:
    """What one chunk needs: its plan, range, compiled SQL, model and the model's inputs."""

    plan: PlanRecord
    chunk: dict[str, Any]
    sql: str
    model: Model
    inputs: list[dict[str, str | None]]
    invocation_id: str
    data_tests: tuple[CompiledDataTest, ...] = ()


def run_chunk(audit: AuditStore, work: ChunkWork) -> ChunkOutcome:
    wh = audit.wh
    chunk, backfill_id = work.chunk, work.plan.backfill_id
    relation, policy, sql = work.model.relation, work.model.policy(), work.sql
    model, chunk_no = chunk["model"], int(chunk["chunk_no"])
    clock = _Clock()
    start, end = date.fromisoformat(chunk["start"]), date.fromisoformat(chunk["end"])
    pf = policy.partition_field
    staging = staging_relation(model, backfill_id, chunk_no)
    building = wh.transient_relation(staging)
    backup = backup_relation(model, backfill_id)
    for schema in (STAGING_SCHEMA, BACKUP_SCHEMA):
        wh.ensure_schema(schema)

    before = wh.partition_stats(relation, pf, start, end)
    rows_before, checksum_before = _summary(before)
    audit.record_chunk(
        backfill_id, chunk, "started", rows_before=rows_before, checksum_before=checksum_before
    )
    fault_point("after_started")
    clock.lap("measure")

    with wh.transaction():  # the backup and its record land together
        wh.copy_range(relation, backup, pf, start, end)
        audit.record_partitions(backfill_id, model, chunk_no, "before", _rows(before))
        audit.record_chunk(
            backfill_id,
            chunk,
            "backed_up",
            rows_before=rows_before,
            checksum_before=checksum_before,
        )
    fault_point("after_backup")
    clock.lap("backup")

    wh.create_table_as(building, sql)
    staged_rows = int(wh.query(f"select count(*) from {building}")[0][0])
    audit.record_chunk(
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
        audit.record_validation(backfill_id, model, chunk_no, [r.as_dict() for r in results])
        state = "failed_validation" if failures else "validated"
        error = "; ".join(f"{f.check} [{f.partition}]: {f.observed}" for f in failures) or None
        audit.record_chunk(
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
        )
    fault_point("after_validate")
    clock.lap("validate")

    with wh.transaction():  # the swap and all its records commit together
        wh.copy_range(building, relation, pf, start, end)
        after = wh.partition_stats(relation, pf, start, end)
        rows_after, checksum_after = _summary(after)
        audit.record_partitions(backfill_id, model, chunk_no, "after", _rows(after))
        version = version_for(
            audit,
            model,
            backfill_id,
            "backfill",
            work.plan.fingerprint,
            work.plan.reason or f"backfill {backfill_id}",
        )
        record_deltas(audit, version, model, start, end, before, after, backup)
        record_lineage(audit, work.plan, relation, start, end, work.inputs, sql, work.invocation_id)
        wh.tag_relation(
            relation, {"backfill_id": backfill_id, "git_commit": work.plan.git_commit[:12]}
        )
        audit.record_chunk(
            backfill_id,
            chunk,
            "published",
            rows_before=rows_before,
            rows_after=rows_after,
            checksum_before=checksum_before,
            checksum_after=checksum_after,
        )
        fault_point("inside_publish")
    fault_point("after_publish")
    clock.lap("publish")
    wh.drop_relation(building)
    if building != staging:  # rows kept by an earlier attempt that failed validation
        wh.drop_relation(staging)
    clock.lap("cleanup")
    return ChunkOutcome(model, chunk_no, rows_before, rows_after, clock.laps)


class _Clock:
    """Seconds spent in each step, for the benchmark's per-step report."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = self.laps.get(step, 0.0) + now - self._last
        self._last = now


def _rows(stats: dict[date, PartitionStats]) -> list[tuple[date, int, str]]:
    return [(s.partition, s.rows, s.checksum) for s in stats.values()]


def _summary(stats: dict[date, PartitionStats]) -> tuple[int, str]:
    """Total rows and one checksum over the chunk's partitions (empty partitions drop out)."""
    digest = hashlib.sha256()
    for s in sorted(stats.values(), key=lambda s: s.partition):
        digest.update(f"{s.partition}:{s.rows}:{s.checksum};".encode())
    return sum(s.rows for s in stats.values()), digest.hexdigest()[:16]


def _safe(model: str) -> str:
    return model.replace(".", "_")
