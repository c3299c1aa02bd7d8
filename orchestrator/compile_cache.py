"""What dbt produced for one exact state of the project: its manifest and compiled SQL.

Every `backfill` command is a new process, and dbt costs ~3 s to import and ~1.5 s to
parse before it compiles anything. `plan` compiles every chunk with dbt and keeps the
results here; `dry-run`, `approve` and `run` read them back without importing dbt when
nothing dbt reads has changed since.

dbt's output is a function of the project files, the profile and target, the env vars
those files read, dbt's version and the command's vars, so the key hashes exactly those
(plus the git commit, which the plan fingerprint covers too). Any change is another key,
and dbt runs again: an edited model after approval still recompiles and changes the
fingerprint. What a key cannot see is a model whose SQL depends on what a compile-time
query returns from the warehouse; none of this project's models do (a range compile
reads nothing), and `BACKFILL_COMPILE_CACHE=off` makes every command compile afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.project import PROJECT_FILES, git_commit, project_hash

# Distributions whose versions change what dbt compiles.
_DBT_DISTRIBUTIONS = ("dbt-core", "dbt-adapters", "dbt-duckdb", "dbt-bigquery")
# A call of dbt's env_var() in a project or profile file: the variable it reads.
ENV_VAR_CALL = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")


def enabled() -> bool:
    return os.environ.get("BACKFILL_COMPILE_CACHE", "on").strip().lower() not in {"off", "0"}


@dataclass(frozen=True)
class CompiledEntry:
    unique_id: str
    sql: str
    invocation_id: str


class CompileCache:
    """Files under `directory`, one per manifest and per compiled (model, vars)."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.key = key

    @classmethod
    def for_project(
        cls, project_dir: Path, profiles_dir: Path, target: str | None, cache_dir: Path
    ) -> CompileCache:
        return cls(cache_dir, state_key(project_dir, profiles_dir, target))

    def manifest(self) -> dict[str, Any] | None:
        data = self._read(self._path("manifest"))
        return data if isinstance(data, dict) else None

    def store_manifest(self, manifest: dict[str, Any]) -> None:
        self._write(self._path("manifest"), manifest)

    def compiled(self, model: str, dbt_vars: dict[str, Any]) -> CompiledEntry | None:
        data = self._read(self._path(_compile_id(model, dbt_vars)))
        return None if data is None else CompiledEntry(**data)

    def store_compiled(self, model: str, dbt_vars: dict[str, Any], entry: CompiledEntry) -> None:
        self._write(
            self._path(_compile_id(model, dbt_vars)),
            {"unique_id": entry.unique_id, "sql": entry.sql, "invocation_id": entry.invocation_id},
        )

    def data_tests(self, model: str) -> list[dict[str, str]] | None:
        data = self._read(self._path(_compile_id(model, {"data_tests": True})))
        return data if isinstance(data, list) else None

    def store_data_tests(self, model: str, tests: list[dict[str, str]]) -> None:
        self._write(self._path(_compile_id(model, {"data_tests": True})), tests)

    def _path(self, name: str) -> Path:
        return self.directory / self.key / f"{name}.json"

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # absent, or torn by a crash mid-write: compile again
            return None

    @staticmethod
    def _write(path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, sort_keys=True, default=str))
        partial.replace(path)  # atomic: a reader sees the whole entry or none


def state_key(project_dir: Path, profiles_dir: Path, target: str | None) -> str:
    """Hash of everything dbt's output depends on, apart from the command's own vars."""
    profiles = profiles_dir / "profiles.yml"
    profile_text = profiles.read_text() if profiles.is_file() else ""
    read_vars = set(ENV_VAR_CALL.findall(profile_text)) | _env_vars_read(project_dir)
    env = {name: os.environ.get(name) for name in sorted(read_vars)}
    env.update({k: v for k, v in os.environ.items() if k.startswith("DBT_")})
    state = {
        "project": project_hash(project_dir),
        "git_commit": git_commit(project_dir),
        "project_dir": str(project_dir),
        "profiles": profile_text,
        "target": target,
        "env": env,
        "versions": {d: _version(d) for d in _DBT_DISTRIBUTIONS},
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:20]


def _env_vars_read(project_dir: Path) -> set[str]:
    names: set[str] = set()
    for entry in PROJECT_FILES:
        root = project_dir / entry
        paths = [root] if root.is_file() else root.rglob("*")
        for path in paths:
            if path.is_file() and path.suffix in {".sql", ".yml", ".yaml", ".py"}:
                names.update(ENV_VAR_CALL.findall(path.read_text(errors="replace")))
    return names


def _compile_id(model: str, dbt_vars: dict[str, Any]) -> str:
    text = json.dumps({"model": model, "vars": dbt_vars}, sort_keys=True, default=str)
    return "compile-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
