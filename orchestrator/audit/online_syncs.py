"""Online store syncs: what a published (or rolled back) chunk pushed to the online store.

One row per attempt; the latest row (highest `attempt`) of a `sync_id` is its state:
`pending` (recorded with the publish, or the store was unreachable), `synced`, or
`failed` (the store refused the writes). `backfill sync MODEL` retries the pending and
failed ones. This module is the only code that reads or writes `online_syncs`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from orchestrator.audit.tables import SCHEMA, utcnow
from orchestrator.warehouse.base import Warehouse

TABLES = {
    "online_syncs": [
        ("sync_id", "string"),
        ("model", "string"),
        ("store", "string"),
        ("kind", "string"),
        ("version_id", "string"),
        ("backfill_id", "string"),
        ("chunk_no", "int"),
        ("partition_start", "date"),
        ("partition_end", "date"),
        ("partitions", "string"),
        ("status", "string"),
        ("attempt", "int"),
        ("keys_upserted", "int"),
        ("keys_deleted", "int"),
        ("keys_unchanged", "int"),
        ("keys_total", "int"),
        ("error", "string"),
        ("recorded_at", "timestamp"),
    ],
}
FIELDS = [name for name, _ in TABLES["online_syncs"]]
STATUSES = ("synced", "pending", "failed")
KINDS = ("publish", "rollback")
# The error column keeps the first line of an error, cut to this length.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class SyncRecord:
    """One row of `online_syncs`."""

    sync_id: str
    model: str
    store: str
    kind: str
    version_id: str
    backfill_id: str | None
    chunk_no: int | None
    partitions: tuple[date, ...]
    status: str
    attempt: int
    keys_upserted: int
    keys_deleted: int
    keys_unchanged: int
    keys_total: int
    error: str | None
    recorded_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync_id": self.sync_id,
            "model": self.model,
            "store": self.store,
            "kind": self.kind,
            "version_id": self.version_id,
            "backfill_id": self.backfill_id,
            "chunk_no": self.chunk_no,
            "partitions": [d.isoformat() for d in self.partitions],
            "status": self.status,
            "attempt": self.attempt,
            "keys_upserted": self.keys_upserted,
            "keys_deleted": self.keys_deleted,
            "keys_unchanged": self.keys_unchanged,
            "keys_total": self.keys_total,
            "error": self.error,
            "recorded_at": self.recorded_at.isoformat(),
        }


def first_line(error: BaseException | str | None) -> str | None:
    """The error's first line (its type's name when it has no text), cut to MAX_ERROR_CHARS."""
    if error is None:
        return None
    text = str(error).strip()
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    line = text.splitlines()[0] if text else ""
    return line[:MAX_ERROR_CHARS]


class OnlineSyncs:
    """The `online_syncs` table of one warehouse."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.wh = warehouse
        self._ready = False  # ensure() made the table
        self._seen = False  # the table exists

    @property
    def table(self) -> str:
        return f"{SCHEMA}.online_syncs"

    def ensure(self) -> None:
        """Create the schema and table (on paths that write; not inside a transaction:
        BigQuery runs no DDL there)."""
        if self._ready:
            return
        self.wh.ensure_schema(SCHEMA)
        for table, columns in TABLES.items():
            self.wh.create_table_if_missing(f"{SCHEMA}.{table}", columns)
        self._ready = self._seen = True

    def exists(self) -> bool:
        if not self._seen:
            self._seen = self.wh.relation_exists(self.table)
        return self._seen

    def record(
        self,
        model: str,
        version_id: str,
        backfill_id: str | None,
        partitions: Sequence[date],
        keys_upserted: int,
        keys_deleted: int,
        status: str,
        error: BaseException | str | None,
        *,
        sync_id: str,
        store: str = "redis",
        kind: str = "publish",
        chunk_no: int | None = None,
        keys_unchanged: int = 0,
        keys_total: int = 0,
    ) -> SyncRecord:
        """Append the sync's next attempt (its latest row is its state) and return it."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        days = tuple(sorted(set(partitions)))
        if not days:
            raise ValueError(f"sync {sync_id} names no partition")
        previous = self.latest(sync_id)
        row = SyncRecord(
            sync_id=sync_id,
            model=model,
            store=store,
            kind=kind,
            version_id=version_id,
            backfill_id=backfill_id,
            chunk_no=chunk_no,
            partitions=days,
            status=status,
            attempt=previous.attempt + 1 if previous else 0,
            keys_upserted=keys_upserted,
            keys_deleted=keys_deleted,
            keys_unchanged=keys_unchanged,
            keys_total=keys_total,
            error=first_line(error),
            recorded_at=utcnow(),
        )
        self.wh.insert_rows(
            self.table,
            [
                {
                    "sync_id": row.sync_id,
                    "model": row.model,
                    "store": row.store,
                    "kind": row.kind,
                    "version_id": row.version_id,
                    "backfill_id": row.backfill_id,
                    "chunk_no": row.chunk_no,
                    "partition_start": days[0],
                    "partition_end": days[-1],
                    "partitions": json.dumps([d.isoformat() for d in days]),
                    "status": row.status,
                    "attempt": row.attempt,
                    "keys_upserted": row.keys_upserted,
                    "keys_deleted": row.keys_deleted,
                    "keys_unchanged": row.keys_unchanged,
                    "keys_total": row.keys_total,
                    "error": row.error,
                    "recorded_at": row.recorded_at,
                }
            ],
        )
        self._seen = True
        return row

    def latest(self, sync_id: str) -> SyncRecord | None:
        """The sync's state (its latest attempt), or None when it was never recorded."""
        rows = self._latest("where sync_id = $id", {"id": sync_id})
        return rows[0] if rows else None

    def pending(self, model: str | None = None) -> list[SyncRecord]:
        """Syncs (of `model`, or of every model) not done yet, pending or failed, oldest first."""
        return [
            r for r in self._latest(*_of_model(model), order="first_at") if r.status != "synced"
        ]

    def history(self, model: str | None = None, limit: int = 50) -> list[SyncRecord]:
        """The latest state of each sync, newest first."""
        return self._latest(*_of_model(model), order="recorded_at desc", limit=limit)

    def attempts(self, sync_id: str) -> list[SyncRecord]:
        """Every attempt of one sync, first first."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(FIELDS)} from {self.table} where sync_id = $id order by attempt",
            {"id": sync_id},
        )
        return [_record(r) for r in rows]

    def _latest(
        self,
        where: str,
        params: dict[str, Any],
        *,
        order: str = "recorded_at desc",
        limit: int = 10_000,
    ) -> list[SyncRecord]:
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(FIELDS)}, "
            "min(recorded_at) over (partition by sync_id) as first_at "
            f"from {self.table} {where} "
            "qualify row_number() over (partition by sync_id order by attempt desc) = 1 "
            f"order by {order}, sync_id limit {int(limit)}",
            params,
        )
        return [_record(r[: len(FIELDS)]) for r in rows]


def _of_model(model: str | None) -> tuple[str, dict[str, Any]]:
    # BigQuery's QUALIFY wants a WHERE beside it.
    return ("where model = $model", {"model": model}) if model is not None else ("where true", {})


def _record(row: Sequence[Any]) -> SyncRecord:
    r = dict(zip(FIELDS, row, strict=True))
    return SyncRecord(
        sync_id=str(r["sync_id"]),
        model=str(r["model"]),
        store=str(r["store"]),
        kind=str(r["kind"]),
        version_id=str(r["version_id"]),
        backfill_id=r["backfill_id"],
        chunk_no=None if r["chunk_no"] is None else int(r["chunk_no"]),
        partitions=tuple(date.fromisoformat(d) for d in json.loads(r["partitions"])),
        status=str(r["status"]),
        attempt=int(r["attempt"]),
        keys_upserted=int(r["keys_upserted"] or 0),
        keys_deleted=int(r["keys_deleted"] or 0),
        keys_unchanged=int(r["keys_unchanged"] or 0),
        keys_total=int(r["keys_total"] or 0),
        error=r["error"],
        recorded_at=r["recorded_at"],
    )
