"""Dataset versions as commands: list, export, snapshot. A version is a published backfill
(or rollback); its deltas are partition-level, each pointing at the backup that holds the
partition as it was before (recorded by `orchestrator.audit.versions`).

Version 0 is the dataset as dbt built it. Version N-1 is version N with the partitions N
replaced taken from N's backup, so any version whose later backups are kept can be
exported. Changes made outside the orchestrator (a plain `dbt run`) are not versions.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from orchestrator.audit import AuditStore
from orchestrator.context import Context
from orchestrator.errors import BadInput
from orchestrator.plan import check_identifier, check_reason
from orchestrator.warehouse.base import quote_literal

SNAPSHOT_SCHEMA = "backfill_snapshots"
TAG = re.compile(r"[A-Za-z0-9_]{1,64}")  # fullmatch: `$` admits a trailing newline


def list_versions(ctx: Context, model_name: str) -> list[dict[str, Any]]:
    """The versions of a known model, oldest first (version 0 is dbt's build)."""
    check_identifier(model_name)
    ctx.dbt.manifest().model(model_name)
    return ctx.audit.versions.list_versions(model_name)


def version_sql(
    audit: AuditStore, dataset: str, relation: str, partition_field: str, version_no: int
) -> str:
    """SELECT of the dataset as it was at `version_no`."""
    if version_no < 0:
        raise BadInput(f"version must be 0 or more, not {version_no}")
    known = [v["version_no"] for v in audit.versions.list_versions(dataset)]
    if version_no and version_no not in known:
        latest = max(known, default=0)
        raise BadInput(f"{dataset} has no version {version_no} (latest is {latest})")
    if not audit.exists():  # no backfill ever ran here: version 0 is the table as it is
        return f"select * from {relation}"
    later = audit.versions.replaced_after(dataset, version_no)
    if not later:
        return f"select * from {relation}"
    by_backup: dict[str, list[date]] = {}
    for partition, backup in later:
        by_backup.setdefault(str(backup), []).append(partition)
    replaced = ", ".join(quote_literal(p.isoformat()) for p, _ in later)
    parts = [f"select * from {relation} where {partition_field} not in ({replaced})"]
    for backup, days in sorted(by_backup.items()):
        listed = ", ".join(quote_literal(d.isoformat()) for d in days)
        if not audit.wh.relation_exists(backup):
            raise BadInput(
                f"version {version_no} of {dataset} needs backup {backup}, which was expired "
                "by `backfill maintain`"
            )
        parts.append(f"select * from {backup} where {partition_field} in ({listed})")
    return "\nunion all\n".join(parts)


def check_output_path(output: Path) -> Path:
    if output.suffix != ".parquet":
        raise BadInput(f"output {str(output)!r} must be a .parquet file")
    if ".." in output.parts:
        raise BadInput(f"output {str(output)!r} must not contain '..'")
    if output.exists():
        raise BadInput(f"output {str(output)!r} already exists; choose a new file")
    if not output.parent.is_dir():
        raise BadInput(f"output directory {str(output.parent)!r} does not exist")
    return output


def check_tag(tag: str) -> str:
    if not TAG.fullmatch(tag or ""):
        raise BadInput(f"tag {tag!r} must be 1-64 letters, digits or '_'")
    return tag


def export_version(ctx: Context, model_name: str, version_no: int, output: Path) -> dict[str, Any]:
    """Write the dataset as it was at `version_no` to a Parquet file."""
    check_identifier(model_name)
    path = check_output_path(output)
    model = ctx.dbt.manifest().model(model_name)
    _refuse_half_published(ctx, model.name, "exported")
    pf = model.policy().partition_field
    sql = version_sql(ctx.audit, model.name, model.relation, pf, version_no)
    rows = ctx.warehouse.export_parquet(sql, str(path))
    return {"model": model.name, "version": version_no, "output": str(path), "rows": rows}


def take_snapshot(
    ctx: Context, model_name: str, tag: str, model_run_id: str | None, requested_by: str | None
) -> dict[str, Any]:
    """An immutable full copy (e.g. an ML training set) that later backfills never touch."""
    check_identifier(model_name)
    check_tag(tag)
    if model_run_id is not None:
        check_reason(model_run_id, "model run id")
    who = ctx.who(requested_by)
    model = ctx.dbt.manifest().model(model_name)
    audit, wh = ctx.audit, ctx.warehouse
    _refuse_half_published(ctx, model.name, "snapshotted")
    audit.ensure()
    relation = f"{SNAPSHOT_SCHEMA}.{model.name.replace('.', '_')}__{tag}"
    if wh.relation_exists(relation):
        raise BadInput(f"snapshot {tag!r} of {model.name} already exists; snapshots are immutable")
    versions = audit.versions.list_versions(model.name)
    version_no = versions[-1]["version_no"] if versions else 0
    wh.ensure_schema(SNAPSHOT_SCHEMA)
    with wh.transaction():
        wh.create_table_as(relation, f"select * from {model.relation}")
        count, checksum = wh.table_checksum(relation)
        audit.versions.record_snapshot(
            model.name, tag, relation, version_no, count, checksum, model_run_id, who
        )
    return {
        "model": model.name,
        "tag": tag,
        "relation": relation,
        "version": version_no,
        "rows": count,
        "checksum": checksum,
    }


def _refuse_half_published(ctx: Context, model: str, action: str) -> None:
    """Versions are whole published chunks: a half-published one would leak into both."""
    pending = ctx.audit.chunks.half_published(model)
    if pending:
        raise BadInput(
            f"{model} cannot be {action} while backfill {pending[0]} is half-published "
            f"(publish: partition_copy stopped between partitions): resume it with "
            f"`backfill run {pending[0]} --execute` or roll it back first"
        )
