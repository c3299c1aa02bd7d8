"""Dataset versions: a version is a published backfill (or rollback); its deltas are
partition-level, each pointing at the backup that holds the partition as it was before.

Version 0 is the dataset as dbt built it. Version N-1 is version N with the partitions N
replaced taken from N's backup, so any version whose later backups are kept can be
exported. Changes made outside the orchestrator (a plain `dbt run`) are not versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orchestrator.audit import AuditStore, utcnow
from orchestrator.context import Context, operator
from orchestrator.errors import BadInput
from orchestrator.plan import check_identifier, check_reason
from orchestrator.warehouse.base import PartitionStats, quote_literal

SNAPSHOT_SCHEMA = "backfill_snapshots"
TAG = re.compile(r"[A-Za-z0-9_]{1,64}")  # fullmatch: `$` admits a trailing newline


@dataclass(frozen=True)
class VersionRef:
    version_id: str
    version_no: int


def version_for(
    audit: AuditStore,
    dataset: str,
    backfill_id: str,
    kind: str,
    fingerprint: str,
    description: str,
) -> VersionRef:
    """The version a backfill's publishes add to, created with its first publish."""
    rows = audit.wh.query(
        f"select version_id, version_no from {audit.t('dataset_versions')} "
        "where dataset = $d and created_by_backfill = $b and kind = $k",
        {"d": dataset, "b": backfill_id, "k": kind},
    )
    if rows:
        return VersionRef(str(rows[0][0]), int(rows[0][1]))
    latest = audit.wh.query(
        f"select version_id, version_no from {audit.t('dataset_versions')} where dataset = $d "
        "order by version_no desc limit 1",
        {"d": dataset},
    )
    number = int(latest[0][1]) + 1 if latest else 1
    ref = VersionRef(f"{dataset}@{number}", number)
    audit.wh.insert_rows(
        audit.t("dataset_versions"),
        [
            {
                "version_id": ref.version_id,
                "dataset": dataset,
                "version_no": number,
                "parent_version": str(latest[0][0]) if latest else f"{dataset}@0",
                "created_by_backfill": backfill_id,
                "kind": kind,
                "created_at": utcnow(),
                "fingerprint": fingerprint,
                "description": description,
            }
        ],
    )
    return ref


def record_deltas(
    audit: AuditStore,
    ref: VersionRef,
    dataset: str,
    start: date,
    end: date,
    before: dict[date, PartitionStats],
    after: dict[date, PartitionStats],
    backup_relation: str,
) -> None:
    """One delta per replaced day partition (empty before or after counts as 0 rows)."""
    rows = []
    day = start
    while day <= end:
        b, a = before.get(day), after.get(day)
        rows.append(
            {
                "version_id": ref.version_id,
                "dataset": dataset,
                "partition_date": day,
                "rows_before": b.rows if b else 0,
                "rows_after": a.rows if a else 0,
                "checksum_before": b.checksum if b else "0",
                "checksum_after": a.checksum if a else "0",
                "backup_relation": backup_relation,
            }
        )
        day += timedelta(days=1)
    audit.wh.insert_rows(audit.t("dataset_deltas"), rows)


def list_versions(audit: AuditStore, dataset: str) -> list[dict[str, Any]]:
    if not audit.exists():
        return []
    rows = audit.wh.query(
        f"select v.version_no, v.version_id, v.parent_version, v.kind, v.created_by_backfill, "
        f"v.created_at, v.fingerprint, v.description, count(d.partition_date), "
        f"min(d.partition_date), max(d.partition_date), "
        f"coalesce(sum(d.rows_after), 0) - coalesce(sum(d.rows_before), 0) "
        f"from {audit.t('dataset_versions')} v left join {audit.t('dataset_deltas')} d "
        "using (version_id) where v.dataset = $d group by all order by v.version_no",
        {"d": dataset},
    )
    keys = [
        "version_no",
        "version_id",
        "parent_version",
        "kind",
        "created_by_backfill",
        "created_at",
        "fingerprint",
        "description",
        "partitions",
        "first_partition",
        "last_partition",
        "row_change",
    ]
    return [dict(zip(keys, r, strict=True)) for r in rows]


def version_sql(
    audit: AuditStore, dataset: str, relation: str, partition_field: str, version_no: int
) -> str:
    """SELECT of the dataset as it was at `version_no`."""
    if version_no < 0:
        raise BadInput(f"version must be 0 or more, not {version_no}")
    known = [v["version_no"] for v in list_versions(audit, dataset)]
    if version_no and version_no not in known:
        latest = max(known, default=0)
        raise BadInput(f"{dataset} has no version {version_no} (latest is {latest})")
    if not audit.exists():  # no backfill ever ran here: version 0 is the table as it is
        return f"select * from {relation}"
    later = audit.wh.query(
        f"select d.partition_date, d.backup_relation from {audit.t('dataset_deltas')} d "
        f"join {audit.t('dataset_versions')} v using (version_id) "
        "where v.dataset = $d and v.version_no > $n "
        "qualify row_number() over (partition by d.partition_date order by v.version_no) = 1",
        {"d": dataset, "n": version_no},
    )
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
    who = operator(requested_by)
    model = ctx.dbt.manifest().model(model_name)
    audit, wh = ctx.audit, ctx.warehouse
    _refuse_half_published(ctx, model.name, "snapshotted")
    audit.ensure()
    relation = f"{SNAPSHOT_SCHEMA}.{model.name.replace('.', '_')}__{tag}"
    if wh.relation_exists(relation):
        raise BadInput(f"snapshot {tag!r} of {model.name} already exists; snapshots are immutable")
    versions = list_versions(audit, model.name)
    version_no = versions[-1]["version_no"] if versions else 0
    wh.ensure_schema(SNAPSHOT_SCHEMA)
    with wh.transaction():
        wh.create_table_as(relation, f"select * from {model.relation}")
        count, checksum = wh.table_checksum(relation)
        audit.wh.insert_rows(
            audit.t("dataset_snapshots"),
            [
                {
                    "dataset": model.name,
                    "tag": tag,
                    "relation": relation,
                    "version_no": version_no,
                    "row_count": count,
                    "checksum": checksum,
                    "model_run_id": model_run_id,
                    "created_by": who,
                    "created_at": utcnow(),
                }
            ],
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
    pending = ctx.audit.half_published(model)
    if pending:
        raise BadInput(
            f"{model} cannot be {action} while backfill {pending[0]} is half-published "
            f"(publish: partition_copy stopped between partitions): resume it with "
            f"`backfill run {pending[0]} --execute` or roll it back first"
        )
