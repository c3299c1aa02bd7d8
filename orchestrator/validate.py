"""Validation of a staged chunk before it may be published.

Default checks for every backfillable model: rows inside the chunk's range, partition
key and primary key not null, primary key unique (one column or a compound key), row
count per partition within a tolerance of the current partition (skipped where the
partition is empty now), null rate per column not above the current one by more than a
margin; plus the value ranges and accepted values of `meta.backfill.checks`; plus the
model's own dbt data tests (as dbt compiled them, aimed at the staged relation instead of
production: a test failing on the chunk's rows fails the chunk, unless its severity is warn).

The row-level checks (not null, unique, ranges, accepted values, null rates) are Great
Expectations expectations, run as one suite on the staged table by `orchestrator.gx_suite`
(which imports GX lazily). Plain SQL keeps two cheap aggregates: the per-partition row
counts compared with production (GX would need one batch and one validation per partition,
dozens per chunk, for what one `group by` on each side answers) and the current null rates
of the production range, which are no check but the baseline that sets each null-rate
expectation's `mostly`; both come from one grouped query over production.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from orchestrator.gx_suite import Expect, Outcome, run_suite
from orchestrator.manifest import CompiledDataTest
from orchestrator.policy import BackfillPolicy
from orchestrator.warehouse.base import Warehouse

# Values a column needs on both sides before its p50 and p99 are compared (the mean always is).
MIN_VALUES_FOR_QUANTILES = 500
# Slack on a null-rate bound so a rate exactly at the bound passes despite float rounding.
_RATE_SLACK = 1e-9


@dataclass(frozen=True)
class CheckResult:
    check: str
    # An ISO date, or "all". A failed row check names the partitions of its failing rows
    # instead, joined by ", " (ending in ", …" when GX's sample did not hold them all).
    partition: str
    observed: str
    expected: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Planned:
    """One GX expectation and how its outcome reads as a check.

    `observed` is a template over the outcome: `{unexpected}` rows, `{share}` of rows.
    """

    check: str
    expect: Expect
    observed: str
    expected: str

    def result(self, outcome: Outcome) -> CheckResult:
        if outcome.error is not None:
            observed = f"could not evaluate: {outcome.error}"
            return CheckResult(self.check, "all", observed, self.expected, False)
        partition = ", ".join(outcome.partitions) or "all"
        if outcome.partitions and not outcome.all_partitions_named:
            partition += ", …"
        observed = self.observed.format(
            unexpected=outcome.unexpected, share=outcome.unexpected_share
        )
        return CheckResult(self.check, partition, observed, self.expected, outcome.success)


def validate_chunk(
    wh: Warehouse,
    staging: str,
    production: str,
    policy: BackfillPolicy,
    start: date,
    end: date,
    data_tests: Sequence[CompiledDataTest] = (),
    relation_name: str = "",
) -> list[CheckResult]:
    """Every check's result (passed or not), in a stable order.

    GX reads `staging` through connections other than `wh`'s own, so it must be committed
    (it is: `run_chunk` creates it outside any transaction).
    """
    pf = policy.partition_field
    strict = list(dict.fromkeys((pf, *policy.unique_key)))  # never null
    production_columns = wh.columns(production)  # none: the table is new
    old_rows, old_nulls = _production_baseline(
        wh, staging, production, production_columns, pf, start, end
    )

    planned = [
        _Planned(
            "rows inside the chunk range",
            Expect("between", (pf,), min=start, max=end),
            "{unexpected} rows outside",
            f"0 rows outside {start}..{end}",
        ),
        *(
            _Planned(f"{c} not null", Expect("not_null", (c,)), "{unexpected} null", "0 null")
            for c in strict
        ),
        _Planned(
            f"({', '.join(policy.unique_key)}) unique",
            Expect("unique", policy.unique_key),
            "{unexpected} rows share a key",
            "0 rows share a key",
        ),
    ]
    margin = policy.null_rate_margin
    for column, old_rate in _null_rates(old_rows, old_nulls, strict).items():
        bound = old_rate + margin
        planned.append(
            _Planned(
                f"{column} null rate",
                Expect("not_null", (column,), mostly=max(0.0, 1.0 - bound - _RATE_SLACK)),
                "{share:.2%}",
                f"<= {bound:.2%} (now {old_rate:.2%} + {margin:.0%})",
            )
        )
    for check in policy.checks:
        if check.min is not None or check.max is not None:
            low = None if check.min is None else float(check.min)
            high = None if check.max is None else float(check.max)
            planned.append(
                _Planned(
                    _range_name(check.column, check.min, check.max),
                    Expect("between", (check.column,), min=low, max=high),
                    "{unexpected} rows outside",
                    "0 rows outside",
                )
            )
        if check.accepted_values is not None:
            planned.append(
                _Planned(
                    f"{check.column} in accepted values",
                    Expect("in_set", (check.column,), values=check.accepted_values),
                    "{unexpected} rows not accepted",
                    f"only {list(check.accepted_values)}",
                )
            )

    outcomes = run_suite(wh, staging, [p.expect for p in planned], pf)
    results = [p.result(o) for p, o in zip(planned, outcomes, strict=True)]
    # The row counts follow the key checks: one result per partition that has rows now.
    after_keys = 2 + len(strict)
    results[after_keys:after_keys] = _row_counts(
        wh, staging, pf, policy.row_count_tolerance, old_rows
    )
    results += [
        _unique_across_table(wh, staging, production, bool(production_columns), policy, start, end)
    ]
    results += _against_production(wh, staging, production, policy, strict, start, end)
    return results + [_data_test(wh, staging, relation_name, t) for t in data_tests]


def _unique_across_table(
    wh: Warehouse,
    staging: str,
    production: str,
    production_exists: bool,
    policy: BackfillPolicy,
    start: date,
    end: date,
) -> CheckResult:
    """Staged keys that production also holds outside the chunk's range: after the publish
    they would be duplicates (a trip re-delivered on a later day lands in two partitions)."""
    keys, pf = policy.unique_key, policy.partition_field
    check = f"({', '.join(keys)}) unique across the table"
    if not production_exists:
        return CheckResult(check, "all", "0 keys (the table is new)", "0 keys", True)
    rows = wh.query(
        f"select p.{pf}, count(*) from (select distinct {', '.join(keys)} from {staging}) s "
        f"join {production} p on {' and '.join(f's.{k} = p.{k}' for k in keys)} "
        f"where p.{pf} < $start or p.{pf} > $end group by 1 order by 1",
        {"start": start, "end": end},
    )
    found = sum(int(r[1]) for r in rows)
    where = ", ".join(r[0].isoformat() for r in rows) or "all"
    observed = f"{found} keys also in partitions outside {start}..{end}"
    return CheckResult(check, where, observed, "0 keys", found == 0)


def _against_production(
    wh: Warehouse,
    staging: str,
    production: str,
    policy: BackfillPolicy,
    strict: list[str],
    start: date,
    end: date,
) -> list[CheckResult]:
    """Checks derived from what production holds around the chunk: a column without nulls
    keeps none, a column without negatives gains none, and a number's mean, p50 and p99
    stay within a factor of production's. The baseline is the production partitions the
    chunk replaces plus as many days on each side (its neighbours)."""
    span = timedelta(days=(end - start).days + 1)
    low, high = start - span, end + span
    baseline = wh.profile(production, policy.partition_field, low, high)  # {}: no table
    if not baseline or next(iter(baseline.values())).rows == 0:
        return []  # nothing to compare with: a new table or a range with no neighbours
    staged = wh.profile(staging, policy.partition_field, start, end)
    overrides = {c.column: c for c in policy.checks}
    window = f"production {low}..{high}"
    results = []
    for column, now in staged.items():
        before = baseline.get(column)
        if before is None or column in strict:
            continue
        override = overrides.get(column)
        if before.nulls == 0 and not (override and override.allow_nulls):
            results.append(
                CheckResult(
                    f"{column} stays not null",
                    "all",
                    f"{now.nulls} null",
                    f"0 null (none in {window})",
                    now.nulls == 0,
                )
            )
        if not (now.numeric and before.numeric):
            continue
        if before.negatives == 0 and not (override and override.allow_negative):
            results.append(
                CheckResult(
                    f"{column} stays non-negative",
                    "all",
                    f"{now.negatives} negative",
                    f"0 negative (none in {window})",
                    now.negatives == 0,
                )
            )
        tolerance = policy.distribution_tolerance
        if override and override.distribution_tolerance is not None:
            tolerance = override.distribution_tolerance
        # A quantile of a few hundred values (one day of a small model) jumps between
        # neighbouring values: bound quantiles only where both sides have enough of them.
        enough = min(now.rows - now.nulls, before.rows - before.nulls) >= MIN_VALUES_FOR_QUANTILES
        for stat in ("mean", "p50", "p99") if enough else ("mean",):
            results += _drift(
                column, stat, getattr(now, stat), getattr(before, stat), tolerance, window
            )
    return results


def _drift(
    column: str, stat: str, now: float | None, before: float | None, tolerance: float, window: str
) -> list[CheckResult]:
    """`now` within a factor (1 + tolerance) of `before`, on either side (same sign)."""
    if now is None or before is None:
        return []
    factor = 1 + tolerance
    if before == 0:
        passed = now == 0
    else:
        ratio = now / before
        passed = 1 / factor - _RATE_SLACK <= ratio <= factor + _RATE_SLACK
    return [
        CheckResult(
            f"{column} {stat} within x{factor:g} of production",
            "all",
            f"{now:.6g} (production {before:.6g})",
            f"{before / factor:.6g}..{before * factor:.6g} ({window})",
            passed,
        )
    ]


def _data_test(
    wh: Warehouse, staging: str, relation_name: str, test: CompiledDataTest
) -> CheckResult:
    """Run one dbt data test on the staged rows: the number of rows it returns must be 0."""
    check, expected = f"dbt test {test.name}", "0 failing rows"
    sql = _aimed_at(test.sql, relation_name, staging)
    if sql is None:
        observed = "could not evaluate: the compiled test does not read the model's relation"
        return CheckResult(check, "all", observed, expected, False)
    try:
        failing = int(wh.query(f"select count(*) from ({sql}) as dbt_test")[0][0])
    except Exception as exc:  # a test that cannot run on the staged rows fails the chunk
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return CheckResult(check, "all", f"could not evaluate: {first}", expected, False)
    warn_only = test.severity.upper() == "WARN"
    observed = f"{failing} failing rows" + (" (severity warn)" if failing and warn_only else "")
    return CheckResult(check, "all", observed, expected, failing == 0 or warn_only)


def _aimed_at(sql: str, relation_name: str, staging: str) -> str | None:
    """The test's SQL reading `staging` where it read the model: dbt renders the model as
    its full relation name, or without the database where that is the default (DuckDB)."""
    if not relation_name:
        return None
    renderings = [relation_name]
    parts = relation_name.split(".")
    if len(parts) == 3:
        renderings.append(".".join(parts[1:]))
    for rendering in renderings:
        if rendering in sql:
            return sql.replace(rendering, staging)
    return None


def _range_name(column: str, low: float | None, high: float | None) -> str:
    if low is None:
        return f"{column} <= {high}"
    if high is None:
        return f"{column} >= {low}"
    return f"{column} between {low} and {high}"


def _production_baseline(
    wh: Warehouse,
    staging: str,
    production: str,
    production_columns: list[str],
    pf: str,
    start: date,
    end: date,
) -> tuple[dict[date, int], dict[str, int]]:
    """Rows per current partition of [start, end], and null counts per column shared with
    staging, in one grouped query over the production range."""
    if not production_columns:
        return {}, {}
    shared = [c for c in wh.columns(staging) if c in set(production_columns)]
    nulls = "".join(f", count(*) - count({c})" for c in shared)
    rows = wh.query(
        f"select {pf}, count(*){nulls} from {production} "
        f"where {pf} between $start and $end group by 1",
        {"start": start, "end": end},
    )
    counts = {row[0]: int(row[1]) for row in rows}
    null_counts = {c: sum(int(row[i]) for row in rows) for i, c in enumerate(shared, start=2)}
    return counts, null_counts


def _null_rates(
    old_rows: dict[date, int], old_nulls: dict[str, int], strict: list[str]
) -> dict[str, float]:
    """Current null rate per column; none when the range is empty now. Columns that must
    never be null have their own not-null check instead."""
    total = sum(old_rows.values())
    if not total:
        return {}
    return {c: n / total for c, n in old_nulls.items() if c not in strict}


def _row_counts(
    wh: Warehouse, staging: str, pf: str, tolerance: float, old_rows: dict[date, int]
) -> list[CheckResult]:
    if not old_rows:
        return []
    new_rows = dict(wh.query(f"select {pf}, count(*) from {staging} group by 1"))
    results = []
    for partition in sorted(old_rows):
        old, new = old_rows[partition], int(new_rows.get(partition, 0))
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
    return results
