"""Shared fixtures: the repository root and the project's manifest from one `dbt parse`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def dbt_parse(project_dir: Path, work_dir: Path) -> dict[str, Any]:
    """`dbt parse` the project into `work_dir` and return its manifest.json as a dict.

    Parsing needs no warehouse data; the profile comes from profiles.yml.example so the
    check also works before `make` has copied it, and every artifact (target, logs, the
    DuckDB path the profile names) stays under `work_dir`.
    """
    from dbt.cli.main import dbtRunner

    profiles_dir = work_dir / "profiles"
    profiles_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(project_dir / "profiles.yml.example", profiles_dir / "profiles.yml")
    target_path, log_path = work_dir / "target", work_dir / "logs"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RIDESHARE_DUCKDB_PATH", str(work_dir / "parse.duckdb"))
        env.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        result = dbtRunner().invoke(
            [
                "parse",
                "--project-dir", str(project_dir),
                "--profiles-dir", str(profiles_dir),
                "--target", "duckdb",
                "--target-path", str(target_path),
                "--log-path", str(log_path),
                "--no-partial-parse",
                "--quiet",
            ]
        )  # fmt: skip
    if not result.success:
        pytest.fail(
            f"`dbt parse` failed: {result.exception}; see {log_path / 'dbt.log'}",
            pytrace=False,
        )
    manifest: dict[str, Any] = json.loads((target_path / "manifest.json").read_text())
    return manifest


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real project's manifest, parsed once per test session."""
    return dbt_parse(REPO_ROOT, tmp_path_factory.mktemp("dbt_parse"))
