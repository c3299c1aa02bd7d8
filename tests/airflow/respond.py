"""Answer the approval step of the running managed_backfill DAG run as an Airflow user.

Run by Airflow's venv while `airflow dags test` waits: `python respond.py USER PASSWORD
OPTION`. It goes through Airflow's own public API, in process (no server to start): sign in
with the user's password (the simple auth manager's /auth/token), wait for the approval's
human-in-the-loop request, then PATCH the answer as a person in the UI would. Prints the
answer's HTTP status and body as JSON.
"""

from __future__ import annotations

import json
import sys
import time

from airflow.api_fastapi.app import create_app
from fastapi.testclient import TestClient

DAG = "managed_backfill"
WAIT_SECONDS = 240


def main(user: str, password: str, option: str) -> None:
    with TestClient(create_app(apps="core")) as client:
        token = client.post("/auth/token", json={"username": user, "password": password})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        path = _approval_request(client)
        answer = client.patch(
            path, json={"chosen_options": [option], "params_input": {"comment": f"by {user}"}}
        )
    print(json.dumps({"status_code": answer.status_code, "body": answer.json()}))


def _approval_request(client: TestClient) -> str:
    """The HITL path of the running DAG run's `approval`, once the task has asked."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        runs = client.get(f"/api/v2/dags/{DAG}/dagRuns", params={"state": "running"})
        for run in runs.json().get("dag_runs", []) if runs.status_code == 200 else []:
            path = f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances/approval/-1"
            if client.get(f"{path}/hitlDetails").status_code == 200:
                return f"{path}/hitlDetails"
        time.sleep(0.5)
    raise SystemExit(f"no approval request of {DAG} within {WAIT_SECONDS}s")


if __name__ == "__main__":
    main(*sys.argv[1:4])
