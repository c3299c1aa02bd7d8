"""The parsed-manifest cache of orchestrator.dbt against warehouse files of other names.

dbt-duckdb names the catalog after the file (`first.duckdb` -> `first`) and dbt writes that
name into every node when it parses. A process that parsed for one file and then ran
`dbt run` on a file of another name failed with `Catalog "first" does not exist!` (the
`--downstream` rebuild goes through `Dbt.run`). The cache key now includes the catalog.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import query

from orchestrator import dbt as dbt_module
from orchestrator.dbt import Dbt
from orchestrator.errors import WorkFailed


def run_dim_riders(project: Path) -> None:
    dbt = Dbt(project)
    try:
        dbt.run("dim_riders")
    finally:
        dbt.release_warehouse()


def test_a_manifest_parsed_for_one_file_is_not_reused_for_a_file_of_another_name(
    warehouse_template: Path, project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a" / "first.duckdb", tmp_path / "b" / "second.duckdb"
    for path in (first, second):
        path.parent.mkdir()
        shutil.copyfile(warehouse_template, path)
        query(path, "delete from marts.dim_riders")

    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(first))
    run_dim_riders(project_copy)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(second))
    run_dim_riders(project_copy)  # parsed again, for the catalog `second`
    rows = query(warehouse_template, "select count(*) from marts.dim_riders")
    assert rows[0][0] > 0
    assert query(first, "select count(*) from marts.dim_riders") == rows
    assert query(second, "select count(*) from marts.dim_riders") == rows

    # What the key prevents: the same manifest reused for a file of another name.
    monkeypatch.setattr(Dbt, "_warehouse_key", lambda self: "one key for every file")
    monkeypatch.setattr(dbt_module, "_PARSED", {})
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(first))
    run_dim_riders(project_copy)
    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(second))
    with pytest.raises(WorkFailed, match='Catalog "first" does not exist'):
        run_dim_riders(project_copy)
