"""What every command needs: the dbt project, the warehouse, the audit store, who and when."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from orchestrator.audit import AuditStore
from orchestrator.dbt import Dbt
from orchestrator.errors import BadInput
from orchestrator.plan import check_person, normalise_person, parse_date
from orchestrator.warehouse.base import Warehouse

TARGETS = ("duckdb", "bigquery")


def check_target(target: str | None) -> str:
    """The dbt target, which names the warehouse type: refused before anything is parsed."""
    name = target or os.environ.get("DBT_TARGET", "duckdb")
    if name not in TARGETS:
        raise BadInput(
            f"target {name!r} is not supported by the orchestrator (use duckdb or bigquery)"
        )
    return name


def check_project_dir(project_dir: Path) -> Path:
    """A dbt project directory: one that holds dbt_project.yml."""
    if not (project_dir / "dbt_project.yml").is_file():
        raise BadInput(
            f"project directory {str(project_dir)!r} has no dbt_project.yml; "
            "pass --project-dir with the dbt project"
        )
    return project_dir


def open_warehouse(target: str | None, *, create: bool = False) -> Warehouse:
    """The warehouse behind a dbt target (the profile's target names are the warehouse
    types). A DuckDB file must exist unless the command is one that creates it."""
    name = check_target(target)
    if name == "duckdb":
        from orchestrator.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(create=create)
    from orchestrator.warehouse.bigquery import BigQueryWarehouse

    return BigQueryWarehouse()


def operator(requested_by: str | None) -> str:
    """Who is acting: --requested-by, else $BACKFILL_OPERATOR, else the OS user.

    An explicit name is checked as given: `--requested-by ""` is refused, not replaced.
    """
    if requested_by is not None:
        return check_person(requested_by, "operator name")
    name = os.environ.get("BACKFILL_OPERATOR")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no login name and no passwd entry (some containers)
            raise BadInput(
                "cannot tell who is acting: pass --requested-by NAME or set BACKFILL_OPERATOR"
            ) from None
    return check_person(name, "operator name")


def today() -> date:
    """Today in UTC; BACKFILL_TODAY (YYYY-MM-DD) freezes it for tests and demos."""
    frozen = os.environ.get("BACKFILL_TODAY")
    return parse_date(frozen, "BACKFILL_TODAY") if frozen else datetime.now(UTC).date()


@dataclass
class Context:
    project_dir: Path
    target: str | None = None
    creates_warehouse: bool = False  # only demo tooling may create the DuckDB file
    _warehouse: Warehouse | None = field(default=None, repr=False)
    _dbt: Dbt | None = field(default=None, repr=False)
    _audit: AuditStore | None = field(default=None, repr=False)

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = open_warehouse(self.target, create=self.creates_warehouse)
        return self._warehouse

    @property
    def audit(self) -> AuditStore:
        if self._audit is None:
            self._audit = AuditStore(self.warehouse)
        return self._audit

    @property
    def dbt(self) -> Dbt:
        if self._dbt is None:
            check_target(self.target)  # a bad target is bad input, not a dbt parse failure
            self._dbt = Dbt(check_project_dir(self.project_dir), self.target)
        return self._dbt

    def who(self, claimed: str | None, label: str = "operator name") -> str:
        """Who acts: on a warehouse that authenticates (BigQuery) its principal, which a
        name given on the command line may only restate; elsewhere the name given, else
        $BACKFILL_OPERATOR, else the OS user. Always normalised (see plan.normalise_person)."""
        principal = self.warehouse.principal()
        if principal is None:
            return (
                operator(claimed)
                if label == "operator name"
                else check_person(claimed or "", label)
            )
        signed_in = normalise_person(principal)
        if claimed is not None and check_person(claimed, label) != signed_in:
            raise BadInput(
                f"{label} {claimed!r} is not who is signed in to {self.warehouse.name} "
                f"({signed_in}): there the acting identity is the credentials' principal, "
                "which a name given may only restate"
            )
        return signed_in

    def close(self) -> None:
        if self._dbt is not None:
            self._dbt.release_warehouse()
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
            self._audit = None
