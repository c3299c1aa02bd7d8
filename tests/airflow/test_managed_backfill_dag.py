"""The DAG files as Airflow parses them: no import error, and managed_backfill's params and
task graph as issue 18 asks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from airflow_harness import HERE, REPO, airflow_env


@pytest.fixture(scope="module")
def parsed(airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What Airflow's DagBag finds in dags/ (tests/airflow/inspect_dags.py, in .airflow)."""
    home = tmp_path_factory.mktemp("airflow_parse")
    result = subprocess.run(
        [str(airflow_bin / "python"), str(HERE / "inspect_dags.py"), str(REPO / "dags")],
        env=airflow_env(home, home / "airflow.db"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def backfillable(dbt_target_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The models the manifest says `plan` accepts: incremental, with an enabled policy."""
    from orchestrator.context import Context

    ctx = Context(REPO)
    # The profile names a file (parsing opens none). Named like the other suites' copies,
    # so a dbt parse this worker already made for such a file is reused.
    path = tmp_path_factory.mktemp("parse") / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RIDESHARE_DUCKDB_PATH", str(path))
        try:
            manifest = ctx.dbt.manifest()
        finally:
            ctx.close()
    return [
        name
        for name in manifest.model_names()
        if manifest.model(name).is_incremental
        and isinstance(policy := manifest.model(name).meta.get("backfill"), dict)
        and policy.get("enabled", True) is not False
    ]


def test_every_dag_file_imports_without_errors(parsed: dict[str, Any]) -> None:
    assert parsed["import_errors"] == {}
    # The helpers beside the DAGs are .airflowignore'd: only DAG files are parsed.
    assert parsed["files"] == ["detect_late_data.py", "managed_backfill.py"]
    assert sorted(parsed["dags"]) == ["detect_late_data", "managed_backfill"]
    assert parsed["seconds"] < 2  # the DAG processor parses it every 30 s


def test_params_are_the_issues(parsed: dict[str, Any], backfillable: list[str]) -> None:
    params = parsed["dags"]["managed_backfill"]["params"]
    schemas = {name: p["schema"] for name, p in params.items()}
    defaults = {name: p["default"] for name, p in params.items()}
    assert list(params) == [
        "model",
        "start_date",
        "end_date",
        "dry_run",
        "chunk_days",
        "category",
        "reason",
    ]
    assert defaults == {
        "model": "NOTSET",  # no default: the person triggering picks one
        "start_date": "NOTSET",
        "end_date": "NOTSET",
        "dry_run": True,
        "chunk_days": None,
        "category": "other",
        "reason": "NOTSET",
    }
    # Read from the models' YAML at parse time (dags/backfill_ops/catalog.py): the same list.
    assert schemas["model"] == {"type": "string", "enum": backfillable}
    assert "fct_trips" in backfillable
    assert schemas["start_date"] == schemas["end_date"] == {"type": "string", "format": "date"}
    assert schemas["dry_run"] == {"type": "boolean"}
    assert schemas["chunk_days"] == {"type": ["null", "integer"], "minimum": 1}
    assert schemas["category"] == {
        "type": "string",
        "enum": [
            "late_data",
            "upstream_fix",
            "logic_change",
            "metric_change",
            "schema_change",
            "other",
        ],
    }
    assert schemas["reason"] == {"type": "string", "minLength": 1}


def test_task_graph_is_plan_dry_run_approval_run_report(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["managed_backfill"]
    tasks = dag["tasks"]
    assert dag["schedule"] == "None"  # triggered by a person, never on a timetable
    assert {name: t["upstream"] for name, t in tasks.items()} == {
        "plan": [],
        "dry_run": ["plan"],
        "approval": ["dry_run"],
        "run": ["approval"],
        "report": ["run"],
    }
    assert [name for name, t in tasks.items() if t["approval"]] == ["approval"]
    assert {name: t["trigger_rule"] for name, t in tasks.items()} == {
        "plan": "all_success",
        "dry_run": "all_success",
        "approval": "all_success",
        "run": "all_success",
        "report": "all_done",  # reports a failure or a skip too
    }
    # Only `run` retries (it resumes); the others would plan twice or ask twice.
    assert {name: t["retries"] for name, t in tasks.items()} == {
        "plan": 0,
        "dry_run": 0,
        "approval": 0,
        "run": 1,
        "report": 0,
    }


def test_detect_late_data_runs_daily_and_only_plans(parsed: dict[str, Any]) -> None:
    dag = parsed["dags"]["detect_late_data"]
    assert dag["schedule"] == "@daily"
    assert {name: t["upstream"] for name, t in dag["tasks"].items()} == {
        "detect": [],
        "open_plans": ["detect"],
    }
    assert not any(t["approval"] for t in dag["tasks"].values())  # a human approves later
