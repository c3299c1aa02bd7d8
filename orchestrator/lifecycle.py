"""The backfill lifecycle: its statuses and, in one table, what each status allows.

planned -> dry_run_ok -> approved -> running -> succeeded | failed | failed_validation,
and any run backfill -> rolled_back. Every command asks `require(action, status)` instead
of re-deriving the rule with guard clauses of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orchestrator.errors import BadInput


class Status(StrEnum):
    PLANNED = "planned"
    DRY_RUN_OK = "dry_run_ok"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    FAILED_VALIDATION = "failed_validation"
    ROLLED_BACK = "rolled_back"
    # Shown, never recorded: a `running` backfill whose process is gone.
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        """A run that ended: its log event carries `completed_at`."""
        return self in TERMINAL


TERMINAL = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.FAILED_VALIDATION, Status.ROLLED_BACK}
)


class Action(StrEnum):
    DRY_RUN = "dry-run"
    APPROVE = "approve"
    RUN = "run"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Rule:
    allowed_from: frozenset[Status]
    refusal: str  # formatted with {backfill_id} and {status}


_EVER_RUN = frozenset({Status.RUNNING, Status.SUCCEEDED, Status.ROLLED_BACK})

RULES: dict[Action, Rule] = {
    Action.DRY_RUN: Rule(
        frozenset(Status) - _EVER_RUN - {Status.INTERRUPTED},
        "plan {backfill_id} is {status}; a dry run is for plans not yet run",
    ),
    Action.APPROVE: Rule(
        frozenset({Status.PLANNED, Status.DRY_RUN_OK}),
        "plan {backfill_id} is {status}; only a planned backfill can be approved",
    ),
    # A succeeded plan is not refused: running it again is a no-op (see runner.run).
    # Resuming a failed or interrupted (`running`) plan is a run like any other.
    Action.RUN: Rule(
        frozenset(Status) - {Status.ROLLED_BACK, Status.INTERRUPTED},
        "plan {backfill_id} was rolled back; make a new plan to run it again",
    ),
    # A `running` backfill only once it is interrupted (rollback checks the lock first).
    Action.ROLLBACK: Rule(
        frozenset({Status.SUCCEEDED, Status.FAILED, Status.FAILED_VALIDATION, Status.RUNNING}),
        "backfill {backfill_id} is {status}; only a run backfill can be rolled back",
    ),
}


def allows(action: Action, status: Status) -> bool:
    return status in RULES[action].allowed_from


def require(action: Action, status: Status, backfill_id: str) -> None:
    """Refuse `action` on a backfill in `status` with the rule's one-line reason."""
    if not allows(action, status):
        raise BadInput(RULES[action].refusal.format(backfill_id=backfill_id, status=status))
