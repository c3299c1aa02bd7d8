"""Backfill policy: a model's `meta.backfill` block from its dbt YAML (no second config file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import BadInput


@dataclass(frozen=True)
class Check:
    """An extra expectation from `meta.backfill.checks`."""

    column: str
    min: float | None = None
    max: float | None = None
    accepted_values: tuple[str, ...] | None = None
    # Overrides of the checks derived from production for this column (validate.py).
    distribution_tolerance: float | None = None
    allow_nulls: bool = False
    allow_negative: bool = False


@dataclass(frozen=True)
class DetectSource:
    """Where a model's late data lands (`meta.backfill.detect`): the bronze relation, its
    event time, batch and ingestion columns, the key its rows build one model row from,
    and how many days after its partition day a key's events may still fall."""

    source: str
    event_time: str
    key: str
    batch: str = "_batch_id"
    ingested: str = "_ingested_date"
    spans_days: int = 1


@dataclass(frozen=True)
class BackfillPolicy:
    partition_field: str
    unique_key: tuple[str, ...]
    partition_granularity: str = "day"
    chunk_days: int = 31
    max_days: int = 366
    critical: bool = False
    approvers: tuple[str, ...] = ()
    checks: tuple[Check, ...] = field(default_factory=tuple)
    row_count_tolerance: float = 0.5
    null_rate_margin: float = 0.05
    # A staged numeric column's mean, p50 and p99 stay within a factor (1 + this) of the
    # production partitions it replaces and their neighbours.
    distribution_tolerance: float = 1.0
    max_bytes: int | None = None  # dry-run budget: bytes the plan's SQL may process (BigQuery)
    publish: str = "transaction"  # or "partition_copy": see PUBLISH_MODES
    detect: DetectSource | None = None  # models that read bronze directly


# How a validated chunk reaches production. `transaction` (the default) swaps the whole
# chunk in one transaction. `partition_copy` replaces one partition at a time (BigQuery: a
# copy job per partition, which bills no bytes where the DML swap scans the range): each
# partition is atomic, the chunk is not, so a reader may see some days new and some old
# until the chunk ends, and a crash leaves the chunk `publishing` for a resume or rollback.
PUBLISH_MODES = ("transaction", "partition_copy")


def policy_from_meta(model: str, meta: dict[str, Any]) -> BackfillPolicy:
    """Read `meta.backfill`; a model without one (or with enabled: false) cannot be backfilled."""
    raw = meta.get("backfill")
    if not isinstance(raw, dict) or raw.get("enabled") is False:
        reason = raw.get("reason") if isinstance(raw, dict) else None
        suffix = f" ({reason})" if reason else ""
        raise BadInput(
            f"model {model} has no meta.backfill policy; it cannot be backfilled{suffix}"
        )
    try:
        unique_key = raw["unique_key"]
        return BackfillPolicy(
            partition_field=str(raw["partition_field"]),
            unique_key=tuple([unique_key] if isinstance(unique_key, str) else unique_key),
            partition_granularity=str(raw.get("partition_granularity", "day")),
            chunk_days=int(raw.get("chunk_days", 31)),
            max_days=int(raw.get("max_days", 366)),
            critical=bool(raw.get("critical", False)),
            approvers=tuple(str(a) for a in raw.get("approvers") or ()),
            checks=tuple(_check(c) for c in raw.get("checks") or ()),
            row_count_tolerance=float(raw.get("row_count_tolerance", 0.5)),
            null_rate_margin=float(raw.get("null_rate_margin", 0.05)),
            distribution_tolerance=_tolerance(raw.get("distribution_tolerance", 1.0)),
            max_bytes=_max_bytes(raw.get("max_bytes")),
            publish=_publish(raw),
            detect=_detect(raw.get("detect")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"model {model} has an invalid meta.backfill block: {exc}") from exc


def _max_bytes(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or int(raw) != raw or int(raw) < 1:
        raise ValueError(f"max_bytes must be a positive whole number of bytes, got {raw!r}")
    return int(raw)


def _publish(raw: dict[str, Any]) -> str:
    mode = raw.get("publish", "transaction")
    if mode not in PUBLISH_MODES:
        raise ValueError(f"publish must be one of {', '.join(PUBLISH_MODES)}, got {mode!r}")
    if mode == "partition_copy" and raw.get("partition_granularity", "day") != "day":
        raise ValueError("publish: partition_copy needs partition_granularity: day")
    return str(mode)


def _check(raw: dict[str, Any]) -> Check:
    values = raw.get("accepted_values")
    tolerance = raw.get("distribution_tolerance")
    return Check(
        column=str(raw["column"]),
        min=raw.get("min"),
        max=raw.get("max"),
        accepted_values=tuple(str(v) for v in values) if values is not None else None,
        distribution_tolerance=None if tolerance is None else _tolerance(tolerance),
        allow_nulls=bool(raw.get("allow_nulls", False)),
        allow_negative=bool(raw.get("allow_negative", False)),
    )


def _detect(raw: Any) -> DetectSource | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"detect must be a mapping, got {raw!r}")
    unknown = set(raw) - {"source", "event_time", "key", "batch", "ingested", "spans_days"}
    if unknown:
        raise ValueError(f"detect has unknown settings: {', '.join(sorted(unknown))}")
    spans = raw.get("spans_days", 1)
    if isinstance(spans, bool) or not isinstance(spans, int) or spans < 0:
        raise ValueError(f"detect.spans_days must be 0 or more days, got {spans!r}")
    return DetectSource(
        source=str(raw["source"]),
        event_time=str(raw["event_time"]),
        key=str(raw["key"]),
        batch=str(raw.get("batch", "_batch_id")),
        ingested=str(raw.get("ingested", "_ingested_date")),
        spans_days=spans,
    )


def _tolerance(raw: Any) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"distribution_tolerance must be a positive number, got {raw!r}")
    return value
