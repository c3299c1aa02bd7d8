"""Demo tooling, apart from the product: deterministic bronze data and the `make demo` walk.

Both write the embedded DuckDB warehouse (they are the commands that may create it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.context import check_target
from orchestrator.errors import BadInput
from orchestrator.plan import parse_date

if TYPE_CHECKING:
    from orchestrator.demo.deliveries import Delivery
    from orchestrator.demo.generate import GenerateResult


def require_duckdb(target: str | None, command: str) -> None:
    """Demo tooling writes the embedded DuckDB file; on any other target it would not
    touch the warehouse the user named, so it is refused before anything is written."""
    name = check_target(target)
    if name != "duckdb":
        raise BadInput(
            f"`backfill {command}` writes the embedded DuckDB warehouse only, not {name}; "
            "load bronze into BigQuery with your ingestion (tests load the generator's "
            "output as Parquet)"
        )


def write_bronze(
    target: str | None, *, days: int, trips_per_day: int, seed: int, start_date: str
) -> GenerateResult:
    """Generate bronze events into the DuckDB warehouse file (created if missing)."""
    from orchestrator.demo.generate import generate_bronze
    from orchestrator.warehouse.duckdb import connect

    require_duckdb(target, "generate")
    first_day = parse_date(start_date, "start")
    with connect() as con:
        return generate_bronze(
            con, days=days, trips_per_day=trips_per_day, seed=seed, start_date=first_day
        )


def deliver(
    target: str | None,
    kind: str,
    days_text: str,
    on_text: str,
    *,
    trips_per_day: int = 10,
    like: str | None = None,
) -> Delivery:
    """A later bronze delivery for old days (see `orchestrator.demo.deliveries`)."""
    from orchestrator.demo import deliveries
    from orchestrator.warehouse.duckdb import connect, default_path

    require_duckdb(target, "deliver")
    days = [parse_date(d.strip(), "delivery") for d in days_text.split(",")]
    on = parse_date(on_text, "delivery")
    if not default_path().exists():
        raise BadInput(f"warehouse file {default_path()} does not exist (RIDESHARE_DUCKDB_PATH)")
    with connect() as con:
        if kind == "late":
            return deliveries.deliver_late(con, days, trips_per_day, on)
        if kind == "corrected":
            return deliveries.deliver_corrected(con, days, trips_per_day, on)
        if like is None or len(days) != 1:
            raise BadInput("`deliver day` takes one day and --like DAY (the day to copy)")
        return deliveries.deliver_day(con, days[0], parse_date(like, "like"), on)
