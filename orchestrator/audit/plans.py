"""Plans and their lifecycle: the plan itself, status events, dry runs, approvals, rollbacks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from orchestrator.audit.tables import Family, utcnow
from orchestrator.errors import BadInput
from orchestrator.lifecycle import Status
from orchestrator.plan import Chunk

TABLES = {
    "plans": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("chunk_days", "int"),
        ("downstream", "bool"),
        ("chunks", "string"),
        ("vars", "string"),
        ("fingerprint", "string"),
        ("project_hash", "string"),
        ("git_commit", "string"),
        ("requested_by", "string"),
        ("reason", "string"),
        ("impact", "string"),
        ("created_at", "timestamp"),
        ("category", "string"),  # added later: Tables.ensure adds it to older stores
    ],
    "backfill_log": [
        ("event_no", "int"),
        ("backfill_id", "string"),
        ("model", "string"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("status", "string"),
        ("rows_affected", "int"),
        ("requested_by", "string"),
        ("approved_by", "string"),
        ("reason", "string"),
        ("plan_fingerprint", "string"),
        ("git_commit", "string"),
        ("dry_run", "bool"),
        ("started_at", "timestamp"),
        ("completed_at", "timestamp"),
        ("error", "string"),
        ("recorded_at", "timestamp"),
    ],
    "approvals": [
        ("backfill_id", "string"),
        ("approver", "string"),
        ("fingerprint", "string"),
        ("comment", "string"),
        ("approved_at", "timestamp"),
    ],
    "dry_runs": [
        ("backfill_id", "string"),
        ("fingerprint", "string"),
        ("ok", "bool"),
        ("estimates", "string"),
        ("compiled_dir", "string"),
        ("error", "string"),
        ("created_at", "timestamp"),
    ],
    "rollbacks": [
        ("backfill_id", "string"),
        ("model", "string"),
        ("requested_by", "string"),
        ("forced", "bool"),
        ("conflicts", "string"),
        ("backup_relation", "string"),
        ("rolled_back_at", "timestamp"),
    ],
}

LOG_FIELDS = [name for name, _ in TABLES["backfill_log"]]


@dataclass(frozen=True)
class PlanRecord:
    backfill_id: str
    model: str
    start: date
    end: date
    chunk_days: int
    downstream: bool
    chunks: list[Chunk]
    dbt_vars: dict[str, Any]
    fingerprint: str
    project_hash: str
    git_commit: str
    requested_by: str
    reason: str
    impact: dict[str, Any]
    created_at: datetime
    category: str = "other"

    @property
    def models(self) -> list[str]:
        """The models the plan writes, in the order it writes them."""
        return list(dict.fromkeys(c.model for c in self.chunks))


class PlanLog(Family):
    # -- plans ---------------------------------------------------------------------------
    def insert_plan(self, plan: PlanRecord) -> None:
        self.wh.insert_rows(
            self.t("plans"),
            [
                {
                    "backfill_id": plan.backfill_id,
                    "model": plan.model,
                    "start_date": plan.start,
                    "end_date": plan.end,
                    "chunk_days": plan.chunk_days,
                    "downstream": plan.downstream,
                    "chunks": json.dumps([c.as_dict() for c in plan.chunks]),
                    "vars": json.dumps(plan.dbt_vars, sort_keys=True),
                    "fingerprint": plan.fingerprint,
                    "project_hash": plan.project_hash,
                    "git_commit": plan.git_commit,
                    "requested_by": plan.requested_by,
                    "reason": plan.reason,
                    "impact": json.dumps(plan.impact, sort_keys=True, default=str),
                    "created_at": plan.created_at,
                    "category": plan.category,
                }
            ],
        )

    def get_plan(self, backfill_id: str) -> PlanRecord:
        rows = (
            self.wh.query(
                f"select backfill_id, model, start_date, end_date, chunk_days, downstream, chunks,"
                f" vars, fingerprint, project_hash, git_commit, requested_by, reason, impact,"
                f" created_at, category from {self.t('plans')} where backfill_id = $id",
                {"id": backfill_id},
            )
            if self.exists()
            else []
        )
        if not rows:
            raise BadInput(f"unknown plan {backfill_id!r}")
        r = rows[0]
        return PlanRecord(
            backfill_id=r[0],
            model=r[1],
            start=r[2],
            end=r[3],
            chunk_days=int(r[4]),
            downstream=bool(r[5]),
            chunks=[Chunk.from_dict(c) for c in json.loads(r[6])],
            dbt_vars=json.loads(r[7]),
            fingerprint=r[8],
            project_hash=r[9],
            git_commit=r[10],
            requested_by=r[11],
            reason=r[12] or "",
            impact=json.loads(r[13]),
            created_at=r[14],
            category=r[15] or "other",
        )

    # -- status events -------------------------------------------------------------------
    def log(self, plan: PlanRecord, status: Status, **fields: Any) -> None:
        """Append a status event; unspecified fields carry over from the latest event."""
        current = self.current(plan.backfill_id) or {}
        row: dict[str, Any] = {name: current.get(name) for name in LOG_FIELDS}
        row.update(
            backfill_id=plan.backfill_id,
            model=plan.model,
            start_date=plan.start,
            end_date=plan.end,
            requested_by=plan.requested_by,
            reason=plan.reason,
            plan_fingerprint=plan.fingerprint,
            git_commit=plan.git_commit,
        )
        row.update(fields)
        row["status"] = str(status)
        row["event_no"] = int(current.get("event_no") or 0) + 1
        row["recorded_at"] = utcnow()
        if status.is_terminal:
            row["completed_at"] = row["recorded_at"]
        else:
            row["completed_at"] = None
            row["error"] = fields.get("error")
        self.wh.insert_rows(self.t("backfill_log"), [row])

    def current(self, backfill_id: str) -> dict[str, Any] | None:
        rows = self._latest_log("where backfill_id = $id", {"id": backfill_id})
        return rows[0] if rows else None

    def status(self, backfill_id: str) -> Status:
        current = self.current(backfill_id)
        return Status(current["status"]) if current else Status.PLANNED

    def history(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        where, params = ("where model = $model", {"model": model}) if model else ("", {})
        return self._latest_log(where, params, limit)

    def events(self, backfill_id: str) -> list[dict[str, Any]]:
        rows = self.wh.query(
            f"select {', '.join(LOG_FIELDS)} from {self.t('backfill_log')} "
            "where backfill_id = $id order by event_no",
            {"id": backfill_id},
        )
        return [dict(zip(LOG_FIELDS, r, strict=True)) for r in rows]

    def statuses(self) -> dict[str, str]:
        """The current status of every backfill."""
        return {str(r["backfill_id"]): str(r["status"]) for r in self._latest_log("", {}, None)}

    def last_activity(self) -> dict[str, datetime]:
        """When each backfill last recorded a status event."""
        rows = self.wh.query(
            f"select backfill_id, max(recorded_at) from {self.t('backfill_log')} group by 1"
        )
        return {str(r[0]): r[1] for r in rows}

    def _latest_log(
        self, where: str, params: Mapping[str, Any], limit: int | None = 1000
    ) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        limited = "" if limit is None else f" limit {int(limit)}"
        rows = self.wh.query(
            f"select {', '.join(LOG_FIELDS)} from {self.t('backfill_log')} {where} "
            "qualify row_number() over (partition by backfill_id order by event_no desc) = 1 "
            f"order by recorded_at desc, backfill_id{limited}",
            params,
        )
        return [dict(zip(LOG_FIELDS, r, strict=True)) for r in rows]

    # -- dry runs and approvals ----------------------------------------------------------
    def record_dry_run(
        self,
        backfill_id: str,
        fingerprint: str,
        ok: bool,
        estimates: Any,
        compiled_dir: str,
        error: str | None = None,
    ) -> None:
        self.wh.insert_rows(
            self.t("dry_runs"),
            [
                {
                    "backfill_id": backfill_id,
                    "fingerprint": fingerprint,
                    "ok": ok,
                    "estimates": json.dumps(estimates, default=str),
                    "compiled_dir": compiled_dir,
                    "error": error,
                    "created_at": utcnow(),
                }
            ],
        )

    def has_ok_dry_run(self, backfill_id: str, fingerprint: str) -> bool:
        if not self.exists():
            return False
        rows = self.wh.query(
            f"select 1 from {self.t('dry_runs')} "
            "where backfill_id = $id and fingerprint = $fp and ok",
            {"id": backfill_id, "fp": fingerprint},
        )
        return bool(rows)

    def approval(self, backfill_id: str) -> dict[str, Any] | None:
        if not self.exists():
            return None
        rows = self.wh.query(
            f"select approver, fingerprint, comment, approved_at from {self.t('approvals')} "
            "where backfill_id = $id order by approved_at desc limit 1",
            {"id": backfill_id},
        )
        if not rows:
            return None
        approver, fp, comment, at = rows[0]
        return {"approver": approver, "fingerprint": fp, "comment": comment, "approved_at": at}

    def record_approval(
        self, backfill_id: str, approver: str, fingerprint: str, comment: str
    ) -> None:
        self.wh.insert_rows(
            self.t("approvals"),
            [
                {
                    "backfill_id": backfill_id,
                    "approver": approver,
                    "fingerprint": fingerprint,
                    "comment": comment,
                    "approved_at": utcnow(),
                }
            ],
        )

    # -- rollbacks -----------------------------------------------------------------------
    def record_rollback(
        self, plan: PlanRecord, requested_by: str, conflicts: list[str], backup_relation: str
    ) -> None:
        self.wh.insert_rows(
            self.t("rollbacks"),
            [
                {
                    "backfill_id": plan.backfill_id,
                    "model": plan.model,
                    "requested_by": requested_by,
                    "forced": bool(conflicts),
                    "conflicts": json.dumps(conflicts),
                    "backup_relation": backup_relation,
                    "rolled_back_at": utcnow(),
                }
            ],
        )

    def approvals(self, backfill_id: str) -> list[dict[str, Any]]:
        """Every approval of the backfill, oldest first."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select approver, fingerprint, comment, approved_at from {self.t('approvals')} "
            "where backfill_id = $id order by approved_at",
            {"id": backfill_id},
        )
        fields = ("approver", "fingerprint", "comment", "approved_at")
        return [dict(zip(fields, r, strict=True)) for r in rows]

    def dry_runs(self, backfill_id: str) -> list[dict[str, Any]]:
        """Every dry run of the backfill, oldest first, estimates decoded."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"select fingerprint, ok, estimates, error, created_at from {self.t('dry_runs')} "
            "where backfill_id = $id order by created_at",
            {"id": backfill_id},
        )
        return [
            {
                "fingerprint": r[0],
                "ok": bool(r[1]),
                "estimates": json.loads(r[2]) if r[2] else None,
                "error": r[3],
                "created_at": r[4],
            }
            for r in rows
        ]

    def planned_since(self, since: datetime) -> list[dict[str, Any]]:
        """Every backfill planned since `since`: its model, category and how it ended."""
        if not self.exists():
            return []
        rows = self.wh.query(
            f"""
            select p.backfill_id, p.model, coalesce(p.category, 'other'), l.status,
                   l.started_at, l.completed_at, p.created_at
            from {self.t("plans")} p
            join (
                select backfill_id, status, started_at, completed_at
                from {self.t("backfill_log")}
                qualify row_number() over (partition by backfill_id order by event_no desc) = 1
            ) l on l.backfill_id = p.backfill_id
            where p.created_at >= $since
            order by p.created_at
            """,
            {"since": since},
        )
        keys = ["backfill_id", "model", "category", "status", "started_at", "completed_at"]
        return [dict(zip([*keys, "created_at"], r, strict=True)) for r in rows]
