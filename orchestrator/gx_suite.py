"""Great Expectations plumbing for `orchestrator.validate`.

One ephemeral GX context per process (nothing is written to disk), one SQL datasource per
open warehouse connection and schema (cached), and one table asset per validated relation.
Great Expectations takes seconds to import, so it is imported here on the first validation,
never when the CLI starts: nothing at module level touches `great_expectations`.

Callers describe expectations with `Expect` and read back `Outcome`s, so `validate.py`
needs no GX types.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.errors import WorkFailed

if TYPE_CHECKING:
    from orchestrator.warehouse.base import Warehouse

Kind = Literal["not_null", "unique", "between", "in_set"]

# How many failing rows GX samples per failed expectation to name their partitions.
SAMPLE_ROWS = 200


@dataclass(frozen=True)
class Expect:
    """One expectation on a relation, described without importing Great Expectations.

    `unique` takes one column or several (a compound key); the others take one column.
    `mostly` is the share of rows that must meet it (GX's `mostly`).
    """

    kind: Kind
    columns: tuple[str, ...]
    min: float | date | None = None
    max: float | date | None = None
    values: tuple[str, ...] | None = None
    mostly: float = 1.0


@dataclass(frozen=True)
class Outcome:
    """What GX observed for one `Expect`."""

    success: bool
    rows: int  # rows in the relation
    unexpected: int  # rows that did not meet the expectation
    partitions: tuple[str, ...] = ()  # ISO partitions of the failing rows GX sampled
    all_partitions_named: bool = True  # the sample held every failing row
    error: str | None = None  # GX could not evaluate it (e.g. a missing column)

    @property
    def unexpected_share(self) -> float:
        return self.unexpected / self.rows if self.rows else 0.0


def run_suite(
    wh: Warehouse, relation: str, expects: Sequence[Expect], partition_field: str
) -> list[Outcome]:
    """Validate `relation` against `expects` with one GX suite run; outcomes in order.

    The happy path costs one GX run, whose metrics GX bundles into a few aggregate queries.
    Only row checks that fail are re-run, once, with a sample of the failing rows, to name
    the partitions (values of `partition_field`) those rows sit in.
    """
    if not expects:
        return []
    source = _source_for(wh, relation)
    asset_name = f"a{next(_asset_numbers)}"
    asset = source.datasource.add_table_asset(asset_name, table_name=source.table_name(relation))
    try:
        batch = asset.add_batch_definition_whole_table("whole table").get_batch()
        outcomes = _validate(
            batch, expects, {"result_format": "BASIC", "partial_unexpected_count": 0}
        )
        # A rate (mostly < 1) belongs to the whole relation: only row checks name partitions.
        failed = [
            i
            for i, o in enumerate(outcomes)
            if not o.success and o.error is None and expects[i].mostly == 1.0
        ]
        if failed:
            detailed = _validate(
                batch,
                [expects[i] for i in failed],
                {
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": SAMPLE_ROWS,
                    "unexpected_index_column_names": [partition_field],
                },
                partition_field,
            )
            for i, outcome in zip(failed, detailed, strict=True):
                outcomes[i] = outcome
        return outcomes
    finally:
        source.datasource.delete_asset(asset_name)


def _validate(
    batch: Any, expects: Sequence[Expect], result_format: dict[str, Any], partition_field: str = ""
) -> list[Outcome]:
    gx = _gx()
    suite = gx.ExpectationSuite(
        name="backfill chunk", expectations=[_to_gx(e, n) for n, e in enumerate(expects)]
    )
    report = batch.validate(suite, result_format=result_format)
    outcomes: list[Outcome | None] = [None] * len(expects)
    for result in report.results:
        n = int(result.expectation_config.meta["n"])
        error = _error(result.exception_info)
        if error is not None:
            outcomes[n] = Outcome(False, 0, 0, error=error)
        else:
            outcomes[n] = _outcome(result.success, result.result, partition_field)
    missing = [expects[n] for n, o in enumerate(outcomes) if o is None]
    if missing:
        raise WorkFailed(f"Great Expectations returned no result for {missing}")
    return [o for o in outcomes if o is not None]


def _error(info: Any) -> str | None:
    """The first error message in a result's `exception_info` (flat, or keyed by metric)."""
    if not info:
        return None
    candidates = info.values() if "raised_exception" not in info else [info]
    for entry in candidates:
        if isinstance(entry, dict) and entry.get("raised_exception", True):
            message = str(entry.get("exception_message") or "unknown error")
            return message.splitlines()[0]
    return None


def _outcome(success: bool, result: dict[str, Any], partition_field: str) -> Outcome:
    unexpected = int(result.get("unexpected_count") or 0)
    if success or not partition_field:
        return Outcome(bool(success), int(result.get("element_count") or 0), unexpected)
    # Column expectations list the sampled rows' index columns; compound-key uniqueness
    # cannot on SQL, but its sampled values hold the partition field when it is in the key.
    rows = result.get("partial_unexpected_index_list") or [
        v for v in result.get("partial_unexpected_list") or [] if isinstance(v, dict)
    ]
    found = {r.get(partition_field) for r in rows if isinstance(r, dict)}
    partitions = tuple(sorted(_iso(v) for v in found if v is not None))
    return Outcome(
        False,
        int(result.get("element_count") or 0),
        unexpected,
        partitions,
        all_partitions_named=bool(partitions) and len(rows) >= unexpected,
    )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _to_gx(e: Expect, n: int) -> Any:
    expectations = _gx().expectations
    meta = {"n": n}
    column = e.columns[0]
    if e.kind == "not_null":
        return expectations.ExpectColumnValuesToNotBeNull(column=column, mostly=e.mostly, meta=meta)
    if e.kind == "unique" and len(e.columns) > 1:
        return expectations.ExpectCompoundColumnsToBeUnique(
            column_list=list(e.columns), mostly=e.mostly, meta=meta
        )
    if e.kind == "unique":
        return expectations.ExpectColumnValuesToBeUnique(column=column, mostly=e.mostly, meta=meta)
    if e.kind == "between":
        return expectations.ExpectColumnValuesToBeBetween(
            column=column, min_value=e.min, max_value=e.max, mostly=e.mostly, meta=meta
        )
    return expectations.ExpectColumnValuesToBeInSet(
        column=column, value_set=list(e.values or ()), mostly=e.mostly, meta=meta
    )


# --- the context and the datasources -------------------------------------------------------

_asset_numbers = itertools.count(1)
_datasource_numbers = itertools.count(1)


@dataclass
class _Source:
    """A GX SQL datasource bound to one warehouse connection (and, on DuckDB, one schema)."""

    owner: object  # what the pooled connections were opened from; a new one means rebuild
    datasource: Any
    table_name: Callable[[str], str]  # how the datasource names a relation


_sources: dict[str, _Source] = {}
_context: Any = None


_import_thread: threading.Thread | None = None


def import_in_background() -> None:
    """Start importing Great Expectations on a thread, so the seconds its import takes
    overlap the first chunk's backup and build (DuckDB releases the GIL while it works).
    Call it once dbt is imported: two threads importing the same modules could deadlock."""
    global _import_thread
    if _import_thread is None and "great_expectations" not in sys.modules:
        _import_thread = threading.Thread(target=_import_gx, name="import-gx", daemon=True)
        _import_thread.start()


def _import_gx() -> None:
    with contextlib.suppress(Exception):  # the import on first use raises it properly
        import great_expectations  # noqa: F401


def _gx() -> Any:
    if _import_thread is not None:
        _import_thread.join()
    import great_expectations as gx

    return gx


def _get_context() -> Any:
    """The process's ephemeral GX context: in memory only, no progress bars, no analytics."""
    global _context
    if _context is None:
        gx = _gx()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        _context = gx.get_context(mode="ephemeral", project_config=config)
    return _context


def _source_for(wh: Warehouse, relation: str) -> _Source:
    """The cached GX datasource for how `wh` reaches `relation` (one per warehouse
    connection and, where the warehouse says so, per schema)."""
    source_spec = wh.sqlalchemy_source(relation)
    cached = _sources.get(source_spec.key)
    if cached is not None and cached.owner is source_spec.owner:
        return cached
    for stale in [k for k, s in _sources.items() if s.owner is not source_spec.owner]:
        _drop(_sources.pop(stale))
    datasource = _get_context().data_sources.add_sql(
        f"{_safe(wh.name)}_{next(_datasource_numbers)}",
        connection_string=source_spec.url,
        kwargs=source_spec.engine_kwargs,
    )
    source = _Source(source_spec.owner, datasource, source_spec.table_name)
    _sources[source_spec.key] = source
    return source


def _drop(source: _Source) -> None:
    """Close a stale datasource's pooled connections (GX keeps its engines in private
    attributes) and forget it."""
    for attr in ("_engine", "_execution_engine"):
        engine = getattr(source.datasource, attr, None)
        engine = getattr(engine, "engine", engine)
        if engine is not None:
            # Its connections may be closed already (the warehouse closed), which is the goal.
            with contextlib.suppress(Exception):
                engine.dispose()
    _get_context().data_sources.delete(source.datasource.name)


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name)
