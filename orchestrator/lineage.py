"""`lineage`: which backfill, code and inputs produced a model's partitions."""

from __future__ import annotations

from typing import Any

from orchestrator.context import Context
from orchestrator.plan import check_identifier, parse_date


def lineage_of(ctx: Context, model_name: str, partition: str | None = None) -> dict[str, Any]:
    """The model's relation and its lineage rows (covering `partition`, an ISO day, if
    given), newest first, each with the current status of its backfill (a rolled-back one
    no longer produced the data)."""
    check_identifier(model_name)
    day = parse_date(partition, "partition") if partition is not None else None
    relation = ctx.dbt.manifest().model(model_name).relation
    rows = ctx.audit.lineage.of(relation, day)
    statuses = ctx.audit.plans.statuses() if rows else {}
    for row in rows:
        row["backfill_status"] = statuses.get(str(row["backfill_id"]))
    return {"relation": relation, "rows": rows}
