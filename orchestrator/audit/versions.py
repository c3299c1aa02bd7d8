"""Dataset versions, their partition-level deltas, and immutable snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from orchestrator.audit.tables import Family, utcnow
from orchestrator.warehouse.base import PartitionStats

TABLES = {
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
}

WRITER_FIELDS = [
    "partition_date",
    "version_no",
    "version_id",
    "kind",
    "created_by_backfill",
    "created_at",
    "rows_after",
]
VERSION_LIST_FIELDS = [
    "version_no",
    "version_id",
    "parent_version",
    "kind",
    "created_by_backfill",
    "created_at",
    "fingerprint",
    "description",
    "partitions",
    "first_partition",
    "last_partition",
    "row_change",
]


@dataclass(frozen=True)
class VersionRef:
    version_id: str
    version_no: int


class VersionRecords(Family):
    def version_for(
        self, dataset: str, backfill_id: str, kind: str, fingerprint: str, description: str
    ) -> VersionRef:
        """The version a backfill's publishes add to, created with its first publish."""
        rows = self.wh.query(
            f"select version_id, version_no from {self.t('dataset_versions')} "
            "where dataset = $d and created_by_backfill = $b and kind = $k",
            {"d": dataset, "b": backfill_id, "k": kind},
        )
        if rows:
            return VersionRef(str(rows[0][0]), int(rows[0][1]))
        latest = self.wh.query(
            f"select version_id, version_no from {self.t('dataset_versions')} "
            "where dataset = $d order by version_no desc limit 1",
            {"d": dataset},
        )
        number = int(latest[0][1]) + 1 if latest else 1
        ref = VersionRef(f"{dataset}@{number}", number)
        self.wh.insert_rows(
            self.t("dataset_versions"),
            [
                {
                    "version_id": ref.version_id,
                    "dataset": dataset,
                    "version_no": number,
                    "parent_version": str(latest[0][0]) if latest else f"{dataset}@0",
                    "created_by_backfill": backfill_id,
                    "kind": kind,
                    "created_at": utcnow(),
                    "fingerprint": fingerprint,
                    "description": description,
                }
            ],
        )
        return ref

    def record_deltas(
        self,
        ref: VersionRef,
        dataset: str,
        start: date,
        end: date,
        before: dict[date, PartitionStats],
        after: dict[date, PartitionStats],
        backup_relation: str,
    ) -> None:
        """One delta per replaced day partition (empty before or after counts as 0 rows)."""
        rows = []
        day = start
        while day <= end:
            b, a = before.get(day), after.get(day)
            rows.append(
                {
                    "version_id": ref.version_id,
                    "dataset": dataset,
                    "partition_date": day,
                    "rows_before": b.rows if b else 0,
                    "rows_after": a.rows if a else 0,
                    "checksum_before": b.checksum if b else "0",
                    "checksum_after": a.checksum if a else "0",
                    "backup_relation": backup_relation,
                }
            )
            day += timedelta(days=1)
        self.wh.insert_rows(self.t("dataset_deltas"), rows)

    def list_versions(self, dataset: str) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select v.version_no, v.version_id, v.parent_version, v.kind, "
            f"v.created_by_backfill, v.created_at, v.fingerprint, v.description, "
            f"count(d.partition_date), min(d.partition_date), max(d.partition_date), "
            f"coalesce(sum(d.rows_after), 0) - coalesce(sum(d.rows_before), 0) "
            f"from {self.t('dataset_versions')} v left join {self.t('dataset_deltas')} d "
            "using (version_id) where v.dataset = $d group by all order by v.version_no",
            {"d": dataset},
        )
        return [dict(zip(VERSION_LIST_FIELDS, r, strict=True)) for r in rows]

    def replaced_after(self, dataset: str, version_no: int) -> list[tuple[date, str]]:
        """(partition, backup) of every partition a version after `version_no` replaced,
        each with the backup of the first such version (it holds the partition as it was)."""
        rows = self.wh.query(
            f"select d.partition_date, d.backup_relation from {self.t('dataset_deltas')} d "
            f"join {self.t('dataset_versions')} v using (version_id) "
            "where v.dataset = $d and v.version_no > $n "
            "qualify row_number() over (partition by d.partition_date order by v.version_no) = 1",
            {"d": dataset, "n": version_no},
        )
        return [(r[0], str(r[1])) for r in rows]

    def backups_needed_since(self, cutoff: datetime) -> set[str]:
        """Backups that a version created at or after `cutoff` points at."""
        rows = self.wh.query(
            f"select distinct d.backup_relation from {self.t('dataset_deltas')} d "
            f"join {self.t('dataset_versions')} v using (version_id) where v.created_at >= $c",
            {"c": cutoff},
        )
        return {str(r[0]) for r in rows}

    def record_snapshot(
        self,
        dataset: str,
        tag: str,
        relation: str,
        version_no: int,
        row_count: int,
        checksum: str,
        model_run_id: str | None,
        created_by: str,
    ) -> None:
        self.wh.insert_rows(
            self.t("dataset_snapshots"),
            [
                {
                    "dataset": dataset,
                    "tag": tag,
                    "relation": relation,
                    "version_no": version_no,
                    "row_count": row_count,
                    "checksum": checksum,
                    "model_run_id": model_run_id,
                    "created_by": created_by,
                    "created_at": utcnow(),
                }
            ],
        )

    def created_by(self, backfill_id: str) -> list[dict[str, Any]]:
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
