"""Concurrent backfills, locks left by killed processes, and a busy DuckDB file.

On DuckDB the first line of defence is the file itself: a `backfill` process holds the
warehouse from its first read to its exit, and DuckDB admits one writing process per
file. A second command therefore never reaches the per-model lock while the first is
alive: it waits up to $BACKFILL_DUCKDB_WAIT_SECONDS and then stops with one `Error:` line
(exit 1). The per-model lock (`backfill_audit.locks`) is what remains when a process dies:
a stale lock, which the same plan takes over on resume and anyone else must clear with
the audited `backfill unlock`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import crash_harness
import duckdb
import pytest
from reliability_support import (
    approved_plan,
    chunk_states,
    cli,
    cli_process,
    fingerprint,
    latest_status,
)
from support import checksums, query

from orchestrator.audit.chunks import ChunkRecords
from orchestrator.warehouse.duckdb import DuckDBWarehouse


def busy_message(db: Path, pid: int, waited: str) -> str:
    return (
        f"Error: warehouse file {db} is in use by another process (PID {pid}); waited "
        f"{waited}s. DuckDB allows one writing process: retry when it finishes\n"
    )


def test_two_backfills_of_one_model_started_together_exactly_one_runs(
    crash_scenario: crash_harness.Scenario, project_copy: Path, approved_copy: Path
) -> None:
    db, first = approved_copy, crash_scenario.backfill_id
    second = approved_plan(project_copy, "fct_trips", "2024-01-14", "2024-01-17")
    procs = {
        plan: cli_process(project_copy, db, "run", plan, "--execute", "--json", wait_seconds=2)
        for plan in (first, second)
    }
    outcome = {plan: finished(p) for plan, p in procs.items()}

    codes = sorted(code for code, _, _ in outcome.values())
    assert codes == [0, 1], outcome
    winner = next(plan for plan, (code, _, _) in outcome.items() if code == 0)
    loser = first if winner == second else second
    # The loser waited 2 s for the file, then stopped with one line naming the winner.
    assert outcome[loser][2] == busy_message(db, procs[winner].pid, "2")
    assert outcome[loser][1] == ""
    # Nothing of the loser was written, not even a failure: the file was never its own.
    assert latest_status(db, loser) == ("approved", None)
    assert chunk_states(db, loser) == {}
    assert query(
        db, f"select count(*) from backfill_audit.lock_events where backfill_id = '{loser}'"
    ) == [(0,)]

    # Nothing lost: the loser runs afterwards, and both orders end at the clean result.
    again = cli(project_copy, "run", loser, "--execute")
    assert again.exit_code == 0, again.stderr
    assert as_iso(checksums(db)) == crash_scenario.expected
    assert query(db, "select count(*) from backfill_audit.locks") == [(0,)]


def test_backfills_of_two_models_serialise_on_the_file_and_both_succeed(
    crash_scenario: crash_harness.Scenario, project_copy: Path, approved_copy: Path
) -> None:
    db, trips = approved_copy, crash_scenario.backfill_id
    earnings = approved_plan(
        project_copy, "fct_driver_daily_earnings", "2024-01-12", "2024-01-19", approver="alice"
    )
    earnings_before = checksums(db, "marts.fct_driver_daily_earnings", "earning_date")
    procs = {
        plan: cli_process(project_copy, db, "run", plan, "--execute", "--json", wait_seconds=600)
        for plan in (trips, earnings)
    }
    outcome = {plan: finished(p) for plan, p in procs.items()}
    assert [code for code, _, _ in outcome.values()] == [0, 0], outcome

    # One ran after the other: the second's run began after the first had finished.
    events = query(
        db,
        "select backfill_id, status from backfill_audit.backfill_log "
        f"where backfill_id in ('{trips}', '{earnings}') and status in ('running', 'succeeded') "
        "order by recorded_at",
    )
    first, second = (plan for plan, status in events if status == "running")
    assert events == [
        (first, "running"), (first, "succeeded"), (second, "running"), (second, "succeeded")
    ]  # fmt: skip
    assert as_iso(checksums(db)) == crash_scenario.expected
    # fct_driver_daily_earnings sums fct_trips per driver and day: in its range it matches
    # the fct_trips it read (the corrected one if it ran second), and nothing else moved.
    read = db if first == trips else crash_scenario.approved
    with duckdb.connect(str(read), read_only=True) as con:
        fares = con.execute(
            "select trip_date, sum(fare_amount) from marts.fct_trips where driver_id is not null "
            "and trip_date between '2024-01-12' and '2024-01-19' group by 1 order by 1"
        ).fetchall()
    assert (
        query(
            db,
            "select earning_date, sum(gross_fare) from marts.fct_driver_daily_earnings "
            "where earning_date between '2024-01-12' and '2024-01-19' group by 1 order by 1",
        )
        == fares
    )
    earnings_after = checksums(db, "marts.fct_driver_daily_earnings", "earning_date")
    outside = [d for d in earnings_before if not date(2024, 1, 12) <= d <= date(2024, 1, 19)]
    assert [earnings_after[d] for d in outside] == [earnings_before[d] for d in outside]
    if first == trips:  # the corrections of chunk 2 (01-14 and 01-17) reached the earnings
        assert earnings_after != earnings_before


def test_a_killed_backfill_leaves_a_stale_lock_that_only_unlock_clears(
    crash_scenario: crash_harness.Scenario, project_copy: Path, approved_copy: Path, tmp_path: Path
) -> None:
    db, killed = approved_copy, crash_scenario.backfill_id
    other = approved_plan(project_copy, "fct_trips", "2024-01-14", "2024-01-17")
    phase = crash_harness.run_phase(
        crash_scenario, db, crash_harness.Kill("fault", "after_backup", 1), tmp_path, 0
    )
    assert phase.returncode == -signal.SIGKILL, phase.stderr
    [(owner, who, pid, host)] = query(
        db, "select backfill_id, holder, pid, host from backfill_audit.locks"
    )
    assert (owner, host) == (killed, socket.gethostname())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    # The log still says `running`; status and history show it as interrupted (display
    # only), and as running again while the lock's process is alive.
    assert latest_status(db, killed)[0] == "running"
    shown = cli(project_copy, "status", killed)
    assert shown.exit_code == 0, shown.stderr
    assert f"{killed}: fct_trips 2024-01-10..2024-01-21 status interrupted;" in shown.stdout
    listed = cli(project_copy, "history", "--json")
    assert {r["backfill_id"]: r["status"] for r in listed.json()}[killed] == "interrupted"
    with sleeper() as alive:
        query(db, f"update backfill_audit.locks set pid = {alive}")
        assert cli(project_copy, "status", killed, "--json").json()["status"] == "running"
        query(db, f"update backfill_audit.locks set pid = {pid}")
    assert latest_status(db, killed)[0] == "running"
    stale = (
        f"Error: fct_trips is locked by backfill {killed} (started "
        f"{lock_time(db)} UTC by {who}); the lock is stale (process {pid} on {host} is gone): "
        "clear it with `backfill unlock fct_trips --requested-by NAME`\n"
    )
    before, plans = checksums(db), query(db, "select count(*) from backfill_audit.plans")

    # Another backfill of the model is refused, however long it waits.
    refused = cli(project_copy, "run", other, "--execute")
    assert (refused.exit_code, refused.stderr) == (1, stale)
    assert latest_status(db, other) == ("failed", stale.removeprefix("Error: ").strip())
    assert chunk_states(db, other) == {}
    planning = cli(
        project_copy, "plan", "fct_trips", "--start", "2024-01-01", "--end", "2024-01-02"
    )
    assert (planning.exit_code, planning.stderr) == (1, stale)
    assert query(db, "select count(*) from backfill_audit.plans") == plans
    assert checksums(db) == before

    # Clearing it is explicit and recorded.
    cleared = cli(
        project_copy, "unlock", "fct_trips", "--requested-by", "dave", "--reason", "oom kill"
    )
    assert cleared.exit_code == 0, cleared.stderr
    assert cleared.stdout == f"cleared the lock on fct_trips held by backfill {killed}\n"
    assert query(db, "select count(*) from backfill_audit.locks") == [(0,)]
    assert query(
        db,
        "select backfill_id, action, actor, reason from backfill_audit.lock_events "
        "order by recorded_at desc limit 1",
    ) == [(killed, "cleared", "dave", "oom kill")]

    # Then the other backfill runs, and the killed one resumes to the clean result.
    assert cli(project_copy, "run", other, "--execute").exit_code == 0
    resumed = cli(project_copy, "run", killed, "--execute", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert crash_harness.state_problems(crash_scenario, db, final=True) == []


def test_unlock_refuses_a_lock_whose_process_is_alive(
    project_copy: Path, approved_copy: Path
) -> None:
    db = approved_copy
    with sleeper() as alive:
        query(
            db,
            "insert into backfill_audit.locks values ('fct_trips', 'bf_cccccccccccc', 'carol', "
            f"{alive}, '{socket.gethostname()}', timestamp '2026-11-22 09:00:00')",
        )
        before = fingerprint(db)
        result = cli(project_copy, "unlock", "fct_trips", "--requested-by", "dave")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: fct_trips is locked by backfill bf_cccccccccccc whose process {alive} on "
        f"{socket.gethostname()} is still running; only a stale lock can be cleared\n"
    )
    assert fingerprint(db) == before


COMMANDS_THAT_OPEN_THE_WAREHOUSE = [
    ("status",),
    ("history",),
    ("plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-12"),
    ("dry-run", "{plan}"),
    ("approve", "{plan}", "--approver", "carol"),
    ("run", "{plan}", "--execute"),
    ("rollback", "{plan}", "--execute", "--requested-by", "alice"),
    ("unlock", "fct_trips", "--requested-by", "dave"),
    ("lineage", "fct_trips"),
    ("versions", "list", "fct_trips"),
    ("maintain", "--keep-days", "0", "--execute"),
    ("generate", "--days", "1", "--trips-per-day", "1"),
]


@pytest.mark.parametrize(
    ("read_only", "commands"),
    [(False, COMMANDS_THAT_OPEN_THE_WAREHOUSE), (True, COMMANDS_THAT_OPEN_THE_WAREHOUSE[:4])],
    ids=["held by a writer", "held by a read-only reader"],
)
def test_every_command_waits_for_a_busy_file_then_stops_with_one_line(
    crash_scenario: crash_harness.Scenario,
    project_copy: Path,
    approved_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    read_only: bool,
    commands: list[tuple[str, ...]],
) -> None:
    """Even a read-only DuckDB session elsewhere (an analyst's shell) blocks the backfill:
    DuckDB's file lock admits no writer beside another process's reader."""
    db = approved_copy
    monkeypatch.setenv("BACKFILL_DUCKDB_WAIT_SECONDS", "0.5")
    before = fingerprint(db)
    with holder(db, read_only=read_only) as pid:
        for command in commands:
            args = [a.replace("{plan}", crash_scenario.backfill_id) for a in command]
            started = time.monotonic()
            result = cli(project_copy, *args)
            waited = time.monotonic() - started
            assert (result.exit_code, result.stderr, result.stdout) == (
                1,
                busy_message(db, pid, "0.5"),
                "",
            ), args
            assert waited >= 0.5, args
    assert fingerprint(db) == before


def test_a_command_proceeds_once_the_busy_file_is_released(
    project_copy: Path, approved_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = approved_copy
    monkeypatch.setenv("BACKFILL_DUCKDB_WAIT_SECONDS", "60")
    with holder(db, seconds=1.5):
        started = time.monotonic()
        result = cli(project_copy, "history", "--json")
        waited = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    assert waited >= 1.0


def test_the_reader_check_catches_a_publish_that_is_not_atomic(
    crash_scenario: crash_harness.Scenario,
    project_copy: Path,
    approved_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader looks at the table between the publish's data swap and its audit rows.
    With the real transaction it sees the old partitions and an unpublished chunk; with
    autocommit instead (a broken publish) the same check reports the mismatch."""
    db = approved_copy

    def observe_during_publish() -> list[str]:
        seen: list[str] = []
        original = ChunkRecords.record_partitions

        def record_partitions(self: ChunkRecords, backfill_id: str, *args: object) -> None:
            if args[2] == "after":  # inside the publish, right after the partitions swap
                with duckdb.connect(str(db)) as reader:  # this process's instance
                    seen.extend(reader_view(crash_scenario, reader))
            original(self, backfill_id, *args)  # type: ignore[arg-type]

        with monkeypatch.context() as patch:
            patch.setattr(ChunkRecords, "record_partitions", record_partitions)
            assert cli(project_copy, "run", crash_scenario.backfill_id, "--execute").exit_code == 0
        return seen

    assert observe_during_publish() == []

    crash_harness.copy_warehouse(crash_scenario.approved, db)

    @contextlib.contextmanager
    def autocommit(self: DuckDBWarehouse) -> Iterator[None]:
        yield

    monkeypatch.setattr(DuckDBWarehouse, "transaction", autocommit)
    assert observe_during_publish() == [
        f"chunk {n} data new but its audit state is validated" for n in (1, 2, 3)
    ]


# --- helpers ---------------------------------------------------------------------------


def finished(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def reader_view(scenario: crash_harness.Scenario, con: duckdb.DuckDBPyConnection) -> list[str]:
    from orchestrator.warehouse.duckdb import partition_stats

    con.execute("begin transaction")
    stats = partition_stats(con, "marts.fct_trips", "trip_date")
    states = crash_harness.chunk_states(con, scenario.backfill_id)
    con.execute("commit")
    actual = {d.isoformat(): (s.rows, s.checksum) for d, s in stats.items()}
    return crash_harness.consistency_problems(scenario, actual, states)


def as_iso(stats: dict[object, tuple[int, str]]) -> crash_harness.Stats:
    return {str(d): v for d, v in stats.items()}


def lock_time(db: Path) -> str:
    return f"{query(db, 'select acquired_at from backfill_audit.locks')[0][0]:%Y-%m-%d %H:%M:%S}"


@contextlib.contextmanager
def holder(db: Path, *, read_only: bool = False, seconds: float = 120) -> Iterator[int]:
    """Another process with the warehouse file open (as an analyst's DuckDB shell would)."""
    code = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect(sys.argv[1], read_only={read_only})\n"
        "print('open', flush=True)\n"
        f"time.sleep({seconds})\n"
        "con.close()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        yield proc.pid
    finally:
        if seconds > 10:
            proc.kill()
        proc.wait(timeout=60)


@contextlib.contextmanager
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
