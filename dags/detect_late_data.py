"""detect_late_data: every day, `backfill detect`, and a plan for each model it finds stale.

detect -> open_plans. A model with stale or missing partitions gets a plan of exactly
those (with its downstream models), dry-run, category late_data, requested by the DAG's
automation identity: it still needs a human approval (managed_backfill's gate, or
`backfill approve`), so nothing is written to a model here. See docs/airflow.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, get_current_context, task
from backfill_ops import detection

with DAG(
    dag_id="detect_late_data",
    description="Find stale partitions daily and open a plan for them (approval needed)",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["backfill"],
    doc_md=__doc__,
) as dag:

    @task(retries=1)
    def detect() -> None:
        detection.detect(get_current_context())

    @task(retries=0)
    def open_plans() -> None:
        detection.open_plans(get_current_context())

    detect() >> open_plans()
