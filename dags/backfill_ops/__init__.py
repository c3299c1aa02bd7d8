"""What the backfill DAGs run: the orchestrator's library, called from Airflow tasks.

A package beside the DAG files (Airflow puts the DAGs folder on `sys.path`), listed in
`.airflowignore` so the DAG processor does not parse it for DAGs.
"""
