"""Validation of a staged chunk with Great Expectations, on real DuckDB files.

Each test builds a small production table and a staging copy with SQL, breaks the
staging copy in one way, and checks that exactly the matching check fails, naming the
partition, the observed value and the expected one. A clean copy passing every check,
with the real null rates GX read, also guards the duckdb-engine workaround in
`orchestrator.gx_suite` (GX issue #11579): without it every expectation fails.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from orchestrator.gx_suite import Expect, run_suite
from orchestrator.policy import BackfillPolicy, Check
from orchestrator.validate import CheckResult, validate_chunk
from orchestrator.warehouse.duckdb import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = "marts.driver_daily"
STAGING = "backfill_staging.driver_daily__b1__c001"
START, END = date(2024, 1, 1), date(2024, 1, 3)
POLICY = BackfillPolicy(
    partition_field="earning_date",
    unique_key=("driver_id", "earning_date"),
    checks=(
        Check("gross_fare", min=0, max=20000),
        Check("tier", accepted_values=("gold", "silver")),
    ),
    row_count_tolerance=0.5,
    null_rate_margin=0.05,
)
# Four drivers a day for three days; driver d4 never tips, so tip_total is 25% null.
PRODUCTION_ROWS = """
    select 'r' || (d * 10 + n) as row_id,
           'd' || n as driver_id,
           date '2024-01-01' + d::integer as earning_date,
           100.0 * n as gross_fare,
           case when n % 2 = 0 then 'gold' else 'silver' end as tier,
           case when n = 4 then null else 5.0 * n end as tip_total
    from range(3) as days(d), range(1, 5) as drivers(n)
"""


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    """A warehouse file with production rows and a clean staged copy of the chunk."""
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.execute("create schema marts; create schema backfill_staging")
    warehouse.execute(f"create table {PRODUCTION} as {PRODUCTION_ROWS}")
    warehouse.execute(f"create table {STAGING} as select * from {PRODUCTION}")
    yield warehouse
    warehouse.close()


def validate(wh: DuckDBWarehouse, policy: BackfillPolicy = POLICY) -> list[CheckResult]:
    return validate_chunk(wh, STAGING, PRODUCTION, policy, START, END)


def failures(wh: DuckDBWarehouse, policy: BackfillPolicy = POLICY) -> list[CheckResult]:
    return [r for r in validate(wh, policy) if not r.passed]


def failed(check: str, partition: str, observed: str, expected: str) -> CheckResult:
    return CheckResult(check, partition, observed, expected, passed=False)


def test_clean_staging_passes_every_check(
    wh: DuckDBWarehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    results = validate(wh)

    assert [(r.check, r.partition, r.observed, r.passed) for r in results] == [
        ("rows inside the chunk range", "all", "0 rows outside", True),
        ("earning_date not null", "all", "0 null", True),
        ("driver_id not null", "all", "0 null", True),
        ("(driver_id, earning_date) unique", "all", "0 rows share a key", True),
        ("row count within tolerance", "2024-01-01", "4", True),
        ("row count within tolerance", "2024-01-02", "4", True),
        ("row count within tolerance", "2024-01-03", "4", True),
        ("row_id null rate", "all", "0.00%", True),
        ("gross_fare null rate", "all", "0.00%", True),
        ("tier null rate", "all", "0.00%", True),
        ("tip_total null rate", "all", "25.00%", True),  # a real metric, read through GX
        ("gross_fare between 0 and 20000", "all", "0 rows outside", True),
        ("tier in accepted values", "all", "0 rows not accepted", True),
        (
            "(driver_id, earning_date) unique across the table",
            "all",
            "0 keys also in partitions outside 2024-01-01..2024-01-03",
            True,
        ),
        ("row_id stays not null", "all", "0 null", True),
        ("gross_fare stays not null", "all", "0 null", True),
        ("gross_fare stays non-negative", "all", "0 negative", True),
        ("gross_fare mean within x2 of production", "all", "250 (production 250)", True),
        ("tier stays not null", "all", "0 null", True),
        # tip_total has nulls in production: its null rate has the check above instead.
        ("tip_total stays non-negative", "all", "0 negative", True),
        ("tip_total mean within x2 of production", "all", "10 (production 10)", True),
    ]
    assert results[4].expected == "2..6 (now 4, ±50%)"
    # The baseline is the replaced partitions and as many days on each side; with a dozen
    # values, quantiles are not compared (MIN_VALUES_FOR_QUANTILES), the mean is.
    assert results[17].expected == "125..500 (production 2023-12-29..2024-01-06)"
    assert list(cwd.iterdir()) == []  # the GX context is ephemeral


def test_gx_reads_real_metrics_through_the_warehouse_connection(wh: DuckDBWarehouse) -> None:
    """The workaround for GX issue #11579: a passing expectation passes with the real row
    count and a violated one fails with the exact number of failing rows."""
    passing, violated = run_suite(
        wh,
        STAGING,
        [Expect("not_null", ("driver_id",)), Expect("not_null", ("tip_total",))],
        "earning_date",
    )

    assert (passing.success, passing.rows, passing.unexpected, passing.error) == (
        True,
        12,
        0,
        None,
    )
    assert (violated.success, violated.rows, violated.unexpected, violated.error) == (
        False,
        12,
        3,
        None,
    )
    assert violated.partitions == ("2024-01-01", "2024-01-02", "2024-01-03")


def test_a_null_key_fails_the_not_null_check(wh: DuckDBWarehouse) -> None:
    wh.execute(
        f"update {STAGING} set driver_id = null "
        "where driver_id = 'd1' and earning_date = '2024-01-02'"
    )

    assert failures(wh) == [failed("driver_id not null", "2024-01-02", "1 null", "0 null")]


def test_a_duplicate_compound_key_fails_uniqueness(wh: DuckDBWarehouse) -> None:
    wh.execute(
        f"update {STAGING} set driver_id = 'd1' "
        "where driver_id = 'd2' and earning_date = '2024-01-03'"
    )

    assert failures(wh) == [
        failed(
            "(driver_id, earning_date) unique",
            "2024-01-03",
            "2 rows share a key",
            "0 rows share a key",
        )
    ]


def test_a_duplicate_single_key_names_both_partitions(wh: DuckDBWarehouse) -> None:
    policy = BackfillPolicy(partition_field="earning_date", unique_key=("row_id",))
    wh.execute(f"update {STAGING} set row_id = 'r1' where row_id = 'r11'")  # 01-02 copies 01-01

    assert failures(wh, policy) == [
        failed(
            "(row_id) unique", "2024-01-01, 2024-01-02", "2 rows share a key", "0 rows share a key"
        )
    ]


def test_a_row_count_out_of_tolerance_fails_its_partition(wh: DuckDBWarehouse) -> None:
    wh.execute(
        f"insert into {STAGING} select 'x' || n, 'd' || n, date '2024-01-02', 1.0, 'gold', 1.0 "
        "from range(5, 9) as drivers(n)"
    )

    assert failures(wh) == [
        failed("row count within tolerance", "2024-01-02", "8", "2..6 (now 4, ±50%)")
    ]


def test_a_partition_empty_now_has_no_row_count_check(wh: DuckDBWarehouse) -> None:
    wh.execute(
        f"insert into {STAGING} select 'x' || n, 'd' || n, date '2024-01-04', 1.0, 'gold', 1.0 "
        "from range(1, 9) as drivers(n)"
    )

    # Fares of 1.0 beside production's 100-400 would (rightly) fail the drift bound, which
    # is not what this test is about.
    policy = replace(POLICY, distribution_tolerance=1000.0)
    results = validate_chunk(wh, STAGING, PRODUCTION, policy, START, date(2024, 1, 4))

    assert [r for r in results if not r.passed] == []
    row_counts = [r.partition for r in results if r.check == "row count within tolerance"]
    assert row_counts == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_an_empty_production_range_skips_row_counts_and_null_rates(
    wh: DuckDBWarehouse,
) -> None:
    wh.execute(f"delete from {PRODUCTION}")

    results = validate(wh)

    assert all(r.passed for r in results)
    assert [r.check for r in results] == [
        "rows inside the chunk range",
        "earning_date not null",
        "driver_id not null",
        "(driver_id, earning_date) unique",
        "gross_fare between 0 and 20000",
        "tier in accepted values",
        "(driver_id, earning_date) unique across the table",
    ]


def test_a_null_rate_jump_fails_the_null_rate_check(wh: DuckDBWarehouse) -> None:
    wh.execute(f"update {STAGING} set tip_total = null where earning_date = '2024-01-01'")

    assert failures(wh) == [
        failed("tip_total null rate", "all", "50.00%", "<= 30.00% (now 25.00% + 5%)")
    ]


def test_a_null_rate_at_the_margin_passes(wh: DuckDBWarehouse) -> None:
    policy = BackfillPolicy(
        partition_field="earning_date",
        unique_key=("driver_id", "earning_date"),
        null_rate_margin=0.25,
    )
    wh.execute(f"update {STAGING} set tip_total = null where earning_date = '2024-01-01'")

    assert failures(wh, policy) == []


def test_a_value_out_of_range_fails_the_range_check(wh: DuckDBWarehouse) -> None:
    wh.execute(f"update {STAGING} set gross_fare = 25000 where row_id = 'r12'")

    window = "(production 2023-12-29..2024-01-06)"
    assert failures(wh) == [
        failed("gross_fare between 0 and 20000", "2024-01-02", "1 rows outside", "0 rows outside"),
        failed(
            "gross_fare mean within x2 of production",
            "all",
            "2316.67 (production 250)",
            f"125..500 {window}",
        ),
    ]


def test_a_value_not_accepted_fails_the_accepted_values_check(wh: DuckDBWarehouse) -> None:
    wh.execute(f"update {STAGING} set tier = 'platinum' where row_id = 'r23'")

    assert failures(wh) == [
        failed(
            "tier in accepted values",
            "2024-01-03",
            "1 rows not accepted",
            "only ['gold', 'silver']",
        )
    ]


def test_a_row_outside_the_chunk_fails_the_range_check(wh: DuckDBWarehouse) -> None:
    wh.execute(f"insert into {STAGING} values ('x1', 'd9', date '2024-01-05', 1.0, 'gold', 1.0)")

    assert failures(wh) == [
        failed(
            "rows inside the chunk range",
            "2024-01-05",
            "1 rows outside",
            "0 rows outside 2024-01-01..2024-01-03",
        )
    ]


def test_a_check_on_a_missing_column_fails_instead_of_crashing(wh: DuckDBWarehouse) -> None:
    policy = BackfillPolicy(
        partition_field="earning_date",
        unique_key=("driver_id", "earning_date"),
        checks=(Check("no_such_column", min=0),),
    )

    [failure] = failures(wh, policy)

    assert (failure.check, failure.partition) == ("no_such_column >= 0", "all")
    assert failure.observed.startswith("could not evaluate: ")
    assert "no_such_column" in failure.observed


def test_closing_the_warehouse_releases_the_file_and_a_new_one_validates(
    wh: DuckDBWarehouse,
) -> None:
    assert failures(wh) == []
    wh.close()

    # Another process can take DuckDB's write lock: GX's connections closed with ours.
    probe = f"import duckdb; duckdb.connect({str(wh.path)!r}).execute('checkpoint')"
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)

    reopened = DuckDBWarehouse(wh.path)
    try:
        reopened.execute(f"update {STAGING} set tier = 'platinum' where row_id = 'r1'")
        assert [f.check for f in failures(reopened)] == ["tier in accepted values"]
    finally:
        reopened.close()


def test_importing_validation_does_not_import_great_expectations() -> None:
    code = (
        "import sys, orchestrator.cli, orchestrator.validate; "
        "assert 'great_expectations' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


# -- checks derived from production (issue 15's corruptions) ---------------------------------
WINDOW = "(none in production 2023-12-29..2024-01-06)"


def test_a_key_that_production_holds_outside_the_chunk_fails_uniqueness(
    wh: DuckDBWarehouse,
) -> None:
    """A row re-delivered later lands in another partition: unique inside the chunk, yet a
    duplicate of production once published."""
    policy = replace(POLICY, unique_key=("row_id",))
    wh.execute(f"update {PRODUCTION} set earning_date = '2024-01-05' where row_id = 'r12'")

    assert failures(wh, policy) == [
        failed(
            "(row_id) unique across the table",
            "2024-01-05",
            "1 keys also in partitions outside 2024-01-01..2024-01-03",
            "0 keys",
        )
    ]


def test_a_negative_value_where_production_has_none_fails(wh: DuckDBWarehouse) -> None:
    wh.execute(f"update {STAGING} set tip_total = -tip_total where row_id = 'r11'")

    assert failures(wh) == [
        failed("tip_total stays non-negative", "all", "1 negative", f"0 negative {WINDOW}")
    ]


def test_a_null_where_production_has_none_fails_whatever_the_margin(
    wh: DuckDBWarehouse,
) -> None:
    wh.execute(f"update {STAGING} set gross_fare = null where row_id = 'r11'")

    assert [f for f in failures(wh) if "stays not null" in f.check] == [
        failed("gross_fare stays not null", "all", "1 null", f"0 null {WINDOW}")
    ]


def test_values_scaled_a_hundredfold_fail_the_distribution_bound(wh: DuckDBWarehouse) -> None:
    wh.execute(f"update {STAGING} set tip_total = tip_total * 100 where tip_total <= 5")

    assert [f.check for f in failures(wh)] == ["tip_total mean within x2 of production"]


def test_quantiles_are_bounded_where_both_sides_have_enough_values(tmp_path: Path) -> None:
    """600 values a day: a tail scaled twentyfold moves the p99 far past its bound."""
    rows = (
        "select 'r' || (d * 1000 + n) as row_id, 'd' || n as driver_id, "
        "date '2024-01-01' + d::integer as earning_date, 100.0 + n % 50 as gross_fare, "
        "'gold' as tier, 1.0 as tip_total from range(3) as days(d), range(600) as drivers(n)"
    )
    warehouse = DuckDBWarehouse(tmp_path / "big.duckdb")
    try:
        warehouse.execute("create schema marts; create schema backfill_staging")
        warehouse.execute(f"create table {PRODUCTION} as {rows}")
        warehouse.execute(f"create table {STAGING} as select * from {PRODUCTION}")
        checks = [r.check for r in validate(warehouse)]
        assert "gross_fare p99 within x2 of production" in checks
        assert failures(warehouse) == []
        warehouse.execute(
            f"update {STAGING} set gross_fare = gross_fare * 20 where gross_fare >= 149"
        )
        assert [f.check for f in failures(warehouse)] == ["gross_fare p99 within x2 of production"]
    finally:
        warehouse.close()


def test_a_column_may_opt_out_of_the_checks_derived_from_production(
    wh: DuckDBWarehouse,
) -> None:
    policy = replace(
        POLICY,
        checks=(
            *POLICY.checks,
            Check("tip_total", allow_negative=True, distribution_tolerance=1000.0),
        ),
    )
    wh.execute(f"update {STAGING} set tip_total = -tip_total where row_id = 'r11'")
    wh.execute(f"update {STAGING} set tip_total = tip_total * 100 where tip_total >= 10")

    assert failures(wh) != []
    assert failures(wh, policy) == []
