"""Each quality gate passes on the real tree and fails on a deliberately broken copy.

A gate that never fails protects nothing: a typo in `.sqlfluff` or pyproject's ruff
section could silently switch a rule off. So each test runs the gate's real command (or
check function) on a copy of the repository, then breaks the copy the way the gate
exists to catch, and expects the gate to fail and to name the broken file.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from orchestrator.cli_reference import load_cli

from .cli_checks import cli_docs_problems
from .conftest import REPO_ROOT
from .dbt_checks import is_mart, project_models, undocumented_contract_columns

BIN = Path(sys.executable).parent
PYTHON_DIRS = ("orchestrator", "tests", "bench", "dags")  # as the Makefile's `lint` target
# What a clean clone does not have: the venvs, dbt artifacts, warehouse files, caches.
NOT_COPIED = {".git", ".venv", ".bqemu", ".airflow", "target", "logs", "dbt_packages",
              "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
              "bench/data"}  # fmt: skip
NOT_COPIED_SUFFIXES = (".duckdb", ".duckdb.wal", ".egg-info")


def _not_copied(directory: str, names: list[str]) -> set[str]:
    rel = Path(directory).relative_to(REPO_ROOT)
    return {
        name
        for name in names
        if name in NOT_COPIED
        or (rel / name).as_posix() in NOT_COPIED
        or name.endswith(NOT_COPIED_SUFFIXES)
    }


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository without its venv, dbt artifacts and warehouse files."""
    dest = tmp_path_factory.mktemp("gates") / "repo"
    shutil.copytree(REPO_ROOT, dest, ignore=_not_copied)
    # As `make` does on a clean clone (a developer's own profiles.yml may differ).
    shutil.copy(dest / "profiles.yml.example", dest / "profiles.yml")
    return dest


def python_dirs(root: Path) -> list[str]:
    return [d for d in PYTHON_DIRS if (root / d).is_dir()]


def test_ruff_format_catches_unformatted_python(repo_copy: Path) -> None:
    cmd = [str(BIN / "ruff"), "format", "--check", *python_dirs(repo_copy)]
    clean = run(cmd, repo_copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    broken = repo_copy / "orchestrator" / "_gate_unformatted.py"
    broken.write_text("def f( a,b ):\n  return {'a':a,\n 'b':b}\n")
    try:
        result = run(cmd, repo_copy)
    finally:
        broken.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "_gate_unformatted.py" in result.stdout


def test_ruff_check_catches_lint_errors(repo_copy: Path) -> None:
    cmd = [str(BIN / "ruff"), "check", "--no-cache", *python_dirs(repo_copy)]
    clean = run(cmd, repo_copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    broken = repo_copy / "orchestrator" / "_gate_lint.py"
    broken.write_text("import os\nimport sys\n\nprint(sys.argv)\n")  # os is unused
    try:
        result = run(cmd, repo_copy)
    finally:
        broken.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "_gate_lint.py" in result.stdout and "F401" in result.stdout


def test_mypy_catches_untyped_defs(repo_copy: Path, tmp_path: Path) -> None:
    """pyproject's mypy section (disallow_untyped_defs) is in force for the package."""
    package = repo_copy / "orchestrator"
    typed, untyped = package / "_gate_typed.py", package / "_gate_untyped.py"
    typed.write_text("def double(x: int) -> int:\n    return 2 * x\n")
    untyped.write_text("def double(x):\n    return 2 * x\n")
    cmd = [str(BIN / "mypy"), "--cache-dir", str(tmp_path / "mypy_cache"), "--no-incremental"]
    try:
        clean = run([*cmd, str(typed.relative_to(repo_copy))], repo_copy)
        result = run([*cmd, str(untyped.relative_to(repo_copy))], repo_copy)
    finally:
        typed.unlink()
        untyped.unlink()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert "_gate_untyped.py:1: error: Function is missing a type annotation" in result.stdout


def test_sqlfluff_catches_upper_case_keywords(repo_copy: Path) -> None:
    """The copied `.sqlfluff` (dbt templater) passes a real model and fails a broken one.

    Both files are linted in one run, so dbt compiles the project once; the JSON report
    says which file broke which rule.
    """
    models = sorted((repo_copy / "models").rglob("*.sql"))
    assert models, "no dbt model to lint"
    # The largest model: the one with the most Jinja and macros for dbt to compile.
    real = max(models, key=lambda m: m.stat().st_size)
    broken = repo_copy / "models" / "gate_broken_sql.sql"
    broken.write_text("SELECT 1 AS one\n")
    try:
        result = run(
            [
                str(BIN / "sqlfluff"), "lint", "--format", "json", "--nocolor",
                str(real.relative_to(repo_copy)), str(broken.relative_to(repo_copy)),
            ],
            repo_copy,
            RIDESHARE_DUCKDB_PATH=":memory:",
        )  # fmt: skip
    finally:
        broken.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    codes = {Path(f["filepath"]).name: {v["code"] for v in f["violations"]} for f in report}
    assert codes.get(real.name) == set(), f"{real.name} is not lint-clean: {result.stdout}"
    assert "CP01" in codes.get(broken.name, set()), result.stdout


def test_hygiene_catches_an_undocumented_mart_column(manifest: dict[str, Any]) -> None:
    assert undocumented_contract_columns(manifest) == []

    marts = [m for m in project_models(manifest) if is_mart(m) and m.get("columns")]
    assert marts, "the project has no mart with documented columns to break"
    broken = copy.deepcopy(manifest)
    node = broken["nodes"][marts[0]["unique_id"]]
    column = next(iter(node["columns"]))
    node["columns"][column]["description"] = ""

    problems = undocumented_contract_columns(broken)
    assert any(f"column {column} has no description" in p for p in problems), problems


def test_cli_docs_catch_a_command_without_help() -> None:
    cli = load_cli()
    assert cli_docs_problems(cli) == []

    broken = click.Group("backfill", commands=dict(cli.commands), help=cli.help)
    broken.add_command(click.Command("undocumented", callback=lambda: None))
    assert cli_docs_problems(broken) == ["backfill undocumented: has no help text (docstring)"]
