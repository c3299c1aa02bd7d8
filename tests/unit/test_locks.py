"""The per-model lock on a real DuckDB file: claims that race, and who may clear what.

A race needs a rival claim committed between our check and our settle. On DuckDB one
process writes the file, so the rival is inserted as another process's row would be; on
BigQuery two processes really race (tests/bigquery/test_bigquery_locks.py).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import lock as lock_module
from orchestrator.audit import AuditStore, utcnow
from orchestrator.errors import BadInput, LockHeld
from orchestrator.lock import Locks
from orchestrator.warehouse.duckdb import DuckDBWarehouse

OTHER_PID = os.getppid()  # a live process that is not this one: a rival still running


@pytest.fixture
def locks(tmp_path: Path) -> Iterator[Locks]:
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    audit = AuditStore(wh)
    audit.ensure()
    yield Locks(audit)
    wh.close()


def claim(locks: Locks, backfill_id: str, at: datetime, host: str | None = None) -> None:
    """A claim as another process inserts it (it has passed its own check already)."""
    locks.audit.locks.claim(
        "fct_trips", backfill_id, "carol", pid=OTHER_PID, host=host or socket.gethostname(), at=at
    )


def claims(locks: Locks) -> list[tuple[str, int]]:
    return [(c.backfill_id, c.pid) for c in locks._claims("fct_trips")]


def events(locks: Locks) -> list[tuple[str, str, str]]:
    return locks.wh.query(
        "select backfill_id, action, coalesce(reason, '') from backfill_audit.lock_events "
        "order by recorded_at"
    )


def settle_mine(locks: Locks, at: datetime) -> None:
    """Our claim, committed with `at`, then settled (acquire's second half)."""
    locks.audit.locks.claim("fct_trips", "bf_aaaaaaaaaaaa", "alice", at=at)
    locks._settle("fct_trips", "bf_aaaaaaaaaaaa", "alice")


def test_an_uncontested_claim_is_kept_and_released(locks: Locks) -> None:
    locks.acquire("fct_trips", "bf_aaaaaaaaaaaa", "alice")
    assert claims(locks) == [("bf_aaaaaaaaaaaa", os.getpid())]
    locks.release("fct_trips", "bf_aaaaaaaaaaaa", "alice")
    assert claims(locks) == []
    assert [e[:2] for e in events(locks)] == [
        ("bf_aaaaaaaaaaaa", "acquired"),
        ("bf_aaaaaaaaaaaa", "released"),
    ]


def test_the_later_of_two_racing_claims_withdraws_at_once(locks: Locks) -> None:
    now = utcnow()
    claim(locks, "bf_bbbbbbbbbbbb", now - timedelta(seconds=1))
    with pytest.raises(LockHeld) as exc:
        settle_mine(locks, now)
    assert str(exc.value) == (
        "fct_trips is locked by backfill bf_bbbbbbbbbbbb "
        f"(started {now - timedelta(seconds=1):%Y-%m-%d %H:%M:%S} UTC by carol)"
    )
    assert claims(locks) == [("bf_bbbbbbbbbbbb", OTHER_PID)]
    assert events(locks) == [
        ("bf_aaaaaaaaaaaa", "withdrawn", "claimed at the same time as backfill bf_bbbbbbbbbbbb")
    ]


def test_the_earlier_claim_wins_once_the_later_one_withdraws(locks: Locks) -> None:
    now = utcnow()
    claim(locks, "bf_bbbbbbbbbbbb", now + timedelta(seconds=1))
    rival = locks.wh.con.cursor()  # its own connection to the file, usable from a thread
    rival_gone = threading.Timer(
        0.6,
        lambda: rival.execute(
            "delete from backfill_audit.locks where backfill_id = 'bf_bbbbbbbbbbbb'"
        ),
    )
    rival_gone.start()
    settle_mine(locks, now)
    rival_gone.join()
    assert claims(locks) == [("bf_aaaaaaaaaaaa", os.getpid())]
    assert events(locks) == []


def test_the_earlier_claim_withdraws_when_the_later_one_stays(
    locks: Locks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The later claim stays only if it saw no rival, so it runs: we must not."""
    monkeypatch.setattr(lock_module, "RACE_WAIT_SECONDS", 0.5)
    now = utcnow()
    claim(locks, "bf_bbbbbbbbbbbb", now + timedelta(seconds=1))
    with pytest.raises(LockHeld) as exc:
        settle_mine(locks, now)
    assert "locked by backfill bf_bbbbbbbbbbbb" in str(exc.value)
    assert claims(locks) == [("bf_bbbbbbbbbbbb", OTHER_PID)]
    assert [e[:2] for e in events(locks)] == [("bf_aaaaaaaaaaaa", "withdrawn")]


def test_a_second_run_of_the_same_plan_is_a_rival_too(locks: Locks) -> None:
    now = utcnow()
    claim(locks, "bf_aaaaaaaaaaaa", now - timedelta(seconds=1))  # same plan, other process
    with pytest.raises(LockHeld):
        settle_mine(locks, now)
    assert claims(locks) == [("bf_aaaaaaaaaaaa", OTHER_PID)]
    locks.release("fct_trips", "bf_aaaaaaaaaaaa", "alice")  # not ours: left alone
    assert claims(locks) == [("bf_aaaaaaaaaaaa", OTHER_PID)]


def test_a_lock_from_another_host_is_cleared_only_with_force_and_a_reason(locks: Locks) -> None:
    at = datetime(2026, 11, 22, 10, 0, 0)
    claim(locks, "bf_bbbbbbbbbbbb", at, host="airflow-worker-7")
    hint = (
        f"its process {OTHER_PID} is on host airflow-worker-7, which this machine cannot "
        "check: if it is gone, clear the lock with `backfill unlock fct_trips --force "
        "--reason TEXT --requested-by NAME`"
    )
    with pytest.raises(LockHeld) as held:
        locks.acquire("fct_trips", "bf_aaaaaaaaaaaa", "alice")
    assert str(held.value) == (
        "fct_trips is locked by backfill bf_bbbbbbbbbbbb (started 2026-11-22 10:00:00 UTC "
        f"by carol); {hint}"
    )
    with pytest.raises(BadInput) as refused:
        locks.clear("fct_trips", "dave", "")
    assert str(refused.value) == f"fct_trips is locked by backfill bf_bbbbbbbbbbbb; {hint}"
    with pytest.raises(BadInput) as no_reason:
        locks.clear("fct_trips", "dave", "", force=True)
    assert str(no_reason.value) == (
        "--force needs --reason: say why the lock's process is known to be gone"
    )
    assert claims(locks) == [("bf_bbbbbbbbbbbb", OTHER_PID)]
    assert events(locks) == []

    locks.clear("fct_trips", "dave", "worker-7 was drained", force=True)
    assert claims(locks) == []
    assert events(locks) == [("bf_bbbbbbbbbbbb", "forced", "worker-7 was drained")]
    locks.acquire("fct_trips", "bf_aaaaaaaaaaaa", "alice")
    assert claims(locks) == [("bf_aaaaaaaaaaaa", os.getpid())]
