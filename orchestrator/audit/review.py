"""Reads for the monthly review (`backfill review`): it owns no table of its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from orchestrator.audit.tables import Family

TABLES: dict[str, list[tuple[str, str]]] = {}


class ReviewReads(Family):
    def backfills_since(self, since: datetime) -> list[dict[str, Any]]:
        """Every backfill planned since `since`: its model, category and how it ended."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"""
            select p.backfill_id, p.model, coalesce(p.category, 'other'), l.status,
                   l.started_at, l.completed_at, p.created_at
            from {self.t("plans")} p
            join (
                select backfill_id, status, started_at, completed_at
                from {self.t("backfill_log")}
                qualify row_number() over (partition by backfill_id order by event_no desc) = 1
            ) l on l.backfill_id = p.backfill_id
            where p.created_at >= $since
            order by p.created_at
            """,
            {"since": since},
        )
        keys = ["backfill_id", "model", "category", "status", "started_at", "completed_at"]
        return [dict(zip([*keys, "created_at"], r, strict=True)) for r in rows]

    def partitions_written(
        self, backfill_ids: Sequence[str]
    ) -> list[tuple[str, str, date, int, str, int, str]]:
        """(backfill, model, partition, rows before, checksum before, rows after, checksum
        after) of every partition the backfills published."""
        if not backfill_ids:
            return []
        listed = ", ".join(f"'{b}'" for b in backfill_ids)  # ids are checked bf_ hex strings
        rows = self.wh.query(
            f"""
            select a.backfill_id, a.model, a.partition_date,
                   coalesce(b.row_count, 0), coalesce(b.checksum, '0'), a.row_count, a.checksum
            from {self.t("partition_checksums")} a
            left join {self.t("partition_checksums")} b
              on b.backfill_id = a.backfill_id and b.model = a.model
             and b.partition_date = a.partition_date and b.phase = 'before'
            where a.phase = 'after' and a.backfill_id in ({listed})
            """
        )
        return [
            (str(r[0]), str(r[1]), r[2], int(r[3]), str(r[4]), int(r[5]), str(r[6])) for r in rows
        ]

    def failed_checks(self, backfill_ids: Sequence[str]) -> dict[str, int]:
        if not backfill_ids:
            return {}
        listed = ", ".join(f"'{b}'" for b in backfill_ids)
        rows = self.wh.query(
            f"select backfill_id, count(*) from {self.t('validation_reports')} "
            f"where not passed and backfill_id in ({listed}) group by 1"
        )
        return {str(r[0]): int(r[1]) for r in rows}
