"""What the HTML reports read that no other family offers: a backfill's whole chunk history,
its validation results, approvals, dry runs, lineage and versions, and which version last
wrote each partition of a model.

This family owns no table (`TABLES` is empty) and only reads: every row it returns was
written by the family that owns its table (plans, chunks, versions, lineage).
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.audit.tables import Columns, Family

TABLES: dict[str, Columns] = {}

CHUNK_EVENT_FIELDS = [
    "model",
    "chunk_no",
    "start_date",
    "end_date",
    "state",
    "rows_before",
    "rows_after",
    "error",
    "updated_at",
]
CHECK_FIELDS = [
    "model",
    "chunk_no",
    "check_name",
    "partition_value",
    "observed",
    "expected",
    "passed",
    "recorded_at",
]
LINEAGE_FIELDS = [
    "run_id",
    "output_relation",
    "partition_start",
    "partition_end",
    "input_relations",
    "git_commit",
    "config_hash",
    "dbt_invocation_id",
    "produced_at",
]
WRITER_FIELDS = [
    "partition_date",
    "version_no",
    "version_id",
    "kind",
    "created_by_backfill",
    "created_at",
    "rows_after",
]


class ReportReads(Family):
    """Read-only queries for `orchestrator.report`; it never writes."""

    def chunk_events(self, backfill_id: str) -> list[dict[str, Any]]:
        """Every state a chunk of the backfill recorded, in order, per model and chunk."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(CHUNK_EVENT_FIELDS)} from {self.t('backfill_chunks')} "
            "where backfill_id = $id order by model, chunk_no, updated_at",
            {"id": backfill_id},
        )
        return [dict(zip(CHUNK_EVENT_FIELDS, r, strict=True)) for r in rows]

    def validation(self, backfill_id: str) -> list[dict[str, Any]]:
        """Each chunk's latest validation (one `recorded_at` per attempt), every check."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(CHECK_FIELDS)} from {self.t('validation_reports')} "
            "where backfill_id = $id "
            "qualify recorded_at = max(recorded_at) over (partition by model, chunk_no) "
            "order by model, chunk_no, check_name, partition_value",
            {"id": backfill_id},
        )
        return [dict(zip(CHECK_FIELDS, r, strict=True)) for r in rows]

    def approvals(self, backfill_id: str) -> list[dict[str, Any]]:
        """Every approval of the backfill, oldest first."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select approver, fingerprint, comment, approved_at from {self.t('approvals')} "
            "where backfill_id = $id order by approved_at",
            {"id": backfill_id},
        )
        fields = ("approver", "fingerprint", "comment", "approved_at")
        return [dict(zip(fields, r, strict=True)) for r in rows]

    def dry_runs(self, backfill_id: str) -> list[dict[str, Any]]:
        """Every dry run of the backfill, oldest first, estimates decoded."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select fingerprint, ok, estimates, error, created_at from {self.t('dry_runs')} "
            "where backfill_id = $id order by created_at",
            {"id": backfill_id},
        )
        return [
            {
                "fingerprint": r[0],
                "ok": bool(r[1]),
                "estimates": json.loads(r[2]) if r[2] else None,
                "error": r[3],
                "created_at": r[4],
            }
            for r in rows
        ]

    def lineage(self, backfill_id: str) -> list[dict[str, Any]]:
        """The lineage row of every chunk the backfill published, inputs decoded."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(LINEAGE_FIELDS)} from {self.t('lineage')} "
            "where backfill_id = $id order by output_relation, partition_start, produced_at",
            {"id": backfill_id},
        )
        out = []
        for r in rows:
            row = dict(zip(LINEAGE_FIELDS, r, strict=True))
            row["input_relations"] = json.loads(row["input_relations"] or "[]")
            out.append(row)
        return out

    def versions(self, backfill_id: str) -> list[dict[str, Any]]:
        """The dataset versions the backfill (and a rollback of it) created."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select version_id, dataset, version_no, kind, created_at "
            f"from {self.t('dataset_versions')} where created_by_backfill = $id "
            "order by created_at, dataset",
            {"id": backfill_id},
        )
        fields = ("version_id", "dataset", "version_no", "kind", "created_at")
        return [dict(zip(fields, r, strict=True)) for r in rows]

    def last_writers(self, dataset: str) -> list[dict[str, Any]]:
        """Per partition of the dataset, the latest version that replaced it."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select d.partition_date, v.version_no, v.version_id, v.kind, "
            f"v.created_by_backfill, v.created_at, d.rows_after "
            f"from {self.t('dataset_deltas')} d join {self.t('dataset_versions')} v "
            "using (version_id) where v.dataset = $d "
            "qualify row_number() over (partition by d.partition_date "
            "order by v.version_no desc) = 1 order by d.partition_date",
            {"d": dataset},
        )
        return [dict(zip(WRITER_FIELDS, r, strict=True)) for r in rows]
