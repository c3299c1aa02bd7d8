"""What `backfill maintain` removed, when, by whom and why."""

from __future__ import annotations

from orchestrator.audit.tables import Family, utcnow

TABLES = {
    "maintenance_log": [
        ("relation", "string"),
        ("action", "string"),
        ("reason", "string"),
        ("actor", "string"),
        ("recorded_at", "timestamp"),
    ],
}


class MaintenanceRecords(Family):
    def record_drop(self, relation: str, reason: str, actor: str) -> None:
        self.wh.insert_rows(
            self.t("maintenance_log"),
            [
                {
                    "relation": relation,
                    "action": "dropped",
                    "reason": reason,
                    "actor": actor,
                    "recorded_at": utcnow(),
                }
            ],
        )
