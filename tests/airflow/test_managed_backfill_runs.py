"""`airflow dags test managed_backfill` on a built warehouse: what each run writes.

The requester is alice ($BACKFILL_OPERATOR: `dags test` has no signed-in user); the
approval is answered through Airflow's own HITL API by a signed-in Airflow user.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from airflow_harness import Airflow
from support import checksums, correct_a_fare, query

REASON = "late trip events"
REQUEST = {
    "model": "fct_trips",
    "start_date": "2024-01-14",
    "end_date": "2024-01-16",
    "category": "late_data",
    "reason": "late trip events",
}
CORRECTED_DAY = date(2024, 1, 15)


def audit_rows(path: Path) -> dict[str, int]:
    """Rows of every table of the audit store (no table before anything is recorded)."""
    tables = query(
        path,
        "select table_name from information_schema.tables "
        "where table_schema = 'backfill_audit' order by 1",
    )
    return {t: query(path, f"select count(*) from backfill_audit.{t}")[0][0] for (t,) in tables}


def log(path: Path) -> list[tuple[object, ...]]:
    return query(
        path,
        "select status, requested_by, approved_by, reason, dry_run, error "
        "from backfill_audit.backfill_log order by event_no",
    )


def test_dry_run_writes_only_the_plan_and_its_dry_run(airflow: Airflow) -> None:
    trips = checksums(airflow.warehouse)
    earnings = checksums(airflow.warehouse, "marts.fct_driver_daily_earnings", "earning_date")
    audit_before = audit_rows(airflow.warehouse)

    ran = airflow.dags_test(REQUEST)  # dry_run is true by default

    assert ran.returncode == 0, ran.output[-5000:]
    assert "dry_run is true: nothing to approve" in ran.output  # `approval` skipped, `run` too
    assert checksums(airflow.warehouse) == trips
    assert checksums(airflow.warehouse, "marts.fct_driver_daily_earnings", "earning_date") == (
        earnings
    )
    audit_after = audit_rows(airflow.warehouse)
    written = {t: n - audit_before.get(t, 0) for t, n in audit_after.items()}
    assert {t: n for t, n in written.items() if n} == {"plans": 1, "backfill_log": 2, "dry_runs": 1}
    assert query(airflow.warehouse, "select category from backfill_audit.plans") == [("late_data",)]
    assert log(airflow.warehouse) == [
        ("planned", "alice", None, REASON, True, None),
        ("dry_run_ok", "alice", None, REASON, True, None),
    ]


def test_an_approval_by_another_airflow_user_runs_the_backfill(airflow: Airflow) -> None:
    correct_a_fare(airflow.warehouse, CORRECTED_DAY.isoformat())
    before = checksums(airflow.warehouse)

    ran, answer = airflow.dags_test_answered({**REQUEST, "dry_run": False}, "bob")

    assert answer == 200
    assert ran.returncode == 0, ran.output[-5000:]
    after = checksums(airflow.warehouse)
    assert {day for day in before if after[day] != before[day]} == {CORRECTED_DAY}
    assert log(airflow.warehouse) == [
        ("planned", "alice", None, REASON, True, None),
        ("dry_run_ok", "alice", None, REASON, True, None),
        ("approved", "alice", "bob", REASON, True, None),
        ("running", "alice", "bob", REASON, False, None),
        ("succeeded", "alice", "bob", REASON, False, None),
    ]
    assert query(
        airflow.warehouse,
        "select a.approver, a.comment, a.fingerprint = p.fingerprint "
        "from backfill_audit.approvals as a join backfill_audit.plans as p using (backfill_id)",
    ) == [("bob", "by bob", True)]


def test_a_failed_chunk_fails_the_run_task_and_its_retry_resumes(airflow: Airflow) -> None:
    correct_a_fare(airflow.warehouse, CORRECTED_DAY.isoformat())
    before = checksums(airflow.warehouse)
    failing = replace(
        airflow,
        env={
            **airflow.env,
            "BACKFILL_FAULT": "after_stage@2:raise",  # the 2nd chunk, once (per process)
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "0",  # `run` retries once, at once
        },
    )

    ran, answer = failing.dags_test_answered({**REQUEST, "dry_run": False, "chunk_days": 1}, "bob")

    assert answer == 200
    assert ran.returncode == 0, ran.output[-5000:]
    (backfill_id,) = query(
        airflow.warehouse, "select distinct backfill_id from backfill_audit.plans"
    )[0]
    assert (
        f"Error: backfill {backfill_id} failed: InjectedFault: injected fault at after_stage"
        in ran.output
    )
    assert [s for s, *_ in log(airflow.warehouse)] == [
        "planned",
        "dry_run_ok",
        "approved",
        "running",
        "failed",
        "running",
        "succeeded",
    ]
    published = query(
        airflow.warehouse,
        "select chunk_no, count(*) from backfill_audit.backfill_chunks "
        "where state = 'published' group by 1 order by 1",
    )
    assert published == [(1, 1), (2, 1), (3, 1)]
    after = checksums(airflow.warehouse)
    assert {day for day in before if after[day] != before[day]} == {CORRECTED_DAY}
    assert {day: rows for day, (rows, _) in after.items()} == {
        day: rows for day, (rows, _) in before.items()
    }


def test_a_self_approval_of_a_critical_model_through_airflow_is_refused(
    airflow: Airflow,
) -> None:
    before = checksums(airflow.warehouse)

    ran, answer = airflow.dags_test_answered({**REQUEST, "dry_run": False}, "alice")

    assert answer == 200  # Airflow takes the answer; the library refuses it
    assert ran.returncode == 1, ran.output[-5000:]
    refusal = "fct_trips is critical: the approver must not be the requester (alice)"
    assert f"Error: {refusal}" in ran.output
    assert checksums(airflow.warehouse) == before
    assert query(airflow.warehouse, "select count(*) from backfill_audit.approvals") == [(0,)]
    assert [s for s, *_ in log(airflow.warehouse)] == ["planned", "dry_run_ok"]


def test_detect_late_data_opens_a_dry_run_plan_and_writes_no_partition(airflow: Airflow) -> None:
    from orchestrator.demo.deliveries import deliver_late
    from orchestrator.warehouse.duckdb import connect

    with connect(airflow.warehouse) as con:
        deliver_late(con, [date(2024, 1, 6)], 5, date(2024, 2, 20))
    trips = checksums(airflow.warehouse)

    ran = airflow.dags_test({}, "detect_late_data")

    assert ran.returncode == 0, ran.output[-5000:]
    assert checksums(airflow.warehouse) == trips
    plans = query(
        airflow.warehouse,
        "select p.model, p.category, p.requested_by, l.status from backfill_audit.plans p "
        "join backfill_audit.backfill_log l using (backfill_id) "
        "qualify row_number() over (partition by backfill_id order by event_no desc) = 1",
    )
    assert plans == [("fct_trips", "late_data", "airflow-detect", "dry_run_ok")]
    chunks = query(airflow.warehouse, "select chunks from backfill_audit.plans")[0][0]
    assert '"start": "2024-01-06"' in chunks and '"fct_driver_daily_earnings"' in chunks
