"""Lock claims and lock events (the rules of taking and clearing are in orchestrator.lock)."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from orchestrator.audit.tables import Family, utcnow

TABLES = {
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


class LockRecords(Family):
    def claims(self, model: str) -> list[tuple[Any, ...]]:
        """(model, backfill_id, holder, pid, host, acquired_at), earliest claim first."""
        if not self.exists():
            return []
        return self.wh.query(
            f"select model, backfill_id, holder, pid, host, acquired_at "
            f"from {self.t('locks')} where model = $m "
            "order by acquired_at, backfill_id, host, pid",
            {"m": model},
        )

    def claim(
        self,
        model: str,
        backfill_id: str,
        holder: str,
        *,
        pid: int | None = None,
        host: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """A claim by this process (or, for tests of races, by the one named)."""
        self.wh.insert_rows(
            self.t("locks"),
            [
                {
                    "model": model,
                    "backfill_id": backfill_id,
                    "holder": holder,
                    "pid": os.getpid() if pid is None else pid,
                    "host": host or socket.gethostname(),
                    "acquired_at": at or utcnow(),
                }
            ],
        )

    def delete(self, model: str, backfill_id: str, pid: int, host: str) -> None:
        self.wh.execute(
            f"delete from {self.t('locks')} where model = $m and backfill_id = $b "
            "and pid = $p and host = $h",
            {"m": model, "b": backfill_id, "p": pid, "h": host},
        )

    def event(
        self, model: str, backfill_id: str, action: str, actor: str, reason: str | None
    ) -> None:
        self.wh.insert_rows(
            self.t("lock_events"),
            [
                {
                    "model": model,
                    "backfill_id": backfill_id,
                    "action": action,
                    "actor": actor,
                    "reason": reason,
                    "recorded_at": utcnow(),
                }
            ],
        )
