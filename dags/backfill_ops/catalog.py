"""Where the dbt project is and which of its models may be backfilled, read at DAG parse time.

The DAG processor parses a DAG file every 30 s or so, and the `model` param's enum is needed
at every parse. The manifest is the orchestrator's source of truth, but getting one costs
dbt's import and a parse (~5 s, and the profile's env vars) or a compile-cache key that
depends on the warehouse env of whoever compiled last. So the enum reads `meta.backfill`
straight from the models' YAML files (~10 ms, no dbt, no env): the project keeps every
backfill policy there (docs/conventions.md), and the dbt hygiene gate already refuses an
enabled `meta.backfill` on a model that is not incremental. tests/airflow checks that this
list equals the manifest's backfillable models. Nothing here can widen what may be run:
`plan` re-checks the model against the manifest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no stubs in either venv

# dags/backfill_ops/catalog.py -> the repository root, which is the dbt project.
DEFAULT_PROJECT_DIR = Path(__file__).resolve().parents[2]


def project_dir() -> Path:
    """The dbt project: $RIDESHARE_PROJECT_DIR, else the repository holding these DAGs."""
    return Path(os.environ.get("RIDESHARE_PROJECT_DIR") or DEFAULT_PROJECT_DIR)


def backfillable_models(root: Path | None = None) -> list[str]:
    """Models whose YAML declares `meta.backfill` without `enabled: false`, sorted."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
    names = set()
    for path in sorted((root or project_dir()).glob("models/**/*.yml")):
        document = yaml.load(path.read_text(), Loader=loader) or {}
        for model in document.get("models") or []:
            if _policy_enabled(model):
                names.add(str(model["name"]))
    return sorted(names)


def _policy_enabled(model: dict[str, Any]) -> bool:
    # dbt merges the model's top-level `meta` with `config.meta` (the current style).
    meta = {**(model.get("meta") or {}), **((model.get("config") or {}).get("meta") or {})}
    policy = meta.get("backfill")
    return isinstance(policy, dict) and policy.get("enabled", True) is not False
