"""Reads dbt's manifest.json: models, their relations, policies, the DAG and exposures."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

from orchestrator.errors import BadInput
from orchestrator.policy import BackfillPolicy, policy_from_meta


@dataclass(frozen=True)
class DataTest:
    """A dbt data test attached to a model (unique, not_null, relationships, ...)."""

    unique_id: str
    name: str
    severity: str  # ERROR or WARN, as dbt's config says


@dataclass(frozen=True)
class CompiledDataTest:
    """A dbt data test of the model, compiled by dbt against the production relation."""

    name: str
    severity: str
    sql: str


@dataclass(frozen=True)
class Model:
    unique_id: str
    name: str
    relation: str  # schema.alias, as the warehouse names it
    materialized: str
    meta: dict[str, Any]
    parents: tuple[str, ...]
    original_file_path: str
    relation_name: str = ""  # as dbt renders it in SQL, e.g. "db"."marts"."fct_trips"

    @property
    def is_incremental(self) -> bool:
        return self.materialized == "incremental"

    def policy(self) -> BackfillPolicy:
        return policy_from_meta(self.name, self.meta)


class Manifest:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.nodes: dict[str, Any] = raw["nodes"]
        self._by_name = {
            _selector(node): uid
            for uid, node in self.nodes.items()
            if node["resource_type"] == "model"
        }

    def model_names(self) -> list[str]:
        return sorted(self._by_name)

    def model(self, name: str) -> Model:
        uid = self._by_name.get(name)
        if uid is None:
            close = difflib.get_close_matches(name, self.model_names(), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise BadInput(f"unknown model '{name}'{hint}")
        return self._model(uid)

    def _model(self, uid: str) -> Model:
        node = self.nodes[uid]
        return Model(
            unique_id=uid,
            name=_selector(node),
            relation=f"{node['schema']}.{node.get('alias') or node['name']}",
            materialized=str(node["config"].get("materialized")),
            meta=dict(node["config"].get("meta") or node.get("meta") or {}),
            parents=tuple(node["depends_on"]["nodes"]),
            original_file_path=str(node["original_file_path"]),
            relation_name=str(node.get("relation_name") or ""),
        )

    def data_tests(self, name: str) -> list[DataTest]:
        """The data tests attached to a model (not its unit tests), by name."""
        uid = self.model(name).unique_id
        return sorted(
            (
                DataTest(tid, str(node["name"]), str(node["config"].get("severity", "ERROR")))
                for tid, node in self.nodes.items()
                if node["resource_type"] == "test" and node.get("attached_node") == uid
            ),
            key=lambda t: t.name,
        )

    def relation_of(self, uid: str) -> str:
        node = self.raw["sources"].get(uid) or self.nodes[uid]
        name = node.get("identifier") or node.get("alias") or node["name"]
        return f"{node['schema']}.{name}"

    def downstream(self, name: str) -> list[Model]:
        """Models that read `name`, directly or not, in DAG order (parents first)."""
        root = self.model(name).unique_id
        child_map: dict[str, list[str]] = self.raw["child_map"]
        seen: set[str] = set()
        stack = [root]
        while stack:
            for child in child_map.get(stack.pop(), []):
                if child.startswith("model.") and child not in seen:
                    seen.add(child)
                    stack.append(child)
        order = TopologicalSorter(
            {uid: [p for p in self.nodes[uid]["depends_on"]["nodes"] if p in seen] for uid in seen}
        ).static_order()
        return [self._model(uid) for uid in order]

    def inputs(self, name: str) -> list[dict[str, str | None]]:
        """Relations a model reads (ephemeral parents expanded), each with the field a
        backfill range filters it by, when it declares one (`meta.partition_field`)."""
        found: dict[str, str | None] = {}
        stack = list(self.model(name).parents)
        while stack:
            uid = stack.pop()
            node = self.raw["sources"].get(uid) or self.nodes.get(uid)
            if node is None:
                continue
            if node.get("config", {}).get("materialized") == "ephemeral":
                stack.extend(node["depends_on"]["nodes"])
                continue
            meta = node.get("config", {}).get("meta") or node.get("meta") or {}
            backfill = meta.get("backfill")
            policy_field = backfill.get("partition_field") if isinstance(backfill, dict) else None
            found[self.relation_of(uid)] = meta.get("partition_field") or policy_field
        return [{"relation": r, "partition_field": f} for r, f in sorted(found.items())]

    def code_fingerprint(self, name: str) -> str:
        """What `backfill detect` calls a model's code: md5 of `uid=checksum` lines (dbt's
        checksum of each file) of the model and every model, seed and snapshot upstream of
        it, sorted. A compiled query differs with every range, so the ledger keeps this
        instead; `macros/ledger/ledger_code_fingerprint.sql` computes the same in dbt."""
        lines, seen, stack = [], set(), [self.model(name).unique_id]
        while stack:
            uid = stack.pop()
            node = self.nodes.get(uid)
            if uid in seen or node is None:
                continue
            seen.add(uid)
            lines.append(f"{uid}={node['checksum']['checksum']}")
            stack.extend(node.get("depends_on", {}).get("nodes", []))
        return hashlib.md5("\n".join(sorted(lines)).encode()).hexdigest()

    def reads_ephemeral(self, name: str) -> bool:
        """Whether compiling the model inlines an ephemeral model (only parents can be)."""
        return any(
            self.nodes.get(uid, {}).get("config", {}).get("materialized") == "ephemeral"
            for uid in self.model(name).parents
        )

    def exposures_reading(self, names: list[str]) -> list[str]:
        """Exposures (dashboards, ML jobs) that depend on any of these models."""
        uids = {self.model(n).unique_id for n in names}
        return sorted(
            exposure["name"]
            for exposure in self.raw.get("exposures", {}).values()
            if uids & set(exposure["depends_on"]["nodes"])
        )


def _selector(node: dict[str, Any]) -> str:
    """The name dbt selects a model by: `dim_drivers.v1` for a version, else its name."""
    version = node.get("version")
    if version is not None and str(version) != str(node.get("latest_version")):
        return f"{node['name']}.v{version}"
    return str(node["name"])
