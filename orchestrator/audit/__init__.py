"""The audit store: plans, status events, chunks, checksums, approvals, dry runs, locks.

It lives in the warehouse itself (schema/dataset `backfill_audit`). Tables are
append-only: a status change is a new row and the latest row per key is the current
state, which suits BigQuery and leaves the full history for auditors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from orchestrator.errors import BadInput
from orchestrator.warehouse.base import Warehouse

SCHEMA = "backfill_audit"

TABLES: dict[str, list[tuple[str, str]]] = {
    "plans": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("chunk_days", "int"),
        ("downstream", "bool"),
        ("chunks", "string"),
        ("vars", "string"),
        ("fingerprint", "string"),
        ("project_hash", "string"),
        ("git_commit", "string"),
        ("requested_by", "string"),
        ("reason", "string"),
        ("impact", "string"),
        ("created_at", "timestamp"),
    ],
    "backfill_log": [
        ("event_no", "int"),
        ("backfill_id", "string"),
        ("model", "string"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("status", "string"),
        ("rows_affected", "int"),
        ("requested_by", "string"),
        ("approved_by", "string"),
        ("reason", "string"),
        ("plan_fingerprint", "string"),
        ("git_commit", "string"),
        ("dry_run", "bool"),
        ("started_at", "timestamp"),
        ("completed_at", "timestamp"),
        ("error", "string"),
        ("recorded_at", "timestamp"),
    ],
    "backfill_chunks": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("chunk_no", "int"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("state", "string"),
        ("rows_before", "int"),
        ("rows_after", "int"),
        ("checksum_before", "string"),
        ("checksum_after", "string"),
        ("error", "string"),
        ("updated_at", "timestamp"),
    ],
    "partition_checksums": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("chunk_no", "int"),
        ("partition_date", "date"),
        ("phase", "string"),
        ("row_count", "int"),
        ("checksum", "string"),
        ("recorded_at", "timestamp"),
    ],
    "approvals": [
        ("backfill_id", "string"),
        ("approver", "string"),
        ("fingerprint", "string"),
        ("comment", "string"),
        ("approved_at", "timestamp"),
    ],
    "dry_runs": [
        ("backfill_id", "string"),
        ("fingerprint", "string"),
        ("ok", "bool"),
        ("estimates", "string"),
        ("compiled_dir", "string"),
        ("error", "string"),
        ("created_at", "timestamp"),
    ],
    "validation_reports": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("chunk_no", "int"),
        ("check_name", "string"),
        ("partition_value", "string"),
        ("observed", "string"),
        ("expected", "string"),
        ("passed", "bool"),
        ("recorded_at", "timestamp"),
    ],
    "dataset_versions": [
        ("version_id", "string"),
        ("dataset", "string"),
        ("version_no", "int"),
        ("parent_version", "string"),
        ("created_by_backfill", "string"),
        ("kind", "string"),
        ("created_at", "timestamp"),
        ("fingerprint", "string"),
        ("description", "string"),
    ],
    "dataset_deltas": [
        ("version_id", "string"),
        ("dataset", "string"),
        ("partition_date", "date"),
        ("rows_before", "int"),
        ("rows_after", "int"),
        ("checksum_before", "string"),
        ("checksum_after", "string"),
        ("backup_relation", "string"),
    ],
    "dataset_snapshots": [
        ("dataset", "string"),
        ("tag", "string"),
        ("relation", "string"),
        ("version_no", "int"),
        ("row_count", "int"),
        ("checksum", "string"),
        ("model_run_id", "string"),
        ("created_by", "string"),
        ("created_at", "timestamp"),
    ],
    "lineage": [
        ("run_id", "string"),
        ("backfill_id", "string"),
        ("output_relation", "string"),
        ("partition_start", "date"),
        ("partition_end", "date"),
        ("input_relations", "string"),
        ("git_commit", "string"),
        ("config_hash", "string"),
        ("dbt_invocation_id", "string"),
        ("vars", "string"),
        ("produced_at", "timestamp"),
    ],
    "rollbacks": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("requested_by", "string"),
        ("forced", "bool"),
        ("conflicts", "string"),
        ("backup_relation", "string"),
        ("rolled_back_at", "timestamp"),
    ],
    "maintenance_log": [
        ("relation", "string"),
        ("action", "string"),
        ("reason", "string"),
        ("actor", "string"),
        ("recorded_at", "timestamp"),
    ],
    "locks": [
        ("model", "string"),
        ("backfill_id", "string"),
        ("holder", "string"),
        ("pid", "int"),
        ("host", "string"),
        ("acquired_at", "timestamp"),
    ],
    "lock_events": [
        ("model", "string"),
        ("backfill_id", "string"),
        ("action", "string"),
        ("actor", "string"),
        ("reason", "string"),
        ("recorded_at", "timestamp"),
    ],
}

LOG_FIELDS = [name for name, _ in TABLES["backfill_log"]]
CHUNK_FIELDS = [name for name, _ in TABLES["backfill_chunks"]]


def utcnow() -> datetime:
    """UTC wall time, naive (DuckDB TIMESTAMP has no zone; every audit time is UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class PlanRecord:
    backfill_id: str
    model: str
    start: date
    end: date
    chunk_days: int
    downstream: bool
    chunks: list[dict[str, Any]]
    dbt_vars: dict[str, Any]
    fingerprint: str
    project_hash: str
    git_commit: str
    requested_by: str
    reason: str
    impact: dict[str, Any]
    created_at: datetime


class AuditStore:
    def __init__(self, warehouse: Warehouse) -> None:
        self.wh = warehouse
        self._ready = False  # ensure() made every table
        self._seen = False  # the store exists
        self._chunk_clock: dict[str, datetime] = {}  # backfill_id -> its last chunk record time

    def t(self, table: str) -> str:
        return f"{SCHEMA}.{table}"

    def ensure(self) -> None:
        """Create the schema and tables (only on paths that write)."""
        if self._ready:
            return
        self.wh.ensure_schema(SCHEMA)
        for table, columns in TABLES.items():
            self.wh.create_table_if_missing(self.t(table), columns)
        self._ready = True

    def exists(self) -> bool:
        # Audit tables are never dropped: once seen, they need not be looked up again.
        if not self._seen:
            self._seen = self._ready or self.wh.relation_exists(self.t("backfill_log"))
        return self._seen

    # -- plans ---------------------------------------------------------------------------
    def insert_plan(self, plan: PlanRecord) -> None:
        self.wh.insert_rows(
            self.t("plans"),
            [
                {
                    "backfill_id": plan.backfill_id,
                    "model": plan.model,
                    "start_date": plan.start,
                    "end_date": plan.end,
                    "chunk_days": plan.chunk_days,
                    "downstream": plan.downstream,
                    "chunks": json.dumps(plan.chunks),
                    "vars": json.dumps(plan.dbt_vars, sort_keys=True),
                    "fingerprint": plan.fingerprint,
                    "project_hash": plan.project_hash,
                    "git_commit": plan.git_commit,
                    "requested_by": plan.requested_by,
                    "reason": plan.reason,
                    "impact": json.dumps(plan.impact, sort_keys=True, default=str),
                    "created_at": plan.created_at,
                }
            ],
        )

    def get_plan(self, backfill_id: str) -> PlanRecord:
        rows = (
            self.wh.query(
                f"select backfill_id, model, start_date, end_date, chunk_days, downstream, chunks,"
                f" vars, fingerprint, project_hash, git_commit, requested_by, reason, impact,"
                f" created_at from {self.t('plans')} where backfill_id = $id",
                {"id": backfill_id},
            )
            if self.exists()
            else []
        )
        if not rows:
            raise BadInput(f"unknown plan {backfill_id!r}")
        r = rows[0]
        return PlanRecord(
            backfill_id=r[0],
            model=r[1],
            start=r[2],
            end=r[3],
            chunk_days=int(r[4]),
            downstream=bool(r[5]),
            chunks=json.loads(r[6]),
            dbt_vars=json.loads(r[7]),
            fingerprint=r[8],
            project_hash=r[9],
            git_commit=r[10],
            requested_by=r[11],
            reason=r[12] or "",
            impact=json.loads(r[13]),
            created_at=r[14],
        )

    # -- status events -------------------------------------------------------------------
    def log(self, plan: PlanRecord, status: str, **fields: Any) -> None:
        """Append a status event; unspecified fields carry over from the latest event."""
        current = self.current(plan.backfill_id) or {}
        row: dict[str, Any] = {name: current.get(name) for name in LOG_FIELDS}
        row.update(
            backfill_id=plan.backfill_id,
            model=plan.model,
            start_date=plan.start,
            end_date=plan.end,
            requested_by=plan.requested_by,
            reason=plan.reason,
            plan_fingerprint=plan.fingerprint,
            git_commit=plan.git_commit,
        )
        row.update(fields)
        row["status"] = status
        row["event_no"] = int(current.get("event_no") or 0) + 1
        row["recorded_at"] = utcnow()
        if status in {"succeeded", "failed", "failed_validation", "rolled_back"}:
            row["completed_at"] = row["recorded_at"]
        else:
            row["completed_at"] = None
            row["error"] = fields.get("error")
        self.wh.insert_rows(self.t("backfill_log"), [row])

    def current(self, backfill_id: str) -> dict[str, Any] | None:
        rows = self._latest_log("where backfill_id = $id", {"id": backfill_id})
        return rows[0] if rows else None

    def history(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        where, params = ("where model = $model", {"model": model}) if model else ("", {})
        return self._latest_log(where, params, limit)

    def events(self, backfill_id: str) -> list[dict[str, Any]]:
        rows = self.wh.query(
            f"select {', '.join(LOG_FIELDS)} from {self.t('backfill_log')} "
            "where backfill_id = $id order by event_no",
            {"id": backfill_id},
        )
        return [dict(zip(LOG_FIELDS, r, strict=True)) for r in rows]

    def _latest_log(
        self, where: str, params: Mapping[str, Any], limit: int = 1000
    ) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(LOG_FIELDS)} from {self.t('backfill_log')} {where} "
            "qualify row_number() over (partition by backfill_id order by event_no desc) = 1 "
            f"order by recorded_at desc, backfill_id limit {int(limit)}",
            params,
        )
        return [dict(zip(LOG_FIELDS, r, strict=True)) for r in rows]

    # -- chunks --------------------------------------------------------------------------
    def record_chunk(
        self, backfill_id: str, chunk: Mapping[str, Any], state: str, **f: Any
    ) -> None:
        self.wh.insert_rows(
            self.t("backfill_chunks"),
            [
                {
                    "backfill_id": backfill_id,
                    "model": chunk["model"],
                    "chunk_no": chunk["chunk_no"],
                    "start_date": date.fromisoformat(chunk["start"]),
                    "end_date": date.fromisoformat(chunk["end"]),
                    "state": state,
                    "rows_before": f.get("rows_before"),
                    "rows_after": f.get("rows_after"),
                    "checksum_before": f.get("checksum_before"),
                    "checksum_after": f.get("checksum_after"),
                    "error": f.get("error"),
                    "updated_at": self._chunk_time(backfill_id),
                }
            ],
        )

    def _chunk_time(self, backfill_id: str) -> datetime:
        """UTC now, but always after the backfill's previous chunk record.

        The latest record of a chunk is its state, ordered by `updated_at`. A resume on a
        host whose clock is behind the killed run's (or after the clock stepped back) would
        otherwise write states that sort before the old ones, and a published chunk could
        look unfinished and be redone. So the time only moves forward per backfill (a
        hybrid logical clock); the lock keeps one process per backfill.
        """
        last = self._chunk_clock.get(backfill_id)
        if last is None:
            rows = self.wh.query(
                f"select max(updated_at) from {self.t('backfill_chunks')} where backfill_id = $id",
                {"id": backfill_id},
            )
            last = rows[0][0] if rows and rows[0][0] is not None else datetime.min
        now = max(utcnow(), last + timedelta(microseconds=1))
        self._chunk_clock[backfill_id] = now
        return now

    def chunk_states(self, backfill_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        """Latest state per (model, chunk_no)."""
        if not self.exists():
            return {}
        rows = self.wh.query(
            f"select {', '.join(CHUNK_FIELDS)} from {self.t('backfill_chunks')} "
            "where backfill_id = $id qualify row_number() over "
            "(partition by model, chunk_no order by updated_at desc) = 1",
            {"id": backfill_id},
        )
        out = {}
        for r in rows:
            row = dict(zip(CHUNK_FIELDS, r, strict=True))
            out[(row["model"], int(row["chunk_no"]))] = row
        return out

    def half_published(self, model: str | None = None) -> list[str]:
        """Backfills (of `model`, or any) with a chunk stopped halfway through a partition
        copy (`publish: partition_copy`): its partitions mix old and new rows until it is
        resumed or rolled back."""
        if not self.exists():
            return []
        of_model = "model = $model" if model is not None else "true"
        rows = self.wh.query(
            f"select distinct backfill_id from (select backfill_id, state from "
            f"{self.t('backfill_chunks')} where {of_model} "
            "qualify row_number() over (partition by backfill_id, model, chunk_no "
            "order by updated_at desc) = 1) as latest where state = 'publishing' order by 1",
            {"model": model} if model is not None else None,
        )
        return [str(r[0]) for r in rows]

    def chunk_rows(self, backfill_id: str) -> list[dict[str, Any]]:
        rows = self.wh.query(
            f"select {', '.join(CHUNK_FIELDS)} from {self.t('backfill_chunks')} "
            "where backfill_id = $id order by updated_at, chunk_no",
            {"id": backfill_id},
        )
        return [dict(zip(CHUNK_FIELDS, r, strict=True)) for r in rows]

    def record_partitions(
        self,
        backfill_id: str,
        model: str,
        chunk_no: int,
        phase: str,
        stats: Sequence[tuple[date, int, str]],
    ) -> None:
        now = utcnow()
        self.wh.insert_rows(
            self.t("partition_checksums"),
            [
                {
                    "backfill_id": backfill_id,
                    "model": model,
                    "chunk_no": chunk_no,
                    "partition_date": partition,
                    "phase": phase,
                    "row_count": rows,
                    "checksum": checksum,
                    "recorded_at": now,
                }
                for partition, rows, checksum in stats
            ],
        )

    def partitions(self, backfill_id: str, phase: str) -> dict[tuple[str, date], tuple[int, str]]:
        rows = self.wh.query(
            f"select model, partition_date, row_count, checksum "
            f"from {self.t('partition_checksums')} where backfill_id = $id and phase = $phase "
            "qualify row_number() over (partition by model, partition_date "
            "order by recorded_at desc) = 1",
            {"id": backfill_id, "phase": phase},
        )
        return {(r[0], r[1]): (int(r[2]), str(r[3])) for r in rows}

    def record_validation(
        self, backfill_id: str, model: str, chunk_no: int, results: Sequence[Mapping[str, Any]]
    ) -> None:
        now = utcnow()
        self.wh.insert_rows(
            self.t("validation_reports"),
            [
                {
                    "backfill_id": backfill_id,
                    "model": model,
                    "chunk_no": chunk_no,
                    "check_name": r["check"],
                    "partition_value": r["partition"],
                    "observed": r["observed"],
                    "expected": r["expected"],
                    "passed": r["passed"],
                    "recorded_at": now,
                }
                for r in results
            ],
        )

    # -- approvals and dry runs ----------------------------------------------------------
    def record_dry_run(
        self,
        backfill_id: str,
        fingerprint: str,
        ok: bool,
        estimates: Any,
        compiled_dir: str,
        error: str | None = None,
    ) -> None:
        self.wh.insert_rows(
            self.t("dry_runs"),
            [
                {
                    "backfill_id": backfill_id,
                    "fingerprint": fingerprint,
                    "ok": ok,
                    "estimates": json.dumps(estimates, default=str),
                    "compiled_dir": compiled_dir,
                    "error": error,
                    "created_at": utcnow(),
                }
            ],
        )

    def has_ok_dry_run(self, backfill_id: str, fingerprint: str) -> bool:
        if not self.exists():
            return False
        rows = self.wh.query(
            f"select 1 from {self.t('dry_runs')} "
            "where backfill_id = $id and fingerprint = $fp and ok",
            {"id": backfill_id, "fp": fingerprint},
        )
        return bool(rows)

    def approval(self, backfill_id: str) -> dict[str, Any] | None:
        if not self.exists():
            return None
        rows = self.wh.query(
            f"select approver, fingerprint, comment, approved_at from {self.t('approvals')} "
            "where backfill_id = $id order by approved_at desc limit 1",
            {"id": backfill_id},
        )
        if not rows:
            return None
        approver, fp, comment, at = rows[0]
        return {"approver": approver, "fingerprint": fp, "comment": comment, "approved_at": at}

    def record_approval(
        self, backfill_id: str, approver: str, fingerprint: str, comment: str
    ) -> None:
        self.wh.insert_rows(
            self.t("approvals"),
            [
                {
                    "backfill_id": backfill_id,
                    "approver": approver,
                    "fingerprint": fingerprint,
                    "comment": comment,
                    "approved_at": utcnow(),
                }
            ],
        )
