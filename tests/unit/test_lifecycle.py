"""The lifecycle table: what each status allows, and the one-line refusal otherwise."""

from __future__ import annotations

import pytest

from orchestrator.errors import BadInput
from orchestrator.lifecycle import Action, Status, allows, require

ALLOWED = {
    Action.DRY_RUN: {
        Status.PLANNED,
        Status.DRY_RUN_OK,
        Status.APPROVED,
        Status.FAILED,
        Status.FAILED_VALIDATION,
    },
    Action.APPROVE: {Status.PLANNED, Status.DRY_RUN_OK},
    Action.RUN: set(Status) - {Status.ROLLED_BACK, Status.INTERRUPTED},
    Action.ROLLBACK: {Status.SUCCEEDED, Status.FAILED, Status.FAILED_VALIDATION, Status.RUNNING},
}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("status", list(Status))
def test_each_status_allows_exactly_what_the_table_says(action: Action, status: Status) -> None:
    assert allows(action, status) == (status in ALLOWED[action])


def test_a_refusal_names_the_backfill_and_its_status() -> None:
    with pytest.raises(BadInput) as refused:
        require(Action.APPROVE, Status.SUCCEEDED, "bf_0123456789ab")
    assert str(refused.value) == (
        "plan bf_0123456789ab is succeeded; only a planned backfill can be approved"
    )


def test_terminal_statuses_are_the_ends_of_a_run() -> None:
    assert {s for s in Status if s.is_terminal} == {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.FAILED_VALIDATION,
        Status.ROLLED_BACK,
    }
