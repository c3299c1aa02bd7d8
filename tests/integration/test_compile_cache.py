"""`plan` compiles with dbt; later commands on an unchanged project reuse its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, backfill, query

# A new `backfill` process, as a user starts one, that reports whether it imported dbt.
CHILD = """
import sys
from orchestrator.cli import cli
try:
    cli.main(args=sys.argv[1:], standalone_mode=False)
finally:
    print("dbt imported" if "dbt.cli.main" in sys.modules else "dbt not imported", file=sys.stderr)
"""


def new_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", CHILD, *args, "--project-dir", str(REPO)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


@pytest.fixture
def plan_id(warehouse: Path) -> str:
    result = backfill(
        "plan", "fct_trips", "--start", "2024-01-10", "--end", "2024-01-20",
        "--chunk-days", "4", "--requested-by", "alice", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return str(result.json()["backfill_id"])


def test_a_dry_run_after_the_plan_compiles_nothing_and_agrees_with_dbt(
    warehouse: Path, plan_id: str
) -> None:
    cached = new_process("dry-run", plan_id, "--json")
    assert cached.returncode == 0, cached.stderr
    assert cached.stderr.strip().endswith("dbt not imported")
    from_cache = json.loads(cached.stdout)
    sql_from_cache = [Path(c["compiled_sql"]).read_text() for c in from_cache["chunks"]]

    fresh = new_process("dry-run", plan_id, "--json", env={"BACKFILL_COMPILE_CACHE": "off"})
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stderr.strip().endswith("dbt imported")
    from_dbt = json.loads(fresh.stdout)
    sql_from_dbt = [Path(c["compiled_sql"]).read_text() for c in from_dbt["chunks"]]

    assert from_cache["fingerprint"] == from_dbt["fingerprint"]
    assert len(sql_from_cache) == 3
    assert sql_from_cache == sql_from_dbt
    assert "cast('2024-01-10' as date)" in sql_from_cache[0]


def test_a_run_after_the_plan_validates_with_the_planned_data_tests_without_dbt(
    warehouse: Path, plan_id: str
) -> None:
    assert backfill("dry-run", plan_id).exit_code == 0
    assert backfill("approve", plan_id, "--approver", "bob").exit_code == 0

    run = new_process("run", plan_id, "--execute", "--json")

    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().endswith("dbt not imported")
    dbt_tests = query(
        warehouse,
        "select chunk_no, count(*), count(*) filter (where passed) "
        "from backfill_audit.validation_reports "
        f"where backfill_id = '{plan_id}' and check_name like 'dbt test %' group by 1 order by 1",
    )
    assert dbt_tests == [(1, 7, 7), (2, 7, 7), (3, 7, 7)]
