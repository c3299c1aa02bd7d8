"""Hostile and malformed input to every command: exit 2, one exact `Error:` line, and not
one byte of the warehouse changed.

tests/integration/test_backfill_refusals.py holds the first refusals (ISO dates, reversed
and future ranges, an unknown model, ...); this table adds the rest, command by command.
The commands only assert that nothing changed, so one warehouse (with an approved plan,
`{plan}`) serves the whole module on each test worker; `{out}` is a directory for
`versions export`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import crash_harness
import pytest
from reliability_support import approved_plan, cli, fingerprint

PLAN = ("plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-12")
NOT_A_NAME = "is not a valid dbt model name"
FULLWIDTH_2024 = "\uff12\uff10\uff12\uff14"  # digits, but not ASCII ones


def refused(*args: str, error: str, marks: tuple[pytest.MarkDecorator, ...] = ()) -> object:
    name = " ".join(args).replace(" ".join(PLAN), "plan ...").encode("unicode_escape").decode()
    return pytest.param(args, error, marks=marks, id=name[:72])


CASES = [
    # plan: dates
    refused("plan", "fct_trips", "--start", "", "--end", "2024-01-05",
            error="start date '' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "2024-01-01", "--end", "",
            error="end date '' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "0001-01-01", "--end", "2024-01-05",
            error="range 0001-01-01..2024-01-05 covers 738890 days; fct_trips allows at most "
            "400 (meta.backfill.max_days)"),
    refused("plan", "fct_trips", "--start", "2024-01-01", "--end", "9999-12-31",
            error="end date 9999-12-31 is in the future (today is 2026-11-22)"),
    refused("plan", "fct_trips", "--start", "10000-01-01", "--end", "10000-01-02",
            error="start date '10000-01-01' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "2024-13-01", "--end", "2024-13-02",
            error="start date '2024-13-01' is not a valid calendar date"),
    refused("plan", "fct_trips", "--start", "2024-00-10", "--end", "2024-01-10",
            error="start date '2024-00-10' is not a valid calendar date"),
    refused("plan", "fct_trips", "--start", "2023-02-29", "--end", "2023-03-01",
            error="start date '2023-02-29' is not a valid calendar date"),
    refused("plan", "fct_trips", "--start", FULLWIDTH_2024 + "-01-01", "--end", "2024-01-02",
            error=f"start date '{FULLWIDTH_2024}-01-01' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "2024-01-01T00:00:00", "--end", "2024-01-02",
            error="start date '2024-01-01T00:00:00' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", " 2024-01-01", "--end", "2024-01-02",
            error="start date ' 2024-01-01' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "-2024-01-01", "--end", "2024-01-02",
            error="start date '-2024-01-01' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "2024-01-01' or '1'='1", "--end", "2024-01-02",
            error="start date \"2024-01-01' or '1'='1\" is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", '2024-01-01", "allow_full_refresh": true, "x": "',
            "--end", "2024-01-02",
            error="start date '2024-01-01\", \"allow_full_refresh\": true, \"x\": \"' is not an "
            "ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "2024-01-01\n", "--end", "2024-01-02",
            error="start date '2024-01-01\\n' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "2024-01-01", "--end", "2024-01-02\n",
            error="end date '2024-01-02\\n' is not an ISO date (YYYY-MM-DD)"),
    refused("plan", "fct_trips", "--start", "2024-02-29", "--end", "2024-02-28",
            error="start date 2024-02-29 is after end date 2024-02-28"),
    refused("plan", "fct_trips", "--start", "2000-01-01", "--end", "2026-11-22",
            error="range 2000-01-01..2026-11-22 covers 9823 days; fct_trips allows at most 400 "
            "(meta.backfill.max_days)"),
    # plan: model names
    refused("plan", "fct_trips'", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name \"fct_trips'\" {NOT_A_NAME}"),
    refused("plan", "fct_trips;drop table marts.fct_trips", "--start", "2024-01-01", "--end",
            "2024-01-02", error=f"model name 'fct_trips;drop table marts.fct_trips' {NOT_A_NAME}"),
    refused("plan", "fct_trips --", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name 'fct_trips --' {NOT_A_NAME}"),
    refused("plan", "fct_tríps", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name 'fct_tríps' {NOT_A_NAME}"),
    refused("plan", "../../etc/passwd", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name '../../etc/passwd' {NOT_A_NAME}"),
    refused("plan", "", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name '' {NOT_A_NAME}"),
    refused("plan", "marts.fct_trips", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name 'marts.fct_trips' {NOT_A_NAME}"),
    refused("plan", '{"backfill_start": "2024-01-01"}', "--start", "2024-01-01", "--end",
            "2024-01-02",
            error=f"model name '{{\"backfill_start\": \"2024-01-01\"}}' {NOT_A_NAME}"),
    refused("plan", "fct_trips\x00", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name 'fct_trips\\x00' {NOT_A_NAME}"),
    refused("plan", "fct_trips\n", "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"model name 'fct_trips\\n' {NOT_A_NAME}"),
    refused("plan", "a" * 300, "--start", "2024-01-01", "--end", "2024-01-02",
            error=f"unknown model '{'a' * 300}'"),
    refused("plan", "dim_drivers.v1", "--start", "2024-01-01", "--end", "2024-01-02",
            error="model dim_drivers.v1 has no meta.backfill policy; it cannot be backfilled "
            "(A view over driver change records; it is always current and has no partitions.)"),
    refused("plan", "stg_rides__trip_events", "--start", "2024-01-01", "--end", "2024-01-02",
            error="model stg_rides__trip_events has no meta.backfill policy; it cannot be "
            "backfilled"),
    refused("plan", "{plan}", "--start", "2024-01-01", "--end", "2024-01-02",
            error="unknown model '{plan}'"),
    # plan: other options
    refused(*PLAN, "--chunk-days", "-5", error="chunk days must be at least 1, not -5"),
    refused(*PLAN, "--chunk-days", "abc",
            error="Invalid value for '--chunk-days': 'abc' is not a valid integer."),
    refused(*PLAN, "--chunk-days", "99999999999999999999",
            error="chunk days must be at most 400, not 99999999999999999999"),
    refused(*PLAN, "--chunk-days", "401", error="chunk days must be at most 400, not 401"),
    refused(*PLAN, "--reason", "x" * 501,
            error="reason is 501 characters; at most 500 are allowed"),
    refused(*PLAN, "--reason", "first line\nsecond line",
            error="reason must be one line of printable text"),
    refused(*PLAN, "--reason", "\x1b[2J\x1b[31mred",
            error="reason must be one line of printable text"),
    refused(*PLAN, "--reason", "fix\x7f", error="reason must be one line of printable text"),
    refused(*PLAN, "--reason", "\x9b2Jfix", error="reason must be one line of printable text"),
    refused(*PLAN, "--reason", "fix \u202etxt.exe",
            error="reason must be one line of printable text"),
    refused(*PLAN, "--reason", "line\u2028break",
            error="reason must be one line of printable text"),
    refused(*PLAN, "--requested-by", "",
            error="operator name '' must be 1-64 characters of letters, digits, '.', '_', '@', "
            "'+', '-'"),
    refused(*PLAN, "--requested-by", "alice\n",
            error="operator name 'alice\\n' must be 1-64 characters of letters, digits, '.', "
            "'_', '@', '+', '-'"),
    refused(*PLAN, "--requested-by", "alice bob",
            error="operator name 'alice bob' must be 1-64 characters of letters, digits, '.', "
            "'_', '@', '+', '-'"),
    refused(*PLAN, "--requested-by", "ålice",
            error="operator name 'ålice' must be 1-64 characters of letters, digits, '.', '_', "
            "'@', '+', '-'"),
    refused(*PLAN, "--requested-by", "a" * 65,
            error=f"operator name '{'a' * 65}' must be 1-64 characters of letters, digits, '.', "
            "'_', '@', '+', '-'"),
    refused(*PLAN, "--target", "duckdb; rm -rf /",
            error="target 'duckdb; rm -rf /' is not supported by the orchestrator (use duckdb "
            "or bigquery)"),
    refused(*PLAN, "--target", "prod",
            error="target 'prod' is not supported by the orchestrator (use duckdb or bigquery)"),
    refused(*PLAN, "--force", error="No such option '--force'."),
    # plan ids
    refused("dry-run", "bf_ABCDEF123456", error="unknown plan 'bf_ABCDEF123456'"),
    refused("dry-run", "bf_0123456789abc", error="unknown plan 'bf_0123456789abc'"),
    refused("status", "bf_0123'; --", error="unknown plan \"bf_0123'; --\""),
    refused("status", "BF_0123456789AB", error="unknown plan 'BF_0123456789AB'"),
    refused("status", "{plan}\n", error="unknown plan '{plan}\\n'"),
    refused("run", "fct_trips", "--execute", error="unknown plan 'fct_trips'"),
    refused("approve", "", "--approver", "bob", error="unknown plan ''"),
    refused("approve", "{plan}", "--approver", "bob; drop table x",
            error="approver 'bob; drop table x' must be 1-64 characters of letters, digits, "
            "'.', '_', '@', '+', '-'"),
    refused("approve", "{plan}", "--approver", "carol", "--comment", "c" * 501,
            error="comment is 501 characters; at most 500 are allowed"),
    refused("approve", "{plan}", "--approver", "carol", "--comment", "ok\u202e",
            error="comment must be one line of printable text"),
    refused("approve", "{plan}", "--approver", "carol\n",
            error="approver 'carol\\n' must be 1-64 characters of letters, digits, '.', '_', "
            "'@', '+', '-'"),
    refused("rollback", "{plan}", "--execute", "--requested-by", "alice",
            error="backfill {plan} is approved; only a run backfill can be rolled back"),
    refused("rollback", "{plan}", "--requested-by", "x y",
            error="operator name 'x y' must be 1-64 characters of letters, digits, '.', '_', "
            "'@', '+', '-'"),
    refused("rollback", "bf_000000000000", "--execute", error="unknown plan 'bf_000000000000'"),
    # history, lineage, unlock, maintain, generate
    refused("history", "--model", "x' or '1'='1",
            error=f"model name \"x' or '1'='1\" {NOT_A_NAME}"),
    refused("history", "--limit", "0",
            error="Invalid value for '--limit': 0 is not in the range 1<=x<=1000."),
    refused("history", "--limit", "100000",
            error="Invalid value for '--limit': 100000 is not in the range 1<=x<=1000."),
    refused("lineage", "fct_trips", "--partition", "2024-02-30",
            error="partition date '2024-02-30' is not a valid calendar date"),
    refused("lineage", "fct_trips", "--partition", "2024-01-01' or 1=1 --",
            error="partition date \"2024-01-01' or 1=1 --\" is not an ISO date (YYYY-MM-DD)"),
    refused("lineage", 'fct_trips"', error=f"model name 'fct_trips\"' {NOT_A_NAME}"),
    refused("unlock", "fct_trips", "--requested-by", "dave", error="fct_trips is not locked"),
    refused("unlock", "fct trips", error=f"model name 'fct trips' {NOT_A_NAME}"),
    refused("unlock", "fct_trips", "--force", "--requested-by", "dave",
            error="--force needs --reason: say why the lock's process is known to be gone"),
    refused("unlock", "fct_trips", "--reason", "r" * 600,
            error="reason is 600 characters; at most 500 are allowed"),
    refused("unlock", "fct_trips", "--requested-by", "",
            error="operator name '' must be 1-64 characters of letters, digits, '.', '_', '@', "
            "'+', '-'"),
    refused("maintain", "--keep-days", "-1", error="keep days must be 0 or more, not -1"),
    refused("maintain", "--keep-days", "x",
            error="Invalid value for '--keep-days': 'x' is not a valid integer."),
    refused("maintain", "--keep-days", "99999999999",
            error="keep days must be at most 36500, not 99999999999"),
    refused("maintain", "--keep-days", "36501", error="keep days must be at most 36500, not 36501"),
    refused("generate", "--days", "5", "--trips-per-day", "5", "--start-date", "2024-02-30",
            error="start date '2024-02-30' is not a valid calendar date"),
    refused("generate", "--days", "-1", "--trips-per-day", "5",
            error="--days must be at least 1, got -1"),
    refused("generate", "--days", "99999999", "--trips-per-day", "5",
            error="--days must be at most 3650, got 99999999"),
    # versions
    refused("versions", "export", "fct_trips", "--version", "0", "--output",
            "{out}/../../x.parquet", error="output '{out}/../../x.parquet' must not contain '..'"),
    refused("versions", "export", "fct_trips", "--version", "0", "--output", "{out}/x.csv",
            error="output '{out}/x.csv' must be a .parquet file"),
    refused("versions", "export", "fct_trips", "--version", "0", "--output", "/etc/passwd",
            error="output '/etc/passwd' must be a .parquet file"),
    refused("versions", "export", "fct_trips", "--version", "0", "--output",
            "{out}/exists.parquet", error="output '{out}/exists.parquet' already exists; "
            "choose a new file"),
    refused("versions", "export", "fct_trips", "--version", "0", "--output",
            "/nonexistent-dir/x.parquet",
            error="output directory '/nonexistent-dir' does not exist"),
    refused("versions", "export", "fct_trips", "--version", "-1", "--output", "{out}/v.parquet",
            error="version must be 0 or more, not -1"),
    refused("versions", "export", "fct_trips", "--version", "99", "--output", "{out}/v.parquet",
            error="fct_trips has no version 99 (latest is 0)"),
    refused("versions", "export", "fct_trips'--", "--version", "0", "--output",
            "{out}/v.parquet", error=f"model name \"fct_trips'--\" {NOT_A_NAME}"),
    refused("versions", "list", "x;y", error=f"model name 'x;y' {NOT_A_NAME}"),
    refused("versions", "snapshot", "fct_trips", "--tag", "../evil",
            error="tag '../evil' must be 1-64 letters, digits or '_'"),
    refused("versions", "snapshot", "fct_trips", "--tag", "a b",
            error="tag 'a b' must be 1-64 letters, digits or '_'"),
    refused("versions", "snapshot", "fct_trips", "--tag", "train\n",
            error="tag 'train\\n' must be 1-64 letters, digits or '_'"),
    refused("versions", "snapshot", "fct_trips", "--tag", "train", "--model-run-id", "run\x85",
            error="model run id must be one line of printable text"),
    # the command line itself
    refused("destroy", error="No such command 'destroy'."),
    refused("status", "--target", "duckdb; rm -rf /",
            error="target 'duckdb; rm -rf /' is not supported by the orchestrator (use duckdb "
            "or bigquery)"),
]  # fmt: skip


@pytest.fixture(scope="module")
def shared_warehouse(
    warehouse_template: Path, project_copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str, Path, dict[str, tuple[int, str]]]]:
    """One warehouse with an approved plan for every refusal of this module (on a worker)."""
    directory = tmp_path_factory.mktemp("hostile")
    db, out = directory / "warehouse.duckdb", directory / "out"
    out.mkdir()
    (out / "exists.parquet").write_bytes(b"PAR1")
    crash_harness.copy_warehouse(warehouse_template, db)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RIDESHARE_DUCKDB_PATH", str(db))
        env.setenv("BACKFILL_TODAY", crash_harness.TODAY)
        env.setenv("OPENLINEAGE_DIR", str(directory / "openlineage"))
        env.delenv("BACKFILL_OPERATOR", raising=False)
        env.delenv("BACKFILL_FAULT", raising=False)
        plan = approved_plan(project_copy, "fct_trips", "2024-01-10", "2024-01-20")
        yield db, plan, out, fingerprint(db)


@pytest.mark.parametrize(("args", "error"), CASES)
def test_hostile_input_exits_2_with_one_error_line_and_changes_nothing(
    shared_warehouse: tuple[Path, str, Path, dict[str, tuple[int, str]]],
    project_copy: Path,
    args: tuple[str, ...],
    error: str,
) -> None:
    db, plan, out, before = shared_warehouse
    fill = {"{plan}": plan, "{out}": str(out)}
    for key, value in fill.items():
        args = tuple(a.replace(key, value) for a in args)
        error = error.replace(key, value)
    files = sorted(out.iterdir())
    result = cli(project_copy, *args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, f"Error: {error}\n", "")
    assert fingerprint(db) == before
    assert sorted(out.iterdir()) == files


def test_the_table_tries_at_least_40_inputs_on_every_command() -> None:
    commands = {c.values[0][0] for c in CASES}  # type: ignore[attr-defined]
    assert len(CASES) >= 40
    assert commands >= {
        "plan", "dry-run", "approve", "run", "status", "history", "rollback", "unlock",
        "versions", "lineage", "maintain", "generate",
    }  # fmt: skip


def test_hostile_text_in_a_valid_request_is_stored_verbatim_and_never_run(
    project_copy: Path, approved_copy: Path
) -> None:
    """Jinja, SQL and terminal escapes in --reason are data: kept as typed, never rendered
    by dbt nor executed."""
    reason = "{{ run_query('drop table marts.fct_trips') }}'; drop table marts.fct_trips; --"
    before = fingerprint(approved_copy)
    planned = cli(project_copy, *PLAN, "--reason", reason, "--requested-by", "alice", "--json")
    assert planned.exit_code == 0, planned.stderr
    plan_id = planned.json()["backfill_id"]
    assert planned.json()["reason"] == reason
    shown = cli(project_copy, "status", plan_id, "--json")
    assert shown.json()["reason"] == reason
    after = fingerprint(approved_copy)
    changed = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
    assert changed == {'"backfill_audit"."plans"', '"backfill_audit"."backfill_log"'}


def test_an_export_to_a_place_that_cannot_be_written_fails_with_one_line(
    project_copy: Path, approved_copy: Path
) -> None:
    result = cli(
        project_copy, "versions", "export", "fct_trips", "--version", "0", "--output",
        "/proc/self/x.parquet",
    )  # fmt: skip
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: cannot write /proc/self/x.parquet: IO Error: Cannot open file "
        '"/proc/self/x.parquet": No such file or directory\n'
    )


def test_version_0_of_a_model_never_backfilled_can_be_exported(
    warehouse: Path, tmp_path: Path
) -> None:
    """No audit schema at all: version 0 is the table as dbt built it, and the export
    creates nothing in the warehouse."""
    from support import backfill, query

    before = fingerprint(warehouse)
    output = tmp_path / "v0.parquet"
    result = backfill("versions", "export", "fct_trips", "--version", "0", "--output", str(output))
    assert result.exit_code == 0, result.stderr
    rows = query(warehouse, "select count(*) from marts.fct_trips")[0][0]
    assert result.stdout == f"wrote {rows:,} rows of fct_trips version 0 to {output}\n"
    assert query(warehouse, f"select count(*) from '{output}'") == [(rows,)]
    assert fingerprint(warehouse) == before
    v1 = str(tmp_path / "v1.parquet")
    later = backfill("versions", "export", "fct_trips", "--version", "1", "--output", v1)
    assert (later.exit_code, later.stderr) == (
        2,
        "Error: fct_trips has no version 1 (latest is 0)\n",
    )


def test_a_directory_that_is_no_dbt_project_is_refused_with_one_line(
    approved_copy: Path, tmp_path: Path
) -> None:
    before = fingerprint(approved_copy)
    for command in (PLAN, ("versions", "list", "fct_trips"), ("lineage", "fct_trips")):
        result = cli(tmp_path, *command)
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == (
            f"Error: project directory '{tmp_path}' has no dbt_project.yml; pass --project-dir "
            "with the dbt project\n"
        )
    assert fingerprint(approved_copy) == before
