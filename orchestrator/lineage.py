"""Lineage: which backfill, code and inputs produced each published partition."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date
from typing import Any

from orchestrator.audit import AuditStore, PlanRecord, utcnow


def config_hash(sql: str) -> str:
    """Hash of the compiled SQL that produced a chunk."""
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


def record_lineage(
    audit: AuditStore,
    plan: PlanRecord,
    output_relation: str,
    start: date,
    end: date,
    inputs: list[dict[str, str | None]],
    sql: str,
    invocation_id: str,
) -> str:
    """One lineage row per published chunk; inputs that a range filters carry that range."""
    run_id = str(uuid.uuid4())
    scoped = [
        {
            "relation": i["relation"],
            "partition_field": i["partition_field"],
            "range": [start.isoformat(), end.isoformat()] if i["partition_field"] else None,
        }
        for i in inputs
    ]
    audit.wh.insert_rows(
        audit.t("lineage"),
        [
            {
                "run_id": run_id,
                "backfill_id": plan.backfill_id,
                "output_relation": output_relation,
                "partition_start": start,
                "partition_end": end,
                "input_relations": json.dumps(scoped),
                "git_commit": plan.git_commit,
                "config_hash": config_hash(sql),
                "dbt_invocation_id": invocation_id,
                "vars": json.dumps(
                    {"backfill_start": start.isoformat(), "backfill_end": end.isoformat()}
                ),
                "produced_at": utcnow(),
            }
        ],
    )
    return run_id


def lineage_of(
    audit: AuditStore, relation: str, partition: date | None = None
) -> list[dict[str, Any]]:
    """Lineage rows of a relation (covering `partition` if given), newest first, each with
    the current status of its backfill (a rolled-back one no longer produced the data)."""
    if not audit.exists():
        return []
    where = "l.output_relation = $r"
    params: dict[str, Any] = {"r": relation}
    if partition is not None:
        where += " and $p between l.partition_start and l.partition_end"
        params["p"] = partition
    rows = audit.wh.query(
        f"""
        select l.run_id, l.backfill_id, l.output_relation, l.partition_start, l.partition_end,
               l.input_relations, l.git_commit, l.config_hash, l.dbt_invocation_id, l.vars,
               l.produced_at, s.status
        from {audit.t("lineage")} l
        left join (
            select backfill_id, status from {audit.t("backfill_log")}
            qualify row_number() over (partition by backfill_id order by event_no desc) = 1
        ) s using (backfill_id)
        where {where}
        order by l.produced_at desc
        """,
        params,
    )
    keys = [
        "run_id",
        "backfill_id",
        "output_relation",
        "partition_start",
        "partition_end",
        "input_relations",
        "git_commit",
        "config_hash",
        "dbt_invocation_id",
        "vars",
        "produced_at",
        "backfill_status",
    ]
    out = []
    for r in rows:
        row = dict(zip(keys, r, strict=True))
        row["input_relations"] = json.loads(row["input_relations"])
        row["vars"] = json.loads(row["vars"])
        out.append(row)
    return out
