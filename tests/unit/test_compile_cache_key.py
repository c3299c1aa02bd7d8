"""The compile cache's key sees every input of dbt's output, and its files fail safe."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.compile_cache import CompileCache, CompiledEntry, state_key
from orchestrator.project import PROJECT_FILES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the dbt project files and the example profile, outside git."""
    for name in (*PROJECT_FILES, "profiles.yml.example"):
        source, copy = REPO / name, tmp_path / name
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            shutil.copyfile(source, copy)
    shutil.copyfile(tmp_path / "profiles.yml.example", tmp_path / "profiles.yml")
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", "/data/a.duckdb")
    for name in ("DBT_TARGET", "DBT_PROFILES_DIR", "BACKFILL_DBT_TARGET_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def key(project: Path, target: str | None = None) -> str:
    return state_key(project, project, target)


def test_the_key_is_stable_for_an_unchanged_project(project: Path) -> None:
    assert key(project) == key(project)


def test_an_env_var_no_dbt_file_reads_does_not_change_the_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = key(project)
    monkeypatch.setenv("SOMETHING_ELSE", "x")
    assert key(project) == before


def test_an_edited_model_changes_the_key(project: Path) -> None:
    before = key(project)
    model = project / "models" / "marts" / "core" / "fct_trips.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    assert key(project) != before


def test_an_env_var_the_profile_reads_changes_the_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = key(project)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", "/data/b.duckdb")
    assert key(project) != before


def test_a_dbt_setting_from_the_environment_changes_the_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = key(project)
    monkeypatch.setenv("DBT_TARGET", "bigquery")
    assert key(project) != before


def test_another_target_or_profile_changes_the_key(project: Path) -> None:
    before = key(project)
    assert key(project, target="bigquery") != before
    profile = project / "profiles.yml"
    profile.write_text(profile.read_text().replace("threads: 2", "threads: 1"))
    assert key(project) != before


def test_entries_round_trip_per_model_and_vars(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path, "k")
    entry = CompiledEntry("model.rideshare.fct_trips", "select 1", "inv-1")
    window = {"backfill_start": "2024-01-01", "backfill_end": "2024-01-31"}
    cache.store_compiled("fct_trips", window, entry)
    assert cache.compiled("fct_trips", window) == entry
    assert cache.compiled("fct_trips", {**window, "backfill_end": "2024-01-30"}) is None
    assert cache.compiled("fct_driver_daily_earnings", window) is None
    cache.store_manifest({"nodes": {}})
    assert cache.manifest() == {"nodes": {}}


def test_a_torn_entry_reads_as_a_miss(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path, "k")
    cache.store_manifest({"nodes": {}})
    (manifest,) = (tmp_path / "k").glob("manifest.json")
    manifest.write_text('{"nodes": ')  # a crash mid-write, were writes not atomic
    assert cache.manifest() is None
