"""Per-model backfill locks: one row per locked model in the audit store.

A lock names its backfill, holder, process and host. A lock whose process is gone
(same host, pid not running) is stale: the same backfill takes it over when it
resumes; anyone else must clear it with `backfill unlock`, which is audited.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from orchestrator.audit import AuditStore, utcnow
from orchestrator.errors import BadInput, LockHeld


@dataclass(frozen=True)
class Lock:
    model: str
    backfill_id: str
    holder: str
    pid: int
    host: str
    acquired_at: datetime

    @property
    def is_stale(self) -> bool:
        if self.host != socket.gethostname():
            return False  # cannot see another host's processes: assume it is alive
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self) -> str:
        text = (
            f"{self.model} is locked by backfill {self.backfill_id} "
            f"(started {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC by {self.holder})"
        )
        if self.is_stale:
            text += (
                f"; the lock is stale (process {self.pid} on {self.host} is gone): "
                f"clear it with `backfill unlock {self.model} --requested-by NAME`"
            )
        return text


class Locks:
    def __init__(self, audit: AuditStore) -> None:
        self.audit = audit
        self.wh = audit.wh

    def get(self, model: str) -> Lock | None:
        if not self.audit.exists():
            return None
        rows = self.wh.query(
            f"select model, backfill_id, holder, pid, host, acquired_at "
            f"from {self.audit.t('locks')} where model = $m",
            {"m": model},
        )
        return Lock(*rows[0]) if rows else None

    def check_free(self, model: str, backfill_id: str) -> None:
        """Fail fast (before any write) when another backfill holds the model."""
        lock = self.get(model)
        if lock is not None and not (lock.backfill_id == backfill_id and lock.is_stale):
            raise LockHeld(lock.describe())

    def acquire(self, model: str, backfill_id: str, holder: str) -> None:
        with self.wh.transaction():
            lock = self.get(model)
            if lock is not None:
                if lock.backfill_id == backfill_id and lock.is_stale:
                    self._delete(model)
                    self._event(model, backfill_id, "taken_over", holder, f"stale pid {lock.pid}")
                else:
                    raise LockHeld(lock.describe())
            self.wh.insert_rows(
                self.audit.t("locks"),
                [
                    {
                        "model": model,
                        "backfill_id": backfill_id,
                        "holder": holder,
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "acquired_at": utcnow(),
                    }
                ],
            )
            self._event(model, backfill_id, "acquired", holder, None)

    def release(self, model: str, backfill_id: str, actor: str) -> None:
        with self.wh.transaction():
            lock = self.get(model)
            if lock is not None and lock.backfill_id == backfill_id:
                self._delete(model)
                self._event(model, backfill_id, "released", actor, None)

    def clear(self, model: str, actor: str, reason: str) -> Lock:
        """`backfill unlock`: remove a stale lock, recording who and why."""
        lock = self.get(model)
        if lock is None:
            raise BadInput(f"{model} is not locked")
        if not lock.is_stale:
            raise BadInput(
                f"{model} is locked by backfill {lock.backfill_id} whose process {lock.pid} "
                f"on {lock.host} is still running; only a stale lock can be cleared"
            )
        with self.wh.transaction():
            self._delete(model)
            self._event(model, lock.backfill_id, "cleared", actor, reason or "stale lock")
        return lock

    def _delete(self, model: str) -> None:
        self.wh.execute(f"delete from {self.audit.t('locks')} where model = $m", {"m": model})

    def _event(
        self, model: str, backfill_id: str, action: str, actor: str, reason: str | None
    ) -> None:
        self.wh.insert_rows(
            self.audit.t("lock_events"),
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
