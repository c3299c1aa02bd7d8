"""Runs dbt through its public surface (dbtRunner, in this process) and reads its artifacts.

A dbt CLI process costs ~3 s of start-up; one dbtRunner reused with a parsed manifest
compiles a model in ~0.1-0.3 s, so a plan compiles every chunk in one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator import compile_cache
from orchestrator.compile_cache import CompileCache, CompiledEntry
from orchestrator.errors import BadInput, WorkFailed
from orchestrator.manifest import CompiledDataTest, Manifest
from orchestrator.project import project_hash

# Parsed manifests by (project dir, target, project hash, warehouse key): see _warehouse_key.
_PARSED: dict[tuple[str, str | None, str, str], Any] = {}
_WAREHOUSE_KEYS: dict[tuple[str, str, str | None, str], str] = {}


@dataclass(frozen=True)
class Compiled:
    """The SQL dbt compiled for one model with one set of vars."""

    unique_id: str
    sql: str
    invocation_id: str


class Dbt:
    """One dbt project and target, invoked in-process; the manifest is parsed once."""

    def __init__(self, project_dir: Path, target: str | None = None) -> None:
        self.project_dir = project_dir.resolve()
        self.target = target
        # Tests running in parallel give each worker its own dbt target path.
        self.target_path = Path(
            os.environ.get("BACKFILL_DBT_TARGET_PATH", self.project_dir / "target" / "orchestrator")
        )
        self.log_path = self.target_path / "logs"
        self._manifest: Manifest | None = None
        self._compile_cache: CompileCache | None = None
        self._project_hash: str | None = None

    @property
    def profiles_dir(self) -> Path:
        """profiles.yml beside the project, else a copy of profiles.yml.example (no manual step)."""
        if (self.project_dir / "profiles.yml").exists():
            return self.project_dir
        if not (self.project_dir / "profiles.yml.example").is_file():
            raise BadInput(
                f"project directory {str(self.project_dir)!r} has neither profiles.yml nor "
                "profiles.yml.example"
            )
        fallback = self.target_path / "profiles"
        fallback.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.project_dir / "profiles.yml.example", fallback / "profiles.yml")
        return fallback

    def _args(self, command: list[str]) -> list[str]:
        args = [
            *command,
            "--project-dir",
            str(self.project_dir),
            "--profiles-dir",
            str(self.profiles_dir),
            "--target-path",
            str(self.target_path),
            "--log-path",
            str(self.log_path),
            "--log-level",
            "none",
            # The orchestrator reads the manifest and results in memory: writing
            # manifest.json and run_results.json costs ~0.2 s per compile and ~0.6 s per parse.
            "--no-write-json",
        ]
        if self.target:
            args += ["--target", self.target]
        return args

    def invoke(self, command: list[str], *, share_manifest: bool = False) -> Any:
        """Run one dbt command; raise WorkFailed naming the command and the log file.

        Each command gets a fresh copy of the parsed manifest: dbt marks ephemeral CTEs as
        injected in the manifest it is given, and a reused one compiles the next model
        without them. `share_manifest` skips the copy (~0.2 s) where no ephemeral is read.
        """
        from dbt.cli.main import dbtRunner  # dbt's import costs ~2 s: only when dbt is needed

        parsed = self._manifest_object()
        runner = dbtRunner(manifest=parsed if share_manifest else parsed.deepcopy())
        result = runner.invoke(self._args(command))
        if not result.success:
            raise WorkFailed(
                f"dbt {' '.join(command[:1])} failed: {_first_error(result)} "
                f"(log: {self.log_path / 'dbt.log'})"
            )
        return result

    def _manifest_object(self) -> Any:
        """Parse the project once per process, version of its files and warehouse."""
        from dbt.cli.main import dbtRunner

        if self._project_hash is None:
            self._project_hash = project_hash(self.project_dir)
        key = (str(self.project_dir), self.target, self._project_hash, self._warehouse_key())
        if key not in _PARSED:
            result = dbtRunner().invoke(self._args(["parse"]))
            if not result.success:
                raise WorkFailed(
                    f"dbt parse failed: {_first_error(result)} (log: {self.log_path / 'dbt.log'})"
                )
            _PARSED[key] = result.result
        return _PARSED[key]

    def _warehouse_key(self) -> str:
        """What of the warehouse a parsed manifest depends on, as a short hash.

        dbt writes the target's database into every node when it parses; on DuckDB that is
        the catalog dbt-duckdb names after the file (`/tmp/a/warehouse.duckdb` -> `warehouse`).
        A manifest parsed for one file and reused on a file of another name fails `dbt run`
        with `Catalog "..." does not exist`. The key is the profile's target as dbt renders
        it, with the DuckDB path reduced to that catalog name: files of the same name share a
        parse (~3 s), files of other names get their own. Should the profile not render here,
        the key is its text with the value of every env var it reads (never too coarse).
        """
        project = (self.project_dir / "dbt_project.yml").read_text()
        text = (self.profiles_dir / "profiles.yml").read_text()
        names = sorted(set(compile_cache.ENV_VAR_CALL.findall(text)))
        env = json.dumps({name: os.environ.get(name) for name in names})
        inputs = (project, text, self.target, env)  # all the rendering reads (~15 ms)
        if inputs not in _WAREHOUSE_KEYS:
            try:
                resolved: Any = self._rendered_target(project, text)
            except Exception:  # dbt reports a broken profile itself when it parses
                resolved = list(inputs)
            payload = json.dumps(resolved, sort_keys=True, default=str)
            _WAREHOUSE_KEYS[inputs] = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return _WAREHOUSE_KEYS[inputs]

    def _rendered_target(self, project_text: str, profiles_text: str) -> list[Any]:
        """[target name, its output as rendered], the DuckDB path replaced by its catalog."""
        import jinja2
        import yaml  # type: ignore[import-untyped]  # PyYAML, a dependency of dbt-core

        profile = yaml.safe_load(profiles_text)[yaml.safe_load(project_text)["profile"]]
        env = jinja2.Environment(undefined=jinja2.StrictUndefined)
        env.globals["env_var"] = _env_var
        env.filters.update({f: _same for f in ("as_bool", "as_native", "as_number", "as_text")})

        def render(value: Any) -> Any:
            if isinstance(value, str):
                return env.from_string(value).render()
            if isinstance(value, dict):
                return {k: render(v) for k, v in value.items()}
            if isinstance(value, list):
                return [render(v) for v in value]
            return value

        name = self.target or render(profile.get("target", "default"))
        output = render(profile["outputs"][name])
        if output.get("type") == "duckdb":
            from dbt.adapters.duckdb.credentials import DuckDBCredentials

            path = output.pop("path", None)
            output.setdefault("database", DuckDBCredentials.path_derived_database_name(path))
        return [name, output]

    def release_warehouse(self) -> None:
        """Let go of the DuckDB file dbt-duckdb keeps open in this process after a command.

        DuckDB admits one writing process per file; without this, a long-lived process
        that ran dbt (a test session, a notebook) would lock out every other one.
        """
        connections = sys.modules.get("dbt.adapters.duckdb.connections")
        if connections is None:  # dbt-duckdb never ran here (e.g. the compile cache answered)
            return
        manager = connections.DuckDBConnectionManager
        env = manager._ENV
        if env is not None:
            env.close()
            manager._ENV = None

    def manifest(self) -> Manifest:
        """The project's manifest.json: from the compile cache, else parsed (once per process)."""
        if self._manifest is None:
            cache = self._cache()
            data = cache.manifest() if cache else None
            if data is None:
                data = self._manifest_object().writable_manifest().to_dict()
                if cache:
                    cache.store_manifest(data)
            self._manifest = Manifest(data)
        return self._manifest

    def _cache(self) -> CompileCache | None:
        if not compile_cache.enabled():
            return None
        if self._compile_cache is None:
            self._compile_cache = CompileCache.for_project(
                self.project_dir, self.profiles_dir, self.target, self.target_path / "compile-cache"
            )
        return self._compile_cache

    def compile(self, model: str, dbt_vars: dict[str, Any]) -> Compiled:
        """Compile one model (its ephemeral parents inlined) with the given vars; the same
        model and vars on an unchanged project come from the compile cache."""
        cache = self._cache()
        hit = cache.compiled(model, dbt_vars) if cache else None
        if hit is not None:
            return Compiled(hit.unique_id, hit.sql, hit.invocation_id)
        result = self.invoke(
            # No relation cache: a range compile reads no warehouse metadata worth ~0.1 s.
            ["compile", "--select", model, "--vars", json.dumps(dbt_vars), "--no-populate-cache"],
            share_manifest=not self.manifest().reads_ephemeral(model),
        )
        for node_result in result.result.results:
            node = node_result.node
            if node.resource_type == "model" and node.name == model.split(".")[0]:
                compiled = Compiled(node.unique_id, node.compiled_code, _invocation_id(result))
                if cache:
                    cache.store_compiled(model, dbt_vars, CompiledEntry(**asdict(compiled)))
                return compiled
        raise WorkFailed(f"dbt compile returned no SQL for {model}")

    def compile_data_tests(self, model: str) -> list[CompiledDataTest]:
        """The model's data tests as dbt compiles them (one invocation for all), to be run on
        a staged chunk; an unchanged project reads them from the compile cache."""
        tests = self.manifest().data_tests(model)
        cache = self._cache()
        cached = cache.data_tests(model) if cache else None
        if cached is not None:
            return [CompiledDataTest(**t) for t in cached]
        compiled: dict[str, str] = {}
        if tests:
            result = self.invoke(
                ["compile", "--select", *(t.name for t in tests), "--no-populate-cache"]
            )
            compiled = {
                r.node.name: r.node.compiled_code
                for r in result.result.results
                if r.node.resource_type == "test"
            }
        missing = [t.name for t in tests if t.name not in compiled]
        if missing:
            raise WorkFailed(f"dbt compile returned no SQL for the data tests {missing}")
        out = [CompiledDataTest(t.name, t.severity, compiled[t.name]) for t in tests]
        if cache:
            cache.store_data_tests(model, [asdict(t) for t in out])
        return out

    def run(self, select: str, dbt_vars: dict[str, Any] | None = None) -> str:
        """`dbt run` of a selection (used to rebuild non-partitioned downstream models)."""
        command = ["run", "--select", select]
        if dbt_vars:
            command += ["--vars", json.dumps(dbt_vars)]
        return _invocation_id(self.invoke(command))

    def test(self, select: str, dbt_vars: dict[str, Any] | None = None) -> None:
        command = ["test", "--select", select]
        if dbt_vars:
            command += ["--vars", json.dumps(dbt_vars)]
        self.invoke(command)


def _env_var(name: str, default: str | None = None) -> str:
    """dbt's `env_var()` for rendering the profile: the variable, else the default."""
    value = os.environ.get(name, default)
    if value is None:
        raise KeyError(name)
    return value


def _same(value: Any) -> Any:
    return value


def _invocation_id(result: Any) -> str:
    """The invocation id dbt stamped on this command's artifacts."""
    del result  # dbt keeps the id of the latest invocation process-wide
    from dbt_common.invocation import get_invocation_id

    return str(get_invocation_id())


def _first_error(result: Any) -> str:
    if result.exception is not None:
        return " ".join(str(result.exception).split())
    for node_result in getattr(result.result, "results", []) or []:
        if str(node_result.status) in {"error", "fail"}:
            return " ".join(str(node_result.message).split())
    return "unknown error"
