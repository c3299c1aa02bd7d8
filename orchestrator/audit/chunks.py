"""Chunks and what was measured of them: step states, partition checksums, validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from orchestrator.audit.tables import Family, Tables, utcnow
from orchestrator.plan import Chunk

TABLES = {
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
}

CHUNK_FIELDS = [name for name, _ in TABLES["backfill_chunks"]]
EVENT_FIELDS = [
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


@dataclass(frozen=True)
class ChunkState:
    """A chunk's latest record: the step it reached and what it measured."""

    backfill_id: str
    model: str
    chunk_no: int
    start_date: date
    end_date: date
    state: str
    rows_before: int | None
    rows_after: int | None
    checksum_before: str | None
    checksum_after: str | None
    error: str | None
    updated_at: datetime

    @property
    def chunk(self) -> Chunk:
        return Chunk(self.model, self.chunk_no, self.start_date, self.end_date)


class ChunkRecords(Family):
    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self._clock: dict[str, datetime] = {}  # backfill_id -> its last chunk record time

    def record(self, backfill_id: str, chunk: Chunk, state: str, **f: Any) -> None:
        self.wh.insert_rows(
            self.t("backfill_chunks"),
            [
                {
                    "backfill_id": backfill_id,
                    "model": chunk.model,
                    "chunk_no": chunk.chunk_no,
                    "start_date": chunk.start,
                    "end_date": chunk.end,
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
        last = self._clock.get(backfill_id)
        if last is None:
            rows = self.wh.query(
                f"select max(updated_at) from {self.t('backfill_chunks')} where backfill_id = $id",
                {"id": backfill_id},
            )
            last = rows[0][0] if rows and rows[0][0] is not None else datetime.min
        now = max(utcnow(), last + timedelta(microseconds=1))
        self._clock[backfill_id] = now
        return now

    def states(self, backfill_id: str) -> dict[tuple[str, int], ChunkState]:
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
            state = ChunkState(**dict(zip(CHUNK_FIELDS, r, strict=True)))
            out[(state.model, int(state.chunk_no))] = state
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

    def ever_published(self) -> set[tuple[str, str, int]]:
        """(backfill_id, model, chunk_no) of every chunk that was published at some point."""
        rows = self.wh.query(
            f"select backfill_id, model, chunk_no from {self.t('backfill_chunks')} "
            "where state = 'published'"
        )
        return {(str(r[0]), str(r[1]), int(r[2])) for r in rows}

    # -- partition checksums -------------------------------------------------------------
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

    def published_later(self, model: str, backfill_id: str, start: date, end: date) -> list[str]:
        """Other backfills that published partitions of `model` in [start, end] after
        `backfill_id` last wrote them."""
        rows = self.wh.query(
            f"select distinct backfill_id from {self.t('partition_checksums')} "
            "where model = $m and phase = 'after' and backfill_id <> $id "
            "and partition_date between $s and $e and recorded_at > ("
            f"select max(recorded_at) from {self.t('partition_checksums')} "
            "where backfill_id = $id and phase in ('after', 'staged')) order by 1",
            {"m": model, "id": backfill_id, "s": start, "e": end},
        )
        return [str(r[0]) for r in rows]

    # -- validation ----------------------------------------------------------------------
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

    def validation_results(self, backfill_id: str) -> list[dict[str, Any]]:
        """Every check of each chunk's latest validation, failed ones first."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select model, chunk_no, check_name, partition_value, observed, expected, passed "
            f"from {self.t('validation_reports')} where backfill_id = $id "
            "qualify recorded_at = max(recorded_at) over (partition by model, chunk_no) "
            "order by passed, model, chunk_no, check_name, partition_value",
            {"id": backfill_id},
        )
        keys = ["model", "chunk_no", "check", "partition", "observed", "expected", "passed"]
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def events(self, backfill_id: str) -> list[dict[str, Any]]:
        """Every state a chunk of the backfill recorded, in order, per model and chunk."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(EVENT_FIELDS)} from {self.t('backfill_chunks')} "
            "where backfill_id = $id order by model, chunk_no, updated_at",
            {"id": backfill_id},
        )
        return [dict(zip(EVENT_FIELDS, r, strict=True)) for r in rows]

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
