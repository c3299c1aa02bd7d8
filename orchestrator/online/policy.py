"""A model's online sink: `meta.backfill.online` in its dbt YAML (no second config file),
e.g. `online: {store: redis, key: [driver_id, feature_date], ttl_days: 30}` beside the
model's `partition_field: feature_date`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import BadInput

STORES = ("redis",)
# Every Redis key of the project starts with it: rideshare:<model>:<key values>.
NAMESPACE = "rideshare"
_KEYS = ("store", "key", "ttl_days")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class OnlinePolicy:
    """Where and under which key the published rows of one model are served online."""

    model: str
    store: str
    key: tuple[str, ...]  # the columns whose values name a row's key; they include the partition
    ttl_days: int | None = None  # a written key expires this long after its write; None: never

    @property
    def prefix(self) -> str:
        """The start of every key of this model: `rideshare:<model>`."""
        return f"{NAMESPACE}:{self.model}"

    @property
    def ttl_seconds(self) -> int | None:
        return None if self.ttl_days is None else self.ttl_days * 86_400

    def check_columns(self, columns: Sequence[str]) -> None:
        """Refuse a key naming a column the relation does not have."""
        missing = [column for column in self.key if column not in columns]
        if missing:
            raise BadInput(
                f"model {self.model}: meta.backfill.online key column {missing[0]} is not a "
                f"column of the model (it has {', '.join(columns)})"
            )


def online_policy_from_meta(model: str, meta: Mapping[str, Any]) -> OnlinePolicy | None:
    """`meta.backfill.online` as a policy; None when the model declares no online sink.

    Bad configuration is BadInput with one line naming the model and the problem, so a
    plan (or the hygiene check) refuses it before anything is written.
    """
    backfill = meta.get("backfill")
    if not isinstance(backfill, Mapping) or backfill.get("online") is None:
        return None
    raw = backfill["online"]
    try:
        return _parse(model, raw, backfill.get("partition_field"))
    except ValueError as exc:
        raise BadInput(f"model {model} has an invalid meta.backfill.online block: {exc}") from exc


def _parse(model: str, raw: Any, partition_field: Any) -> OnlinePolicy:
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"expected a mapping like {{store: redis, key: [...], ttl_days: 30}}, got {raw!r}"
        )
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]} (known: {', '.join(_KEYS)})")
    store = raw.get("store")
    if store not in STORES:
        raise ValueError(f"store must be one of {', '.join(STORES)}, got {store!r}")
    return OnlinePolicy(
        model=model,
        store=str(store),
        key=_key(raw.get("key"), partition_field),
        ttl_days=_ttl_days(raw.get("ttl_days")),
    )


def _key(raw: Any, partition_field: Any) -> tuple[str, ...]:
    columns = [raw] if isinstance(raw, str) else raw
    if not isinstance(columns, list) or not columns:
        raise ValueError(f"key must be a non-empty list of column names, got {raw!r}")
    for column in columns:
        if not isinstance(column, str) or not _COLUMN.fullmatch(column):
            raise ValueError(f"key column {column!r} is not a column name")
    if len(set(columns)) != len(columns):
        raise ValueError(f"key {columns} names a column twice")
    # A sync replaces whole partitions: a key that is unique only across partitions would
    # be written by one partition and deleted as gone by another.
    if partition_field not in columns:
        raise ValueError(
            f"key {columns} must include the partition field {partition_field}, so that each "
            "key belongs to one partition"
        )
    return tuple(columns)


def _ttl_days(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValueError(f"ttl_days must be a positive whole number of days, got {raw!r}")
    return int(raw)
