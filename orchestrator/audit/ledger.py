"""The build ledger: what every partition of every backfillable model was built from.

Two writers keep it true: the orchestrator's publish (inside its transaction) and dbt's
own runs (`macros/ledger/`, on-run-start and on-run-end), so an analyst's `dbt run` and
the scheduler's `dbt build` are recorded too. `backfill detect` reads it with the
findings it keeps about bronze batches it has already examined (a cursor per model), so
a detect reads only the bronze rows newer than its cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from orchestrator.audit.tables import Family, utcnow

TABLES = {
    "build_ledger": [
        ("model", "string"),
        ("partition_date", "date"),
        ("row_count", "int"),
        ("watermark", "string"),  # highest source batch visible when it was built
        ("code_fingerprint", "string"),
        ("writer", "string"),  # backfill | dbt
        ("writer_id", "string"),  # the backfill id or dbt's invocation id
        ("built_at", "timestamp"),
    ],
    # One row per dbt invocation: the watermark its models consumed (on-run-start).
    "ledger_runs": [
        ("invocation_id", "string"),
        ("source", "string"),
        ("watermark", "string"),
        ("started_at", "timestamp"),
    ],
    "detect_findings": [
        ("model", "string"),
        ("partition_date", "date"),
        ("kind", "string"),  # late (rows of a later batch) | missing (no partition)
        ("batch_id", "string"),
        ("row_count", "int"),
        ("detected_at", "timestamp"),
    ],
    "detect_cursor": [
        ("model", "string"),
        ("batch_id", "string"),  # every source batch up to this one is in the findings
        ("advanced_at", "timestamp"),
    ],
}


@dataclass(frozen=True)
class LedgerEntry:
    partition: date
    rows: int
    watermark: str | None
    code_fingerprint: str | None
    writer: str
    writer_id: str
    built_at: datetime


@dataclass(frozen=True)
class Finding:
    partition: date
    kind: str
    batch_id: str
    rows: int


class LedgerRecords(Family):
    def record(
        self,
        model: str,
        partitions: Sequence[tuple[date, int]],
        *,
        watermark: str | None,
        code_fingerprint: str,
        writer: str,
        writer_id: str,
    ) -> None:
        """One ledger row per partition written (an emptied partition has 0 rows)."""
        now = utcnow()
        self.wh.insert_rows(
            self.t("build_ledger"),
            [
                {
                    "model": model,
                    "partition_date": day,
                    "row_count": rows,
                    "watermark": watermark,
                    "code_fingerprint": code_fingerprint,
                    "writer": writer,
                    "writer_id": writer_id,
                    "built_at": now,
                }
                for day, rows in partitions
            ],
        )

    def latest(self, model: str) -> dict[date, LedgerEntry]:
        """The latest build of each partition of `model`."""
        if not self.exists():
            return {}
        rows = self.wh.query(
            f"select partition_date, row_count, watermark, code_fingerprint, writer, writer_id, "
            f"built_at from {self.t('build_ledger')} where model = $m "
            "qualify row_number() over (partition by partition_date order by built_at desc, "
            "coalesce(watermark, '') desc) = 1",
            {"m": model},
        )
        return {r[0]: LedgerEntry(r[0], int(r[1] or 0), *r[2:]) for r in rows}

    def newest_watermark(self, model: str) -> str | None:
        """The newest source batch any build of `model` has seen (a lower bound for the next)."""
        if not self.exists():
            return None
        rows = self.wh.query(
            f"select max(watermark) from {self.t('build_ledger')} where model = $m", {"m": model}
        )
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    # -- detect's memory -------------------------------------------------------------------
    def cursor(self, model: str) -> str | None:
        if not self.exists():
            return None
        rows = self.wh.query(
            f"select max(batch_id) from {self.t('detect_cursor')} where model = $m", {"m": model}
        )
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def advance(self, model: str, batch_id: str, findings: Sequence[Finding]) -> None:
        """Keep what a detect found in batches up to `batch_id`, and move its cursor."""
        now = utcnow()
        if findings:
            self.wh.insert_rows(
                self.t("detect_findings"),
                [
                    {
                        "model": model,
                        "partition_date": f.partition,
                        "kind": f.kind,
                        "batch_id": f.batch_id,
                        "row_count": f.rows,
                        "detected_at": now,
                    }
                    for f in findings
                ],
            )
        self.wh.insert_rows(
            self.t("detect_cursor"), [{"model": model, "batch_id": batch_id, "advanced_at": now}]
        )

    def findings(self, model: str) -> list[Finding]:
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select partition_date, kind, batch_id, sum(row_count) from "
            f"{self.t('detect_findings')} where model = $m group by 1, 2, 3 order by 1, 3",
            {"m": model},
        )
        return [Finding(r[0], str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def run_watermark(self, invocation_id: str, source: str) -> str | None:
        rows = self.wh.query(
            f"select max(watermark) from {self.t('ledger_runs')} "
            "where invocation_id = $i and source = $s",
            {"i": invocation_id, "s": source},
        )
        return None if not rows or rows[0][0] is None else str(rows[0][0])
