"""dbt project hygiene checks over a parsed `manifest.json` (a plain dict).

Each check takes the manifest and returns a list of problems, one readable line each
(`models/marts/core/fct_trips.sql: fct_trips: column trip_id has no description`); an
empty list means the check passes. They are plain functions so that tests can feed
them deliberately broken manifests as well as the real one.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from orchestrator.errors import BadInput
from orchestrator.policy import policy_from_meta

Manifest = dict[str, Any]
Node = dict[str, Any]
Check = Callable[[Manifest], list[str]]

LAYERS = ("staging", "intermediate", "marts")
REQUIRED_BACKFILL_KEYS = ("partition_field", "unique_key", "chunk_days", "max_days", "critical")
_IDENT = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"


def project_models(manifest: Manifest) -> Iterator[Node]:
    """The project's own models (every version of a versioned model), in a stable order."""
    project = manifest["metadata"]["project_name"]
    for uid in sorted(manifest["nodes"]):
        node = manifest["nodes"][uid]
        if node["resource_type"] == "model" and node["package_name"] == project:
            yield node


def _where(node: Node) -> str:
    version = node.get("version")
    name = node["name"] if version is None else f"{node['name']} v{version}"
    return f"{node['original_file_path']}: {name}"


def _layer(node: Node) -> str | None:
    parts = node["original_file_path"].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "models" else None


def is_mart(node: Node) -> bool:
    return _layer(node) == "marts"


def is_contracted(node: Node) -> bool:
    """Marts and versioned models are read by others (Looker, ML jobs): they are contracts."""
    return is_mart(node) or node.get("version") is not None


def _meta(node: Node) -> dict[str, Any]:
    """The model's meta; dbt ≥ 1.10 keeps it under `config`, older YAML at the top level."""
    return {**(node.get("meta") or {}), **(node.get("config", {}).get("meta") or {})}


def models_without_description(manifest: Manifest) -> list[str]:
    """Every model says what one row is, in its folder's YAML."""
    return [
        f"{_where(node)}: has no description"
        for node in project_models(manifest)
        if not str(node.get("description") or "").strip()
    ]


def undocumented_contract_columns(manifest: Manifest) -> list[str]:
    """Every column of a mart or versioned model has a description and a data_type."""
    problems = []
    for node in filter(is_contracted, project_models(manifest)):
        columns: dict[str, Any] = node.get("columns") or {}
        if not columns:
            problems.append(f"{_where(node)}: declares no columns in its YAML")
        for name, column in columns.items():
            if not str(column.get("description") or "").strip():
                problems.append(f"{_where(node)}: column {name} has no description")
            if not str(column.get("data_type") or "").strip():
                problems.append(f"{_where(node)}: column {name} has no data_type")
    return problems


def marts_without_contract(manifest: Manifest) -> list[str]:
    """Marts and versioned models enforce their contract (`contract: {enforced: true}`)."""
    return [
        f"{_where(node)}: contract is not enforced (config: contract: {{enforced: true}})"
        for node in filter(is_contracted, project_models(manifest))
        if not (node.get("config", {}).get("contract") or {}).get("enforced")
    ]


def backfill_policy_problems(manifest: Manifest) -> list[str]:
    """Every fct_/dim_ mart declares `meta.backfill`, or `enabled: false` with a reason.

    A declared policy must be one the orchestrator can use: the required keys, a
    partition_field that is a documented `date` column, unique_key columns that exist,
    1 <= chunk_days <= max_days, and an incremental model to overwrite partitions of.
    """
    problems = []
    for node in project_models(manifest):
        if not (is_mart(node) and re.match(r"(fct|dim)_", node["name"])):
            continue
        where = _where(node)
        policy = _meta(node).get("backfill")
        if not isinstance(policy, dict):
            problems.append(
                f"{where}: no meta.backfill policy (or meta.backfill: "
                "{enabled: false, reason: ...})"
            )
            continue
        if policy.get("enabled", True) is False:
            if not str(policy.get("reason") or "").strip():
                problems.append(f"{where}: meta.backfill.enabled is false without a reason")
            continue
        problems.extend(f"{where}: meta.backfill: {p}" for p in _policy_problems(node, policy))
    return problems


def _policy_problems(node: Node, policy: dict[str, Any]) -> list[str]:
    missing = [key for key in REQUIRED_BACKFILL_KEYS if key not in policy]
    if missing:
        return [f"{key} is missing" for key in missing]
    try:
        parsed = policy_from_meta(node["name"], {"backfill": policy})
    except BadInput as exc:
        return [f"the orchestrator cannot read it: {exc}"]

    problems = []
    columns: dict[str, Any] = node.get("columns") or {}
    partition = columns.get(parsed.partition_field)
    if partition is None:
        problems.append(f"partition_field {parsed.partition_field} is not a documented column")
    elif str(partition.get("data_type") or "").lower() != "date":
        problems.append(f"partition_field {parsed.partition_field} is not a date column")
    problems.extend(
        f"unique_key column {key} is not a documented column"
        for key in parsed.unique_key
        if key not in columns
    )
    bad_sizes = [
        f"{key} must be a positive integer, not {policy[key]!r}"
        for key in ("chunk_days", "max_days")
        if isinstance(policy[key], bool) or not isinstance(policy[key], int) or policy[key] < 1
    ]
    problems.extend(bad_sizes)
    if not bad_sizes and parsed.chunk_days > parsed.max_days:
        problems.append(f"chunk_days {parsed.chunk_days} exceeds max_days {parsed.max_days}")
    if not isinstance(policy["critical"], bool):
        problems.append(f"critical must be true or false, not {policy['critical']!r}")
    if parsed.partition_granularity != "day":
        problems.append(f"partition_granularity {parsed.partition_granularity!r} is not 'day'")
    materialized = node.get("config", {}).get("materialized")
    if materialized != "incremental":
        problems.append(f"the model is materialized as {materialized}, not incremental")
    return problems


def naming_problems(manifest: Manifest) -> list[str]:
    """Names follow STYLE.md §1: `stg_<source>__<entity>` under models/staging/<source>/,
    `int_` in intermediate, `fct_`/`dim_` in marts."""
    problems = []
    for node in project_models(manifest):
        name, layer = node["name"], _layer(node)
        parts = node["original_file_path"].split("/")
        if layer not in LAYERS:
            problems.append(f"{_where(node)}: lives outside models/{{{','.join(LAYERS)}}}/")
        elif layer == "staging":
            if len(parts) != 4:
                problems.append(f"{_where(node)}: staging models live in models/staging/<source>/")
            elif not re.fullmatch(rf"stg_{re.escape(parts[2])}__{_IDENT}", name):
                problems.append(
                    f"{_where(node)}: staging model is not named stg_{parts[2]}__<entity>"
                )
        elif layer == "intermediate" and not re.fullmatch(rf"int_{_IDENT}", name):
            problems.append(f"{_where(node)}: intermediate model is not named int_<entity>_<verb>")
        elif layer == "marts" and not re.fullmatch(rf"(fct|dim)_{_IDENT}", name):
            problems.append(f"{_where(node)}: mart is not named fct_<event>s or dim_<entity>s")
    return problems


def yaml_layout_problems(manifest: Manifest) -> list[str]:
    """One YAML per folder (STYLE.md §1): each model folder has exactly one YAML file for
    its models (their docs, data tests and unit tests), `_<folder>__models.yml` in that
    folder; sources live in `_<source>__sources.yml`."""
    problems = []
    project = manifest["metadata"]["project_name"]
    yaml_of_folder: dict[str, set[str]] = defaultdict(set)
    for node in project_models(manifest):
        folder = posixpath.dirname(node["original_file_path"])
        patch = node.get("patch_path")
        if not patch:
            problems.append(f"{_where(node)}: is in no YAML file")
            continue
        yaml_of_folder[folder].add(patch.split("://", 1)[-1])
    # Generic data tests and unit tests declared in a models folder's YAML count too.
    for entry in (*manifest["nodes"].values(), *manifest.get("unit_tests", {}).values()):
        path = entry.get("original_file_path", "")
        if (
            entry.get("package_name") == project
            and entry["resource_type"] in ("test", "unit_test")
            and path.startswith("models/")
            and path.endswith((".yml", ".yaml"))
            and not path.endswith("__sources.yml")
        ):
            yaml_of_folder[posixpath.dirname(path)].add(path)
    for folder in sorted(yaml_of_folder):
        files = sorted(yaml_of_folder[folder])
        if len(files) > 1:
            problems.append(f"{folder}/: models are spread over {len(files)} YAML files: {files}")
        for path in files:
            base = posixpath.basename(path)
            if posixpath.dirname(path) != folder:
                problems.append(f"{folder}/: models are described outside their folder, in {path}")
            elif base != (expected := f"_{posixpath.basename(folder)}__models.yml"):
                problems.append(f"{path}: the models YAML of {folder}/ is named {expected}")
    for source in manifest.get("sources", {}).values():
        if source.get("package_name") != project:
            continue
        path = source["original_file_path"]
        expected = f"_{source['source_name']}__sources.yml"
        if posixpath.basename(path) != expected:
            problems.append(f"{path}: source {source['source_name']} belongs in {expected}")
    return sorted(set(problems))


CHECKS: dict[str, Check] = {
    "every model has a description": models_without_description,
    "mart and versioned columns are documented and typed": undocumented_contract_columns,
    "marts and versioned models enforce their contract": marts_without_contract,
    "fct_/dim_ marts declare meta.backfill": backfill_policy_problems,
    "model names follow STYLE.md": naming_problems,
    "one YAML per folder": yaml_layout_problems,
}
