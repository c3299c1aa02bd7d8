"""The audit store: the orchestrator's state, in the warehouse itself (`backfill_audit`).

One module per table family, each the only code that reads or writes its tables; this
facade gives every command one object with a member per family. Record writers take a
warehouse, never the command context, so they can run inside any transaction.
"""

from __future__ import annotations

from orchestrator.audit import (
    chunks,
    ledger,
    lineage,
    locks,
    maintenance,
    notifications,
    online_syncs,
    plans,
    versions,
)
from orchestrator.audit.chunks import ChunkRecords, ChunkState
from orchestrator.audit.ledger import LedgerRecords
from orchestrator.audit.lineage import LineageRecords
from orchestrator.audit.locks import LockRecords
from orchestrator.audit.maintenance import MaintenanceRecords
from orchestrator.audit.notifications import NotificationRecords
from orchestrator.audit.plans import PlanLog, PlanRecord
from orchestrator.audit.tables import SCHEMA, Columns, Tables, qualified, utcnow
from orchestrator.audit.versions import VersionRecords, VersionRef
from orchestrator.warehouse.base import Warehouse

__all__ = [
    "SCHEMA",
    "TABLES",
    "AuditStore",
    "ChunkState",
    "PlanRecord",
    "VersionRef",
    "utcnow",
]

TABLES: dict[str, Columns] = {
    **plans.TABLES,
    **chunks.TABLES,
    **versions.TABLES,
    **lineage.TABLES,
    **locks.TABLES,
    **maintenance.TABLES,
    **online_syncs.TABLES,
    **notifications.TABLES,
    **ledger.TABLES,
}


class AuditStore:
    def __init__(self, warehouse: Warehouse) -> None:
        self.wh = warehouse
        self._tables = Tables(warehouse, TABLES)
        self.plans = PlanLog(self._tables)
        self.chunks = ChunkRecords(self._tables)
        self.versions = VersionRecords(self._tables)
        self.lineage = LineageRecords(self._tables)
        self.locks = LockRecords(self._tables)
        self.maintenance = MaintenanceRecords(self._tables)
        self.ledger = LedgerRecords(self._tables)
        self.notifications = NotificationRecords(self._tables)

    def ensure(self) -> None:
        """Create the schema and tables (only on paths that write)."""
        self._tables.ensure()

    def exists(self) -> bool:
        return self._tables.exists()

    def row_counts(self) -> dict[str, int]:
        """Rows per audit table (`schema.table`), for summaries."""
        if not self.exists():
            return {}
        return {
            qualified(table): int(self.wh.query(f"select count(*) from {qualified(table)}")[0][0])
            for table in sorted(TABLES)
            if self.wh.relation_exists(qualified(table))
        }
