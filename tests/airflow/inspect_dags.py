"""Parse the DAGs folder as Airflow's DAG processor does and print what it found, as JSON.

Run by Airflow's venv: `python inspect_dags.py DAGS_FOLDER`. BundleDagBag is the DagBag the
DAG processor and `airflow dags test` use: it puts the folder on `sys.path` like they do.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag
from airflow.providers.standard.operators.hitl import ApprovalOperator


def main(folder: Path) -> None:
    started = time.monotonic()
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    seconds = time.monotonic() - started
    dags = {}
    for dag_id, dag in bag.dags.items():
        params = {
            name: {"default": _jsonable(dag.params.get_param(name).value),
                   "schema": dag.params.get_param(name).schema}
            for name in dag.params
        }  # fmt: skip
        tasks = {
            task.task_id: {
                "upstream": sorted(task.upstream_task_ids),
                "trigger_rule": getattr(task.trigger_rule, "value", task.trigger_rule),
                "retries": task.retries,
                "approval": isinstance(task, ApprovalOperator),
            }
            for task in dag.tasks
        }
        dags[dag_id] = {"params": params, "tasks": tasks, "schedule": str(dag.schedule)}
    files = sorted(str(Path(f).relative_to(folder)) for f in bag.file_last_changed)
    report = {"import_errors": bag.import_errors, "files": files, "dags": dags, "seconds": seconds}
    print(json.dumps(report))


def _jsonable(value: object) -> object:
    return value if value is None or isinstance(value, str | int | bool) else repr(value)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
