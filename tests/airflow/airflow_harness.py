"""Airflow's venv (.airflow, `make airflow`) driven as subprocesses from the project's tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = REPO / ".airflow" / "bin"
HERE = Path(__file__).resolve().parent
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}  # Airflow users (all admins)
TIMEOUT = 300


@dataclass(frozen=True)
class Ran:
    returncode: int
    output: str  # stdout and stderr


@dataclass(frozen=True)
class Airflow:
    """One Airflow home (config by env, sqlite metadata database) and one warehouse file."""

    home: Path
    warehouse: Path
    env: dict[str, str]

    def dags_test(self, conf: dict[str, Any], dag_id: str = "managed_backfill") -> Ran:
        """`airflow dags test DAG --conf CONF`, waited for."""
        return _finish(*self._start("dags-test", "airflow", *_dags_test(conf, dag_id)))

    def dags_test_answered(self, conf: dict[str, Any], user: str) -> tuple[Ran, int | None]:
        """`dags test` while `user` approves its approval step through Airflow's HITL API:
        the run, and the HTTP status of the answer (None when the run never asked)."""
        run = self._start("dags-test", "airflow", *_dags_test(conf))
        respond = str(HERE / "respond.py")
        answer = self._start("respond", "python", respond, user, PASSWORDS[user], "Approve")
        deadline = time.monotonic() + TIMEOUT
        while answer[0].poll() is None and run[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            answer[0].wait(timeout=10)  # the run ended first: an answer given may still exit
        except subprocess.TimeoutExpired:  # or nobody was asked
            answer[0].kill()
        replied = _finish(*answer)
        printed = [line for line in replied.output.splitlines() if line.startswith('{"status')]
        status = int(json.loads(printed[-1])["status_code"]) if printed else None
        return _finish(*run), status

    def _start(self, name: str, program: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
        # Output goes to a file: a pipe nobody reads while both processes run could fill up.
        log = self.home / f"{name}.log"
        with log.open("w") as out:
            popen = subprocess.Popen(
                [str(AIRFLOW_BIN / program), *args],
                env=self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        return popen, log


def _dags_test(conf: dict[str, Any], dag_id: str = "managed_backfill") -> list[str]:
    return ["dags", "test", dag_id, "--conf", json.dumps(conf)]


def _finish(popen: subprocess.Popen[str], log: Path) -> Ran:
    try:
        popen.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        pytest.fail(f"{popen.args} ran over {TIMEOUT}s:\n{log.read_text()[-5000:]}")
    return Ran(popen.returncode, log.read_text())


def airflow_env(home: Path, database: Path) -> dict[str, str]:
    """Airflow configured by env alone: its home, the DAGs folder, a sqlite database, and
    the simple auth manager's users with known passwords (for the approval API)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BACKFILL_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{database}",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:admin" for u in PASSWORDS),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API_AUTH__JWT_SECRET="tests-only-secret",
        VIRTUAL_ENV=str(AIRFLOW_BIN.parent),
        PATH=f"{AIRFLOW_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    for leak in ("PYTHONPATH", "PYTHONHOME"):  # nothing of the main venv in Airflow's
        env.pop(leak, None)
    return env
