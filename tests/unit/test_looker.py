"""LookML from the dbt contracts: the committed files under looker/ parse, say what the
contracts say, have not drifted from them; deprecated versions read by an exposure warn,
in Python (`plan`) and in dbt's on-run-start hook (`dbt build`)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import lkml
import pytest

from orchestrator import looker
from orchestrator.errors import WorkFailed

REPO = Path(__file__).resolve().parents[2]
LOOKER_DIR = REPO / "looker"

# The oracle, written out by hand from models/marts/core/_core__models.yml.
VIEW_MODELS = {  # view -> the manifest node whose contract it exposes
    "dim_drivers": "model.rideshare.dim_drivers.v2",  # the latest version
    "dim_drivers_v1": "model.rideshare.dim_drivers.v1",
    "dim_drivers_v2": "model.rideshare.dim_drivers.v2",
    "fct_driver_daily_earnings": "model.rideshare.fct_driver_daily_earnings",
    "fct_trips": "model.rideshare.fct_trips",
}
PRIMARY_KEYS = {
    "dim_drivers": ("driver_id", "valid_from"),
    "dim_drivers_v1": ("driver_id", "valid_from"),
    "dim_drivers_v2": ("driver_id", "valid_from"),
    "fct_driver_daily_earnings": ("driver_id", "earning_date"),
    "fct_trips": ("trip_id",),
}
MONEY = {
    "fct_trips": {"fare_amount"},
    "fct_driver_daily_earnings": {"completed_fares", "cancellation_fees", "gross_fare"},
}
DIMENSION_TYPES = {"string": "string", "bigint": "number", "numeric": "number", "boolean": "yesno"}
TIME_TYPES = {"date", "timestamp"}
EXPOSURE = "looker_driver_operations"
V1_DEPRECATED = date(2027, 6, 30)
# dbt-duckdb names the catalog after the file, and the parsed manifest carries it.
WAREHOUSE = "warehouse.duckdb"


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """One `dbt parse` of the real project: dbt's Manifest object and its work dir."""
    from dbt.cli.main import dbtRunner

    work = tmp_path_factory.mktemp("looker")
    (work / "profiles").mkdir()
    shutil.copy(REPO / "profiles.yml.example", work / "profiles" / "profiles.yml")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RIDESHARE_DUCKDB_PATH", str(work / WAREHOUSE))
        env.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        result = dbtRunner().invoke(["parse", *_dbt_args(work)])
    assert result.success, f"dbt parse failed: {result.exception}; see {work / 'logs'}"
    return result.result, work


def _dbt_args(work: Path) -> list[str]:
    return [
        "--project-dir", str(REPO),
        "--profiles-dir", str(work / "profiles"),
        "--target", "duckdb",
        "--target-path", str(work / "target"),
        "--log-path", str(work / "logs"),
        "--no-partial-parse",
        "--quiet",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def manifest(parsed: tuple[Any, Path]) -> dict[str, Any]:
    """The manifest as the CLI reads it (orchestrator.dbt: the parsed object as a dict)."""
    data: dict[str, Any] = parsed[0].writable_manifest().to_dict()
    return data


@pytest.fixture(scope="module")
def committed() -> dict[str, dict[str, Any]]:
    """Every committed LookML file, parsed by lkml: {path under looker/: parsed dict}."""
    files = sorted(LOOKER_DIR.rglob("*.lkml"))
    assert files, f"no LookML under {LOOKER_DIR}; run `{looker.REGENERATE}`"
    return {p.relative_to(LOOKER_DIR).as_posix(): lkml.load(p.read_text()) for p in files}


@pytest.fixture(scope="module")
def views(committed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for path, parsed_file in committed.items():
        if path.startswith("views/"):
            (view,) = parsed_file["views"]
            assert path == f"views/{view['name']}.view.lkml", "one view per file, named after it"
            found[view["name"]] = view
    return found


def _unquote(text: str) -> str:
    return text.replace('\\"', '"')  # lkml.load keeps the escapes of a quoted string


def _fields_by_column(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{contract column: the dimension or dimension_group reading it as `${TABLE}.col`}."""
    found: dict[str, dict[str, Any]] = {}
    for kind in ("dimensions", "dimension_groups"):
        for field in view.get(kind, []):
            match = re.fullmatch(r"\$\{TABLE\}\.(\w+)", field["sql"])
            if match:
                assert match.group(1) not in found, f"{view['name']}: two fields read a column"
                found[match.group(1)] = {**field, "kind": kind}
    return found


def _field_names(view: dict[str, Any]) -> set[str]:
    names = {d["name"] for d in view.get("dimensions", [])}
    names |= {m["name"] for m in view.get("measures", [])}
    for group in view.get("dimension_groups", []):
        names |= {f"{group['name']}_{t}" for t in group["timeframes"]}
    return names


# --- the committed files against the contracts ---------------------------------------------


def test_committed_files_match_the_contracts(manifest: dict[str, Any]) -> None:
    drifted = looker.check(manifest, LOOKER_DIR)
    assert not drifted, (
        f"looker/ has drifted from the dbt contracts: {drifted}; "
        f"regenerate with `{looker.REGENERATE}`"
    )


def test_one_view_per_looker_relation(
    committed: dict[str, dict[str, Any]], views: dict[str, dict[str, Any]]
) -> None:
    assert set(views) == set(VIEW_MODELS)
    assert set(committed) == {f"views/{v}.view.lkml" for v in VIEW_MODELS} | {looker.MODEL_FILE}
    tables = {name: view["sql_table_name"] for name, view in views.items()}
    assert tables == {name: f"marts.{name}" for name in VIEW_MODELS}
    assert views["dim_drivers_v1"]["label"] == "Drivers v1 (deprecated 2027-06-30)"


def test_every_contract_column_is_a_typed_field(
    manifest: dict[str, Any], views: dict[str, dict[str, Any]]
) -> None:
    for name, uid in VIEW_MODELS.items():
        columns = manifest["nodes"][uid]["columns"]
        fields = _fields_by_column(views[name])
        assert set(fields) == set(columns), f"{name}: fields do not follow the contract"
        for column_name, column in columns.items():
            field, data_type = fields[column_name], column["data_type"].split("(")[0]
            where = f"{name}.{column_name} ({column['data_type']})"
            if data_type in TIME_TYPES:
                assert field["kind"] == "dimension_groups", where
                assert field["type"] == "time", where
                assert "raw" in field["timeframes"] and "date" in field["timeframes"], where
                assert ("time" in field["timeframes"]) == (data_type == "timestamp"), where
                assert field.get("datatype") == ("date" if data_type == "date" else None), where
            else:
                assert field["kind"] == "dimensions", where
                assert field["type"] == DIMENSION_TYPES[data_type], where
            assert _unquote(field["description"]) == " ".join(column["description"].split())


def test_primary_keys_are_marked(views: dict[str, dict[str, Any]]) -> None:
    for name, key in PRIMARY_KEYS.items():
        marked = [d for d in views[name]["dimensions"] if d.get("primary_key") == "yes"]
        assert len(marked) == 1, f"{name}: {len(marked)} primary keys"
        (pk,) = marked
        if len(key) == 1:
            assert pk["sql"] == f"${{TABLE}}.{key[0]}", name
        else:  # one hidden dimension over every key column
            assert pk["hidden"] == "yes", name
            assert re.findall(r"\$\{TABLE\}\.(\w+)", pk["sql"]) == list(key), name


def test_count_and_sums_of_money(views: dict[str, dict[str, Any]]) -> None:
    for name, view in views.items():
        measures = {m["name"]: m for m in view["measures"]}
        assert measures["count"]["type"] == "count", name
        sums = {m["name"]: m for m in measures.values() if m["type"] == "sum"}
        dimension_of = {c: f["name"] for c, f in _fields_by_column(view).items()}
        expected = MONEY.get(name, set())
        assert {m["sql"] for m in sums.values()} == {f"${{{dimension_of[c]}}}" for c in expected}
        assert all(m["value_format_name"] == "decimal_2" for m in sums.values()), name


def test_explores_join_trips_and_earnings_to_drivers(
    committed: dict[str, dict[str, Any]], views: dict[str, dict[str, Any]]
) -> None:
    model = committed[looker.MODEL_FILE]
    assert model["includes"] == ["/views/*.view.lkml"]
    explores = {e["name"]: e for e in model["explores"]}
    assert set(explores) == {"fct_trips", "fct_driver_daily_earnings"}
    for explore in explores.values():
        (join,) = explore["joins"]
        assert (join["name"], join["relationship"]) == ("dim_drivers", "many_to_one")
        assert join["type"] == "left_outer"
        refs = re.findall(r"\$\{(\w+)\.(\w+)\}", join["sql_on"])
        assert (explore["name"], "driver_id") in refs and ("dim_drivers", "driver_id") in refs
        for view, field in refs:  # every field the join reads exists in its view
            assert field in _field_names(views[view]), f"{explore['name']}: ${{{view}.{field}}}"
    trips_on = explores["fct_trips"]["joins"][0]["sql_on"]
    assert "${fct_trips.requested_raw} >= ${dim_drivers.valid_from_raw}" in trips_on
    assert "${fct_trips.requested_raw} < ${dim_drivers.valid_to_raw}" in trips_on
    assert (
        "${dim_drivers.is_current}" in explores["fct_driver_daily_earnings"]["joins"][0]["sql_on"]
    )


def test_manifest_json_and_the_cli_manifest_render_alike(
    parsed: tuple[Any, Path], manifest: dict[str, Any]
) -> None:
    from_json = json.loads((parsed[1] / "target" / "manifest.json").read_text())
    assert looker.render(from_json) == looker.render(manifest)


# --- the generator follows the contracts -----------------------------------------------------


def _contract(manifest: dict[str, Any], uid: str) -> dict[str, Any]:
    columns: dict[str, Any] = manifest["nodes"][uid]["columns"]
    return columns


def test_a_contract_change_changes_the_views(manifest: dict[str, Any]) -> None:
    changed = copy.deepcopy(manifest)
    trips = _contract(changed, "model.rideshare.fct_trips")
    trips["tip_amount"] = {
        "name": "tip_amount",
        "data_type": "numeric(10, 2)",
        "description": "Tip.",
    }
    trips["dropped_off_at"] = {"name": "dropped_off_at", "data_type": "timestamp"}
    del trips["surge_multiplier"]
    trips["duration_seconds"]["data_type"] = "string"
    view = lkml.load(looker.render(changed)["views/fct_trips.view.lkml"])["views"][0]
    fields = _fields_by_column(view)
    assert "surge_multiplier" not in fields
    assert fields["duration_seconds"]["type"] == "string"
    assert fields["tip_amount"]["type"] == "number"
    assert (fields["dropped_off_at"]["kind"], fields["dropped_off_at"]["name"]) == (
        "dimension_groups",
        "dropped_off",
    )
    assert "description" not in fields["dropped_off_at"]
    sums = {m["name"]: m["sql"] for m in view["measures"] if m["type"] == "sum"}
    assert sums == {"total_fare_amount": "${fare_amount}", "total_tip_amount": "${tip_amount}"}


def test_contracts_looker_cannot_use_are_refused(manifest: dict[str, Any]) -> None:
    unknown = copy.deepcopy(manifest)
    _contract(unknown, "model.rideshare.fct_trips")["trip_status"]["data_type"] = "struct<a int>"
    with pytest.raises(WorkFailed, match="column trip_status has data_type 'struct<a int>'"):
        looker.render(unknown)

    untyped = copy.deepcopy(manifest)
    _contract(untyped, "model.rideshare.dim_drivers.v1")["tier"]["data_type"] = None
    with pytest.raises(WorkFailed, match="dim_drivers_v1: column tier has no data_type"):
        looker.render(untyped)

    keyless = copy.deepcopy(manifest)
    keyless["nodes"]["model.rideshare.fct_trips"]["primary_key"] = []
    keyless["nodes"] = {  # no unique test on fct_trips either
        uid: node
        for uid, node in keyless["nodes"].items()
        if node.get("attached_node") != "model.rideshare.fct_trips"
    }
    keyless["nodes"]["model.rideshare.fct_trips"]["config"]["meta"] = {}  # no meta.backfill
    keyless["nodes"]["model.rideshare.fct_trips"]["meta"] = {}
    with pytest.raises(WorkFailed, match="fct_trips: no primary key for Looker"):
        looker.render(keyless)

    loose = copy.deepcopy(manifest)
    loose["nodes"]["model.rideshare.fct_driver_daily_earnings"]["config"]["contract"] = {}
    with pytest.raises(WorkFailed, match="fct_driver_daily_earnings: Looker reads it, but its"):
        looker.render(loose)

    no_validity = copy.deepcopy(manifest)
    del _contract(no_validity, "model.rideshare.dim_drivers.v2")["valid_to"]
    with pytest.raises(WorkFailed, match="dim_drivers: the contract has no column valid_to"):
        looker.render(no_validity)


def test_check_names_drifted_files_and_write_repairs_them(
    manifest: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "looker"
    written = looker.write(manifest, out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(looker.render(manifest))
    assert looker.check(manifest, out) == []

    trips = out / "views" / "fct_trips.view.lkml"
    trips.write_text(trips.read_text().replace("type: sum", "type: average"))
    (out / looker.MODEL_FILE).unlink()
    stale = out / "views" / "fct_old.view.lkml"
    stale.write_text(looker.HEADER + "view: fct_old {}\n")
    own = out / "views" / "custom.view.lkml"  # not generated: neither drift nor removed
    own.write_text("view: custom {}\n")
    assert looker.check(manifest, out) == [
        looker.MODEL_FILE,
        "views/fct_old.view.lkml",
        "views/fct_trips.view.lkml",
    ]

    looker.write(manifest, out)
    assert looker.check(manifest, out) == []
    assert not stale.exists() and own.exists()


# --- deprecated versions read by an exposure --------------------------------------------------


def test_deprecated_exposure_warnings(manifest: dict[str, Any]) -> None:
    day_before = date.fromordinal(V1_DEPRECATED.toordinal() - 1)
    assert looker.deprecated_exposure_warnings(manifest, day_before) == []
    expected = [
        f"exposure {EXPOSURE} reads dim_drivers v1, deprecated since 2027-06-30 "
        "(latest is v2): move it to v2 (docs/looker.md)"
    ]
    assert looker.deprecated_exposure_warnings(manifest, V1_DEPRECATED) == expected
    assert looker.deprecated_exposure_warnings(manifest, date(2031, 1, 1)) == expected
    assert looker.deprecated_exposure_warnings(manifest, date(2031, 1, 1), [EXPOSURE]) == expected
    assert looker.deprecated_exposure_warnings(manifest, date(2031, 1, 1), ["other"]) == []

    moved = copy.deepcopy(manifest)  # the exposure moved to v2: nothing to warn about
    exposure = moved["exposures"][f"exposure.rideshare.{EXPOSURE}"]
    exposure["depends_on"]["nodes"].remove("model.rideshare.dim_drivers.v1")
    assert looker.deprecated_exposure_warnings(moved, date(2031, 1, 1)) == []


@pytest.mark.parametrize(
    ("today", "warned"),
    [(date(2027, 6, 29), False), (V1_DEPRECATED, True)],
)
def test_dbt_runs_warn_about_deprecated_versions(
    parsed: tuple[Any, Path],
    manifest: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    today: date,
    warned: bool,
) -> None:
    """The on-run-start hook of a real `dbt seed` on a scratch DuckDB file."""
    from dbt.cli.main import dbtRunner

    messages: list[str] = []

    def collect(event: Any) -> None:
        if event.info.name == "JinjaLogWarning":
            messages.append(event.data.msg)

    monkeypatch.setenv("RIDESHARE_DUCKDB_PATH", str(tmp_path / WAREHOUSE))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("BACKFILL_TODAY", today.isoformat())
    runner = dbtRunner(manifest=copy.deepcopy(parsed[0]), callbacks=[collect])
    try:
        result = runner.invoke(["seed", "--select", "cities", *_dbt_args(parsed[1])])
    finally:
        _release_duckdb()
    assert result.success, result.exception
    expected = looker.deprecated_exposure_warnings(manifest, today)  # the same text as plan's
    assert bool(expected) == warned
    assert messages == expected


def _release_duckdb() -> None:
    """Close the DuckDB file dbt-duckdb keeps open in this process (orchestrator.dbt does
    the same), so the next test's dbt opens its own file."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is not None and connections.DuckDBConnectionManager._ENV is not None:
        connections.DuckDBConnectionManager._ENV.close()
        connections.DuckDBConnectionManager._ENV = None
