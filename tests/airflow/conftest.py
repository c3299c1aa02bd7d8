"""Fixtures of the Airflow suite: Airflow's own venv (.airflow, `make airflow`) driven as
subprocesses, a metadata database migrated once per session, and a private copy of the
built warehouse per test (tests/conftest.py)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from airflow_harness import AIRFLOW_BIN, PASSWORDS, REPO, Airflow, airflow_env

from tests.reliability.crash_harness import snapshot_project

TODAY = "2026-11-22"


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this session sees (the session's basetemp if none)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """Airflow's venv. Missing is a failure, not a skip: `make test` builds it first."""
    if not (AIRFLOW_BIN / "airflow").is_file():
        pytest.fail(f"{AIRFLOW_BIN.parent} is missing: build it with `make airflow`", pytrace=False)
    return AIRFLOW_BIN


@pytest.fixture(scope="session")
def airflow_db(airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty metadata database: one `airflow db migrate` (~3 s) for all workers."""
    shared = _shared_dir(tmp_path_factory)
    template = shared / "airflow-db" / "airflow.db"
    with _exclusive(shared / "airflow-db.lock"):
        if not template.is_file():
            home = template.parent
            home.mkdir(exist_ok=True)
            result = subprocess.run(
                [str(airflow_bin / "airflow"), "db", "migrate"],
                env=airflow_env(home, home / "migrating.db"),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            (home / "migrating.db").rename(template)  # whole, or absent for the next try
    return template


@pytest.fixture(scope="session")
def project_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dbt project copied outside git for the session. A plan's fingerprint covers the
    project files and the git commit, and other people edit the working tree while the
    suite runs: a plan approved against it could turn stale before its run."""
    target = snapshot_project(tmp_path_factory.mktemp("project"))
    shutil.copyfile(REPO / "profiles.yml.example", target / "profiles.yml")
    return target


@pytest.fixture(scope="session")
def shared_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this worker's tests put their warehouse copy and dbt's artifacts. One path for
    every test: the orchestrator's compile cache is keyed on the warehouse path (the
    profile reads it), so only a worker's first plan starts dbt (~7 s)."""
    return tmp_path_factory.mktemp("airflow-work")


@pytest.fixture
def airflow(
    airflow_db: Path,
    project_snapshot: Path,
    warehouse_template: Path,
    shared_work: Path,
    tmp_path: Path,
) -> Airflow:
    """A private Airflow home and metadata database, and a fresh copy of the warehouse."""
    warehouse = shared_work / "warehouse.duckdb"
    Path(f"{warehouse}.wal").unlink(missing_ok=True)
    shutil.copyfile(warehouse_template, warehouse)
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copyfile(airflow_db, home / "airflow.db")
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    env = airflow_env(home, home / "airflow.db")
    env.update(
        RIDESHARE_PROJECT_DIR=str(project_snapshot),
        RIDESHARE_DUCKDB_PATH=str(warehouse),
        DBT_PROFILES_DIR=str(project_snapshot),
        BACKFILL_DBT_TARGET_PATH=str(shared_work / "dbt-target"),
        BACKFILL_TODAY=TODAY,
        OPENLINEAGE_DIR=str(tmp_path / "openlineage"),
        # `airflow dags test` has no signed-in user: the requester is named as by the CLI.
        BACKFILL_OPERATOR="alice",
    )
    return Airflow(home, warehouse, env)
