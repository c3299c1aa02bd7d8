"""Two runs of one model started together on BigQuery: at most one keeps the lock.

BigQuery transactions do not serialise two appends, so both runs can pass the lock check
and both commit a claim; `Locks._settle` then decides. Each round starts two real
processes at the same instant against the emulator; the deterministic interleavings of
the same protocol are in tests/unit/test_locks.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bq_support import BigQueryEnv, query

from orchestrator.audit import AuditStore
from orchestrator.warehouse.bigquery import BigQueryWarehouse

ROUNDS = 3
CONTENDER = """
import sys, time
from orchestrator.audit import AuditStore
from orchestrator.errors import LockHeld
from orchestrator.lock import Locks
from orchestrator.warehouse.bigquery import BigQueryWarehouse

backfill_id, start_at = sys.argv[1], float(sys.argv[2])
locks = Locks(AuditStore(BigQueryWarehouse()))
time.sleep(max(0.0, start_at - time.time()))
try:
    locks.acquire("fct_trips", backfill_id, "alice")
except LockHeld as exc:
    print("lost", exc)
else:
    print("won")
    time.sleep(3)  # hold it while the rival settles
    locks.release("fct_trips", backfill_id, "alice")
"""


def test_two_runs_started_together_never_both_hold_the_lock(bq: BigQueryEnv) -> None:
    wh = BigQueryWarehouse()
    AuditStore(wh).ensure()
    wh.close()
    outcomes: list[list[str]] = []
    for round_no in range(ROUNDS):
        ids = [f"bf_{round_no}{side}aaaaaaaaaa" for side in "ab"]
        start_at = time.time() + 4  # both processes are imported and connected by then
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", CONTENDER, backfill_id, str(start_at)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).parent,
            )
            for backfill_id in ids
        ]
        results = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], [err for _, err in results]
        said = [out.strip() for out, _ in results]
        outcomes.append(said)
        assert sum(s == "won" for s in said) <= 1, said
        for s in said:
            assert s == "won" or s.startswith("lost fct_trips is locked by backfill bf_"), s

    assert query("select count(*) from backfill_audit.locks") == [(0,)]
    events = query(
        "select backfill_id, action from backfill_audit.lock_events order by backfill_id, action"
    )
    by_run: dict[str, list[str]] = {}
    for backfill_id, action in events:
        by_run.setdefault(backfill_id, []).append(action)
    for said, ids in zip(
        outcomes, ([f"bf_{n}{s}aaaaaaaaaa" for s in "ab"] for n in range(ROUNDS)), strict=True
    ):
        for outcome, backfill_id in zip(said, ids, strict=True):
            actions = by_run.get(backfill_id, [])
            if outcome == "won":
                assert actions == ["acquired", "released"], (backfill_id, actions)
            else:  # refused by the check (no claim) or claimed and withdrew
                assert actions in ([], ["acquired", "withdrawn"]), (backfill_id, actions)
