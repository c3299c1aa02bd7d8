"""The library behind every front end (the CLI, the Airflow DAGs, tests): one call per
command, each taking a `Context`. Every rule lives behind these calls, so no front end
can skip a check another one makes.

    plan -> dry_run -> approve -> run  (-> rollback)
"""

from __future__ import annotations

from orchestrator.approval import approve
from orchestrator.detect import ModelReport, detect
from orchestrator.dry_run import DryRunReport, dry_run, usd_per_tib
from orchestrator.lineage import lineage_of
from orchestrator.lock import unlock
from orchestrator.looker import generate as generate_lookml
from orchestrator.maintain import Expiry, maintain
from orchestrator.online.command import sync_model as sync_online
from orchestrator.plan import CATEGORIES
from orchestrator.planner import create_plan, load_plan
from orchestrator.report import write_report
from orchestrator.review import Review, review
from orchestrator.rollback import RollbackReport, rollback
from orchestrator.runner import ProgressCallback, RunReport, StepCallback, run
from orchestrator.status import history, status
from orchestrator.versions import export_version, list_versions, take_snapshot

__all__ = [
    "CATEGORIES",
    "DryRunReport",
    "Expiry",
    "ModelReport",
    "ProgressCallback",
    "Review",
    "RollbackReport",
    "RunReport",
    "StepCallback",
    "approve",
    "create_plan",
    "detect",
    "dry_run",
    "export_version",
    "generate_lookml",
    "history",
    "lineage_of",
    "list_versions",
    "load_plan",
    "maintain",
    "review",
    "rollback",
    "run",
    "status",
    "sync_online",
    "take_snapshot",
    "unlock",
    "usd_per_tib",
    "write_report",
]
