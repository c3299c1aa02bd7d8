"""Per-model backfill locks: a row per claim of a model in the audit store.

A claim names its backfill, holder, process and host. A lock whose process is gone
(same host, pid not running) is stale: the same backfill takes it over when it resumes;
anyone else must clear it with `backfill unlock`, which is audited. A lock held from
another host cannot be checked from here; `backfill unlock --force --reason TEXT` clears
it (or any lock) when a person knows its process is gone, and records that they did.

Taking a lock is claim, then settle. On DuckDB one process writes the file and the check
and the claim share a transaction, so no two claims ever meet. BigQuery's transactions do
not serialise two appends, so two runs started together can both pass the check and both
insert a claim; settling (see `Locks._settle`) guarantees at most one of them keeps it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.audit import AuditStore
from orchestrator.context import Context
from orchestrator.errors import BadInput, LockHeld
from orchestrator.plan import check_identifier, check_reason

# How long the earlier of two racing claims waits for the later one to withdraw.
RACE_WAIT_SECONDS = 5.0
RACE_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Lock:
    model: str
    backfill_id: str
    holder: str
    pid: int
    host: str
    acquired_at: datetime

    @property
    def is_ours(self) -> bool:
        """Claimed by this very process (a second run of the same plan is not us)."""
        return self.pid == os.getpid() and self.host == socket.gethostname()

    @property
    def is_remote(self) -> bool:
        return self.host != socket.gethostname()

    @property
    def is_stale(self) -> bool:
        if self.is_remote:
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
        elif self.is_remote:
            text += f"; {self.remote_hint()}"
        return text

    def remote_hint(self) -> str:
        return (
            f"its process {self.pid} is on host {self.host}, which this machine cannot "
            f"check: if it is gone, clear the lock with `backfill unlock {self.model} "
            "--force --reason TEXT --requested-by NAME`"
        )


class Locks:
    def __init__(self, audit: AuditStore) -> None:
        self.audit = audit
        self.records = audit.locks
        self.wh = audit.wh

    def get(self, model: str) -> Lock | None:
        """The model's lock: its earliest claim (there is more than one only mid-race)."""
        claims = self._claims(model)
        return claims[0] if claims else None

    def is_interrupted(self, model: str, backfill_id: str) -> bool:
        """Whether a backfill logged `running` on `model` was killed: a run holds the lock
        from before it logs `running` until after it logs how it ended, so a running
        backfill without its lock, or whose lock is stale, has no process any more."""
        lock = self.get(model)
        return lock is None or lock.backfill_id != backfill_id or lock.is_stale

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
                    self._delete(lock)
                    self._event(model, backfill_id, "taken_over", holder, f"stale pid {lock.pid}")
                else:
                    raise LockHeld(lock.describe())
            self.records.claim(model, backfill_id, holder)
            self._event(model, backfill_id, "acquired", holder, None)
        self._settle(model, backfill_id, holder)

    def _settle(self, model: str, backfill_id: str, holder: str) -> None:
        """Keep the claim just committed only if no rival claim stands beside it.

        Every claimant reads the claims after committing its own. The later claim (by
        acquired_at, then backfill id) withdraws at once; the earlier one waits up to
        RACE_WAIT_SECONDS for the later to withdraw, and withdraws itself if it does not
        (the later one then saw no rival and runs). Two claims never both win: each
        winner's last read saw no rival, so each read came before the other's commit, yet
        each read also came after its own commit. Rarely both withdraw, and both runs
        fail with the lock error; neither writes anything.
        """
        deadline = time.monotonic() + RACE_WAIT_SECONDS
        while True:
            claims = self._claims(model)
            mine = next((c for c in claims if c.backfill_id == backfill_id and c.is_ours), None)
            rivals = [c for c in claims if c != mine]
            if mine is None:  # cleared by `unlock --force` between our claim and now
                raise LockHeld(rivals[0].describe() if rivals else f"{model} lock was cleared")
            if not rivals:
                return
            if claims[0] != mine or time.monotonic() >= deadline:
                with self.wh.transaction():
                    self._delete(mine)
                    self._event(
                        model,
                        backfill_id,
                        "withdrawn",
                        holder,
                        f"claimed at the same time as backfill {rivals[0].backfill_id}",
                    )
                raise LockHeld(rivals[0].describe())
            time.sleep(RACE_POLL_SECONDS)

    def release(self, model: str, backfill_id: str, actor: str) -> None:
        with self.wh.transaction():
            for claim in self._claims(model):
                if claim.backfill_id == backfill_id and claim.is_ours:
                    self._delete(claim)
                    self._event(model, backfill_id, "released", actor, None)

    def clear(self, model: str, actor: str, reason: str, *, force: bool = False) -> Lock:
        """`backfill unlock`: remove a stale lock (or, with force, any), recording who and why."""
        if force and not reason:
            raise BadInput("--force needs --reason: say why the lock's process is known to be gone")
        lock = self.get(model)
        if lock is None:
            raise BadInput(f"{model} is not locked")
        if not force and lock.is_remote:
            raise BadInput(
                f"{model} is locked by backfill {lock.backfill_id}; {lock.remote_hint()}"
            )
        if not force and not lock.is_stale:
            raise BadInput(
                f"{model} is locked by backfill {lock.backfill_id} whose process {lock.pid} "
                f"on {lock.host} is still running; only a stale lock can be cleared"
            )
        action = "cleared" if lock.is_stale else "forced"
        with self.wh.transaction():
            self._delete(lock)
            self._event(model, lock.backfill_id, action, actor, reason or "stale lock")
        return lock

    def _claims(self, model: str) -> list[Lock]:
        return [Lock(*row) for row in self.records.claims(model)]

    def _delete(self, lock: Lock) -> None:
        self.records.delete(lock.model, lock.backfill_id, lock.pid, lock.host)

    def _event(
        self, model: str, backfill_id: str, action: str, actor: str, reason: str | None
    ) -> None:
        self.records.event(model, backfill_id, action, actor, reason)


def unlock(
    ctx: Context, model: str, requested_by: str | None, reason: str | None, *, force: bool = False
) -> dict[str, Any]:
    """`backfill unlock`: clear a model's stale (or, forced, any) lock, recorded."""
    check_identifier(model)
    who = ctx.who(requested_by)
    lock = Locks(ctx.audit).clear(model, who, check_reason(reason), force=force)
    return {"model": model, "backfill_id": lock.backfill_id, "cleared_by": who}
