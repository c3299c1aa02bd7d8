"""dbt project hygiene: the real project passes every check, and each check catches the
breakage it exists for on a small, deliberately broken manifest."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from .dbt_checks import (
    CHECKS,
    Check,
    backfill_policy_problems,
    marts_without_contract,
    models_without_description,
    naming_problems,
    undocumented_contract_columns,
    yaml_layout_problems,
)


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_real_project(manifest: dict[str, Any], check: Check) -> None:
    problems = check(manifest)
    assert not problems, f"{check.__doc__}\n" + "\n".join(problems)


# --- the checks themselves, on a miniature manifest -------------------------------------

CORE_YML = "models/marts/core/_core__models.yml"


def _column(name: str, data_type: str = "varchar") -> dict[str, Any]:
    return {"name": name, "description": f"The {name}.", "data_type": data_type}


def _model(
    name: str,
    path: str,
    *,
    yml: str,
    materialized: str = "view",
    columns: tuple[dict[str, Any], ...] = (),
    contract: bool = False,
    meta: dict[str, Any] | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "package_name": "rideshare",
        "name": name,
        "original_file_path": path,
        "patch_path": f"rideshare://{yml}",
        "description": f"One row per {name}.",
        "version": version,
        "columns": {c["name"]: c for c in columns},
        "meta": {},
        "config": {
            "materialized": materialized,
            "contract": {"enforced": contract},
            "meta": meta or {},
        },
    }


FCT_TRIPS_POLICY = {
    "partition_field": "trip_date",
    "unique_key": ["trip_id"],
    "chunk_days": 31,
    "max_days": 400,
    "critical": True,
    "checks": [{"column": "fare_amount", "min": 0, "max": 1000}],
}


def good_manifest() -> dict[str, Any]:
    models = [
        _model(
            "stg_rides__trip_events",
            "models/staging/rides/stg_rides__trip_events.sql",
            yml="models/staging/rides/_rides__models.yml",
        ),
        _model(
            "int_trips_assembled",
            "models/intermediate/trips/int_trips_assembled.sql",
            yml="models/intermediate/trips/_trips__models.yml",
            materialized="ephemeral",
        ),
        _model(
            "fct_trips",
            "models/marts/core/fct_trips.sql",
            yml=CORE_YML,
            materialized="incremental",
            columns=(_column("trip_id"), _column("trip_date", "date"), _column("fare_amount")),
            contract=True,
            meta={"backfill": copy.deepcopy(FCT_TRIPS_POLICY)},
        ),
    ]
    for v in (1, 2):
        models.append(
            _model(
                "dim_drivers",
                f"models/marts/core/dim_drivers_v{v}.sql",
                yml=CORE_YML,
                columns=(_column("driver_id"), _column("valid_from", "timestamp")),
                contract=True,
                meta={"backfill": {"enabled": False, "reason": "a view over the snapshot"}},
                version=v,
            )
        )
    nodes = {f"model.rideshare.{m['name']}.{m['version'] or ''}": m for m in models}
    nodes["test.rideshare.unique_fct_trips_trip_id"] = {
        "resource_type": "test",
        "package_name": "rideshare",
        "original_file_path": CORE_YML,
    }
    return {
        "metadata": {"project_name": "rideshare"},
        "nodes": nodes,
        "sources": {
            "source.rideshare.rides.trip_events": {
                "package_name": "rideshare",
                "source_name": "rides",
                "original_file_path": "models/staging/rides/_rides__sources.yml",
            }
        },
        "unit_tests": {
            "unit_test.rideshare.fct_trips.full_build": {
                "resource_type": "unit_test",
                "package_name": "rideshare",
                "original_file_path": CORE_YML,
            }
        },
    }


def _node(manifest: dict[str, Any], name: str, version: int | None = None) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        n
        for n in manifest["nodes"].values()
        if n.get("name") == name and n.get("version") == version
    ]
    [node] = nodes
    return node


def _fct_trips(m: dict[str, Any]) -> dict[str, Any]:
    return _node(m, "fct_trips")


def _fct_policy(m: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = _fct_trips(m)["config"]["meta"]["backfill"]
    return policy


Breakage = Callable[[dict[str, Any]], None]

BREAKAGES: list[tuple[str, Breakage, Check, str]] = [
    (
        "model without description",
        lambda m: _node(m, "stg_rides__trip_events").update(description=" "),
        models_without_description,
        "stg_rides__trip_events: has no description",
    ),
    (
        "mart column without description",
        lambda m: _fct_trips(m)["columns"]["trip_id"].update(description=""),
        undocumented_contract_columns,
        "fct_trips: column trip_id has no description",
    ),
    (
        "versioned column without data_type",
        lambda m: _node(m, "dim_drivers", 1)["columns"]["valid_from"].pop("data_type"),
        undocumented_contract_columns,
        "dim_drivers v1: column valid_from has no data_type",
    ),
    (
        "mart without columns",
        lambda m: _fct_trips(m).update(columns={}),
        undocumented_contract_columns,
        "fct_trips: declares no columns",
    ),
    (
        "mart without enforced contract",
        lambda m: _node(m, "dim_drivers", 2)["config"].update(contract={"enforced": False}),
        marts_without_contract,
        "dim_drivers v2: contract is not enforced",
    ),
    (
        "fact without meta.backfill",
        lambda m: _fct_trips(m)["config"].update(meta={}),
        backfill_policy_problems,
        "fct_trips: no meta.backfill policy",
    ),
    (
        "backfill disabled without reason",
        lambda m: _node(m, "dim_drivers", 1)["config"]["meta"]["backfill"].pop("reason"),
        backfill_policy_problems,
        "dim_drivers v1: meta.backfill.enabled is false without a reason",
    ),
    (
        "policy without chunk_days",
        lambda m: _fct_policy(m).pop("chunk_days"),
        backfill_policy_problems,
        "fct_trips: meta.backfill: chunk_days is missing",
    ),
    (
        "policy the orchestrator cannot read",
        lambda m: _fct_policy(m).update(checks=[{"min": 0}]),
        backfill_policy_problems,
        "meta.backfill: the orchestrator cannot read it",
    ),
    (
        "partition_field not a date column",
        lambda m: _fct_policy(m).update(partition_field="trip_id"),
        backfill_policy_problems,
        "partition_field trip_id is not a date column",
    ),
    (
        "unknown unique_key column",
        lambda m: _fct_policy(m).update(unique_key=["ride_id"]),
        backfill_policy_problems,
        "unique_key column ride_id is not a documented column",
    ),
    (
        "chunk_days above max_days",
        lambda m: _fct_policy(m).update(chunk_days=500),
        backfill_policy_problems,
        "chunk_days 500 exceeds max_days 400",
    ),
    (
        "critical not a boolean",
        lambda m: _fct_policy(m).update(critical="yes"),
        backfill_policy_problems,
        "critical must be true or false",
    ),
    (
        "policy on a table",
        lambda m: _fct_trips(m)["config"].update(materialized="table"),
        backfill_policy_problems,
        "the model is materialized as table, not incremental",
    ),
    (
        "staging model without source prefix",
        lambda m: _node(m, "stg_rides__trip_events").update(name="stg_trip_events"),
        naming_problems,
        "is not named stg_rides__<entity>",
    ),
    (
        "staging model directly under models/staging",
        lambda m: _node(m, "stg_rides__trip_events").update(
            original_file_path="models/staging/stg_rides__trip_events.sql"
        ),
        naming_problems,
        "staging models live in models/staging/<source>/",
    ),
    (
        "intermediate model without int_",
        lambda m: _node(m, "int_trips_assembled").update(name="trips_assembled"),
        naming_problems,
        "intermediate model is not named int_",
    ),
    (
        "mart without fct_/dim_",
        lambda m: _fct_trips(m).update(name="trips"),
        naming_problems,
        "mart is not named fct_",
    ),
    (
        "second models YAML in a folder",
        lambda m: _fct_trips(m).update(patch_path="rideshare://models/marts/core/_fct_trips.yml"),
        yaml_layout_problems,
        "models/marts/core/: models are spread over 2 YAML files",
    ),
    (
        "unit tests in their own YAML",
        lambda m: m["unit_tests"]["unit_test.rideshare.fct_trips.full_build"].update(
            original_file_path="models/marts/core/_unit_tests.yml"
        ),
        yaml_layout_problems,
        "models/marts/core/: models are spread over 2 YAML files",
    ),
    (
        "misnamed models YAML",
        lambda m: _node(m, "int_trips_assembled").update(
            patch_path="rideshare://models/intermediate/trips/schema.yml"
        ),
        yaml_layout_problems,
        "schema.yml: the models YAML of models/intermediate/trips/ is named _trips__models.yml",
    ),
    (
        "model in no YAML",
        lambda m: _node(m, "int_trips_assembled").update(patch_path=None),
        yaml_layout_problems,
        "int_trips_assembled: is in no YAML file",
    ),
    (
        "models described in the sources file",
        lambda m: _node(m, "stg_rides__trip_events").update(
            patch_path="rideshare://models/staging/rides/_rides__sources.yml"
        ),
        yaml_layout_problems,
        "_rides__sources.yml: the models YAML of models/staging/rides/ is named _rides__models.yml",
    ),
    (
        "sources in a misnamed file",
        lambda m: m["sources"]["source.rideshare.rides.trip_events"].update(
            original_file_path="models/staging/rides/sources.yml"
        ),
        yaml_layout_problems,
        "source rides belongs in _rides__sources.yml",
    ),
]


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_good_manifest_passes(check: Check) -> None:
    assert check(good_manifest()) == []


@pytest.mark.parametrize(
    ("breakage", "check", "expected"),
    [b[1:] for b in BREAKAGES],
    ids=[b[0] for b in BREAKAGES],
)
def test_breakage_is_reported(breakage: Breakage, check: Check, expected: str) -> None:
    broken = good_manifest()
    breakage(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), problems


def test_other_packages_are_ignored() -> None:
    manifest = good_manifest()
    _node(manifest, "fct_trips").update(package_name="dbt_utils", description="")
    assert models_without_description(manifest) == []
