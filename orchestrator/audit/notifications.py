"""Notification records: every webhook message a backfill tried to send, sent or failed.

One row per attempt, appended; a failed send is recorded like a sent one, so an auditor
can tell who was told what, and when nobody was. This module is the only code that reads
or writes `notifications`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.audit.tables import Family, utcnow

TABLES = {
    "notifications": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("event", "string"),
        ("target", "string"),  # the webhook URL with its secrets redacted
        ("status", "string"),  # sent | failed
        ("http_status", "int"),  # None when no answer came (connection refused, timeout)
        ("error", "string"),
        ("payload", "string"),  # the JSON body, as sent (or as it would have been)
        ("sent_at", "timestamp"),
    ],
}
FIELDS = [name for name, _ in TABLES["notifications"]]
STATUSES = ("sent", "failed")


@dataclass(frozen=True)
class NotificationRecord:
    """One row of `notifications`."""

    backfill_id: str
    model: str
    event: str
    target: str
    status: str
    http_status: int | None
    error: str | None
    payload: dict[str, Any]
    sent_at: datetime


class NotificationRecords(Family):
    def record(
        self,
        backfill_id: str,
        model: str,
        event: str,
        target: str,
        status: str,
        payload: dict[str, Any],
        *,
        http_status: int | None = None,
        error: str | None = None,
    ) -> NotificationRecord:
        """Append one attempt and return it."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        row = NotificationRecord(
            backfill_id, model, event, target, status, http_status, error, payload, utcnow()
        )
        # A notification may be a command's first write to a warehouse made before this
        # table existed; ensure() is a no-op once the store's tables are known to be there.
        self._tables.ensure()
        self.wh.insert_rows(
            self.t("notifications"),
            [
                {
                    "backfill_id": row.backfill_id,
                    "model": row.model,
                    "event": row.event,
                    "target": row.target,
                    "status": row.status,
                    "http_status": row.http_status,
                    "error": row.error,
                    "payload": json.dumps(row.payload, ensure_ascii=False),
                    "sent_at": row.sent_at,
                }
            ],
        )
        return row

    def for_backfill(self, backfill_id: str) -> list[NotificationRecord]:
        """Every attempt for one backfill, oldest first."""
        if not self.exists() or not self.wh.relation_exists(self.t("notifications")):
            return []
        rows = self.wh.query(
            f"select {', '.join(FIELDS)} from {self.t('notifications')} "
            "where backfill_id = $id order by sent_at",
            {"id": backfill_id},
        )
        out = []
        for r in rows:
            row = dict(zip(FIELDS, r, strict=True))
            row["payload"] = json.loads(row["payload"])
            out.append(NotificationRecord(**row))
        return out
