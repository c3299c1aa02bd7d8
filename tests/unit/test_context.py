"""Who acts, which target and project a command uses, and the key of the parsed-manifest
cache; no warehouse and no dbt parse."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.context import Context, check_project_dir, check_target, operator, today
from orchestrator.dbt import Dbt
from orchestrator.errors import BadInput

NOT_A_PERSON = "must be 1-64 characters of letters, digits, '.', '_', '@', '+', '-'"


def test_an_explicit_operator_is_checked_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKFILL_OPERATOR", "carol")
    assert operator("alice") == "alice"
    for name in ("", "alice\n", "al\u202eice", "a" * 65):
        with pytest.raises(BadInput) as exc:
            operator(name)
        assert str(exc.value) == f"operator name {name!r} {NOT_A_PERSON}"


def test_without_a_name_the_operator_is_the_env_then_the_os_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKFILL_OPERATOR", "carol")
    assert operator(None) == "carol"
    monkeypatch.setenv("BACKFILL_OPERATOR", "")
    assert operator(None) == getpass.getuser()
    monkeypatch.delenv("BACKFILL_OPERATOR")
    assert operator(None) == getpass.getuser()


def test_today_is_utc_unless_backfill_today_freezes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKFILL_TODAY", raising=False)
    assert today() == datetime.now(UTC).date()
    monkeypatch.setenv("BACKFILL_TODAY", "2026-11-22")
    assert str(today()) == "2026-11-22"
    for frozen, reason in (
        ("2026-2-1", "is not an ISO date (YYYY-MM-DD)"),
        ("2026-02-30", "is not a valid calendar date"),
    ):
        monkeypatch.setenv("BACKFILL_TODAY", frozen)
        with pytest.raises(BadInput) as exc:
            today()
        assert str(exc.value) == f"BACKFILL_TODAY date {frozen!r} {reason}"


def test_targets_are_checked_before_anything_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_TARGET", raising=False)
    assert check_target(None) == "duckdb"
    assert check_target("bigquery") == "bigquery"
    monkeypatch.setenv("DBT_TARGET", "bigquery")
    assert check_target(None) == "bigquery"
    with pytest.raises(BadInput) as exc:
        Context(Path("."), "prod").dbt  # noqa: B018  # the property is what is tested
    assert str(exc.value) == (
        "target 'prod' is not supported by the orchestrator (use duckdb or bigquery)"
    )


def test_a_project_dir_needs_dbt_project_yml(tmp_path: Path) -> None:
    message = (
        f"project directory '{tmp_path}' has no dbt_project.yml; pass --project-dir with the "
        "dbt project"
    )
    for attempt in (lambda: check_project_dir(tmp_path), lambda: Context(tmp_path).dbt):
        with pytest.raises(BadInput) as exc:
            attempt()
        assert str(exc.value) == message
    (tmp_path / "dbt_project.yml").write_text("name: x\nprofile: p\n")
    assert check_project_dir(tmp_path) == tmp_path
    with pytest.raises(BadInput, match=r"has neither profiles\.yml nor profiles\.yml\.example"):
        Dbt(tmp_path).profiles_dir  # noqa: B018


PROFILES = """
p:
  target: "{{ env_var('T_TARGET', 'local') }}"
  outputs:
    local:
      type: duckdb
      path: "{{ env_var('T_DUCKDB_PATH', 'rideshare.duckdb') }}"
      threads: 2
      settings:
        memory_limit: "{{ env_var('T_MEMORY', '1GB') }}"
    cloud:
      type: bigquery
      method: oauth
      project: "{{ env_var('T_PROJECT') }}"
      dataset: analytics
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "dbt_project.yml").write_text("name: x\nprofile: p\n")
    (tmp_path / "profiles.yml").write_text(PROFILES)
    for name in ("T_TARGET", "T_DUCKDB_PATH", "T_MEMORY", "T_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def key(project: Path, target: str | None = None) -> str:
    return Dbt(project, target)._warehouse_key()


def test_the_manifest_cache_key_follows_the_duckdb_catalog(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt-duckdb names the catalog after the file, and dbt writes it into the parsed
    manifest: files of one name share a parse, a file of another name gets its own."""
    monkeypatch.setenv("T_DUCKDB_PATH", "/tmp/a/warehouse.duckdb")
    first = key(project)
    monkeypatch.setenv("T_DUCKDB_PATH", "/tmp/b/warehouse.duckdb")
    assert key(project) == first
    monkeypatch.setenv("T_DUCKDB_PATH", "/tmp/b/other.duckdb")
    other = key(project)
    assert other != first
    monkeypatch.setenv("T_MEMORY", "2GB")  # any other rendered value counts too
    assert key(project) != other
    assert key(project, "cloud") != key(project)


def test_the_bigquery_key_follows_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_TARGET", "cloud")
    monkeypatch.setenv("T_PROJECT", "one")
    one = key(project)
    assert key(project, "cloud") == one
    monkeypatch.setenv("T_PROJECT", "two")
    assert key(project) != one


def test_a_profile_that_does_not_render_is_keyed_by_its_env(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T_PROJECT has no default: rendering fails (dbt reports that when it parses), and the
    key falls back to the profile's text and every env var it reads."""
    monkeypatch.setenv("T_TARGET", "cloud")
    unset = key(project)
    monkeypatch.setenv("T_DUCKDB_PATH", "/tmp/a/warehouse.duckdb")
    assert key(project) != unset
