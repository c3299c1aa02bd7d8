"""Validation of a staged chunk before it may be published.

Default checks for every backfillable model: rows inside the chunk's range, partition
key and primary key not null, primary key unique, row count per partition within a
tolerance of the current partition (skipped where the partition is empty now), null
rate per column not above the current one by more than a margin; plus the value
ranges and accepted values of `meta.backfill.checks`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from orchestrator.policy import BackfillPolicy
from orchestrator.warehouse.base import Warehouse, quote_literal


@dataclass(frozen=True)
class CheckResult:
    check: str
    partition: str  # an ISO date, or "all"
    observed: str
    expected: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_chunk(
    wh: Warehouse,
    staging: str,
    production: str,
    policy: BackfillPolicy,
    start: date,
    end: date,
) -> list[CheckResult]:
    """Every check's result (passed or not), in a stable order."""
    pf = policy.partition_field
    key = ", ".join(policy.unique_key)
    params = {"start": start, "end": end}
    results: list[CheckResult] = []

    outside = _scalar(
        wh,
        f"select count(*) from {staging} where not ({pf} between $start and $end) or {pf} is null",
        params,
    )
    results.append(
        CheckResult("rows inside the chunk range", "all", str(outside), "0", outside == 0)
    )

    for column in policy.unique_key:
        nulls = _scalar(wh, f"select count(*) from {staging} where {column} is null")
        results.append(CheckResult(f"{column} not null", "all", str(nulls), "0", nulls == 0))

    dupes = _scalar(
        wh, f"select count(*) from (select {key} from {staging} group by {key} having count(*) > 1)"
    )
    results.append(CheckResult(f"({key}) unique", "all", str(dupes), "0", dupes == 0))

    new_counts = dict(wh.query(f"select {pf}, count(*) from {staging} group by 1"))
    old_counts = dict(
        wh.query(
            f"select {pf}, count(*) from {production} "
            f"where {pf} between $start and $end group by 1",
            params,
        )
    )
    tolerance = policy.row_count_tolerance
    for partition in sorted(old_counts):
        old, new = int(old_counts[partition]), int(new_counts.get(partition, 0))
        low, high = old * (1 - tolerance), old * (1 + tolerance)
        results.append(
            CheckResult(
                "row count within tolerance",
                partition.isoformat(),
                str(new),
                f"{low:.0f}..{high:.0f} (now {old}, ±{tolerance:.0%})",
                low <= new <= high,
            )
        )

    results += _null_rates(wh, staging, production, pf, policy.null_rate_margin, params)

    for check in policy.checks:
        if check.min is not None or check.max is not None:
            conds = []
            if check.min is not None:
                conds.append(f"{check.column} < {float(check.min)}")
            if check.max is not None:
                conds.append(f"{check.column} > {float(check.max)}")
            bad = _scalar(wh, f"select count(*) from {staging} where {' or '.join(conds)}")
            results.append(
                CheckResult(
                    f"{check.column} between {check.min} and {check.max}",
                    "all",
                    f"{bad} rows outside",
                    "0 rows outside",
                    bad == 0,
                )
            )
        if check.accepted_values is not None:
            values = ", ".join(quote_literal(v) for v in check.accepted_values)
            bad = _scalar(
                wh,
                f"select count(*) from {staging} where {check.column} is not null "
                f"and cast({check.column} as varchar) not in ({values})",
            )
            results.append(
                CheckResult(
                    f"{check.column} in accepted values",
                    "all",
                    f"{bad} rows not accepted",
                    f"only {list(check.accepted_values)}",
                    bad == 0,
                )
            )
    return results


def _null_rates(
    wh: Warehouse, staging: str, production: str, pf: str, margin: float, params: dict[str, Any]
) -> list[CheckResult]:
    columns = wh.columns(staging)
    if not columns:
        return []
    rate_sql = ", ".join(f"avg(case when {c} is null then 1.0 else 0.0 end)" for c in columns)
    new = wh.query(f"select count(*), {rate_sql} from {staging}")[0]
    old = wh.query(
        f"select count(*), {rate_sql} from {production} where {pf} between $start and $end", params
    )[0]
    if not new[0] or not old[0]:
        return []
    results = []
    for i, column in enumerate(columns, start=1):
        new_rate, old_rate = float(new[i] or 0), float(old[i] or 0)
        results.append(
            CheckResult(
                f"{column} null rate",
                "all",
                f"{new_rate:.2%}",
                f"<= {old_rate + margin:.2%} (now {old_rate:.2%} + {margin:.0%})",
                new_rate <= old_rate + margin + 1e-12,
            )
        )
    return results


def _scalar(wh: Warehouse, sql: str, params: dict[str, Any] | None = None) -> int:
    return int(wh.query(sql, params)[0][0])
