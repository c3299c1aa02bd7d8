"""Lineage rows: which backfill, code and inputs produced each published chunk."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date
from typing import Any

from orchestrator.audit.tables import Family, utcnow

TABLES = {
    "lineage": [
        ("run_id", "string"),
        ("backfill_id", "string"),
        ("output_relation", "string"),
        ("partition_start", "date"),
        ("partition_end", "date"),
        ("input_relations", "string"),
        ("git_commit", "string"),
        ("config_hash", "string"),
        ("dbt_invocation_id", "string"),
        ("vars", "string"),
        ("produced_at", "timestamp"),
    ],
}
FIELDS = [name for name, _ in TABLES["lineage"]]
BACKFILL_FIELDS = [
    "run_id",
    "output_relation",
    "partition_start",
    "partition_end",
    "input_relations",
    "git_commit",
    "config_hash",
    "dbt_invocation_id",
    "produced_at",
]


def config_hash(sql: str) -> str:
    """Hash of the compiled SQL that produced a chunk."""
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


class LineageRecords(Family):
    def record(
        self,
        backfill_id: str,
        git_commit: str,
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
        self.wh.insert_rows(
            self.t("lineage"),
            [
                {
                    "run_id": run_id,
                    "backfill_id": backfill_id,
                    "output_relation": output_relation,
                    "partition_start": start,
                    "partition_end": end,
                    "input_relations": json.dumps(scoped),
                    "git_commit": git_commit,
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

    def of(self, relation: str, partition: date | None = None) -> list[dict[str, Any]]:
        """Lineage rows of a relation (covering `partition` if given), newest first."""
        if not self.exists():
            return []
        where = "output_relation = $r"
        params: dict[str, Any] = {"r": relation}
        if partition is not None:
            where += " and $p between partition_start and partition_end"
            params["p"] = partition
        rows = self.wh.query(
            f"select {', '.join(FIELDS)} from {self.t('lineage')} where {where} "
            "order by produced_at desc",
            params,
        )
        out = []
        for r in rows:
            row = dict(zip(FIELDS, r, strict=True))
            row["input_relations"] = json.loads(row["input_relations"])
            row["vars"] = json.loads(row["vars"])
            out.append(row)
        return out

    def of_backfill(self, backfill_id: str) -> list[dict[str, Any]]:
        """The lineage row of every chunk the backfill published, inputs decoded."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select {', '.join(BACKFILL_FIELDS)} from {self.t('lineage')} "
            "where backfill_id = $id order by output_relation, partition_start, produced_at",
            {"id": backfill_id},
        )
        out = []
        for r in rows:
            row = dict(zip(BACKFILL_FIELDS, r, strict=True))
            row["input_relations"] = json.loads(row["input_relations"] or "[]")
            out.append(row)
        return out
