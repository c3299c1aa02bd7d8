"""The pure planning rules: dates, ranges, chunks, names and the fingerprint."""

from __future__ import annotations

from datetime import date

import pytest

from orchestrator.errors import BadInput
from orchestrator.plan import (
    check_chunk_days,
    check_identifier,
    check_person,
    check_plan_id,
    check_reason,
    fingerprint,
    parse_date,
    split_chunks,
    validate_range,
)
from orchestrator.policy import BackfillPolicy, policy_from_meta

POLICY = BackfillPolicy(partition_field="trip_date", unique_key=("trip_id",), max_days=30)
TODAY = date(2024, 3, 1)
FULLWIDTH = "\uff12\uff10\uff12\uff14-01-01"  # digits that \\d matches but a date must not


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-1-1", "start date '2024-1-1' is not an ISO date (YYYY-MM-DD)"),
        ("", "start date '' is not an ISO date (YYYY-MM-DD)"),
        ("2024-02-30", "start date '2024-02-30' is not a valid calendar date"),
        ("2024-13-01", "start date '2024-13-01' is not a valid calendar date"),
        ("20240101", "start date '20240101' is not an ISO date (YYYY-MM-DD)"),
        ("2024-01-01T00:00", "start date '2024-01-01T00:00' is not an ISO date (YYYY-MM-DD)"),
        (FULLWIDTH, f"start date '{FULLWIDTH}' is not an ISO date (YYYY-MM-DD)"),
        ("2024-01-01\n", "start date '2024-01-01\\n' is not an ISO date (YYYY-MM-DD)"),
        ("2024-01-01\r", "start date '2024-01-01\\r' is not an ISO date (YYYY-MM-DD)"),
    ],
)
def test_malformed_dates_are_refused(text: str, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        parse_date(text, "start")
    assert str(exc.value) == message


def test_leap_day_is_a_date() -> None:
    assert parse_date("2024-02-29", "start") == date(2024, 2, 29)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2024-02-07", "2024-02-01", "start date 2024-02-07 is after end date 2024-02-01"),
        ("2024-02-01", "2024-03-02", "end date 2024-03-02 is in the future (today is 2024-03-01)"),
        (
            "2024-01-01",
            "2024-01-31",
            "range 2024-01-01..2024-01-31 covers 31 days; fct_trips allows at most 30 "
            "(meta.backfill.max_days)",
        ),
    ],
)
def test_range_rules(start: str, end: str, message: str) -> None:
    with pytest.raises(BadInput) as exc:
        validate_range("fct_trips", start, end, POLICY, TODAY)
    assert str(exc.value) == message


def test_a_range_ending_today_with_max_days_is_allowed() -> None:
    assert validate_range("fct_trips", "2024-01-31", "2024-02-29", POLICY, TODAY) == (
        date(2024, 1, 31),
        date(2024, 2, 29),
    )


def test_chunks_cover_the_range_exactly_once() -> None:
    chunks = split_chunks("fct_trips", date(2024, 1, 30), date(2024, 2, 10), 5)
    assert [(c.start, c.end) for c in chunks] == [
        (date(2024, 1, 30), date(2024, 2, 3)),
        (date(2024, 2, 4), date(2024, 2, 8)),
        (date(2024, 2, 9), date(2024, 2, 10)),
    ]
    assert [c.chunk_no for c in chunks] == [1, 2, 3]
    assert sum(c.days for c in chunks) == 12
    assert chunks[0].dbt_vars() == {"backfill_start": "2024-01-30", "backfill_end": "2024-02-03"}


@pytest.mark.parametrize("bad", [0, -3])
def test_chunk_days_must_be_positive(bad: int) -> None:
    with pytest.raises(BadInput, match=f"chunk days must be at least 1, not {bad}"):
        split_chunks("fct_trips", date(2024, 1, 1), date(2024, 1, 2), bad)
    with pytest.raises(BadInput, match=f"chunk days must be at least 1, not {bad}"):
        check_chunk_days(bad, 30)


def test_chunk_days_are_bounded_by_max_days() -> None:
    assert check_chunk_days(30, 30) == 30
    with pytest.raises(BadInput) as exc:
        check_chunk_days(10**20, 30)
    assert str(exc.value) == f"chunk days must be at most 30, not {10**20}"


def test_a_chunk_longer_than_the_range_is_the_range_not_an_overflow() -> None:
    for days in (3, 4, 10**20):
        chunks = split_chunks("fct_trips", date(2024, 2, 28), date(2024, 3, 1), days)
        assert [(c.start, c.end) for c in chunks] == [(date(2024, 2, 28), date(2024, 3, 1))]


@pytest.mark.parametrize(
    "name",
    ["fct_trips;", "fct'trips", "fct_trips --", "../fct_trips", "", "fct trips", "fçt_trips"],
)
def test_model_names_that_are_not_identifiers_are_refused(name: str) -> None:
    with pytest.raises(BadInput, match="is not a valid dbt model name"):
        check_identifier(name)


def test_versioned_model_names_are_identifiers() -> None:
    assert check_identifier("dim_drivers.v1") == "dim_drivers.v1"


@pytest.mark.parametrize("name", ["fct_trips\n", "dim_drivers.v1\n"])
def test_a_trailing_newline_is_no_part_of_a_name(name: str) -> None:
    """`$` matches before a final newline; the patterns are matched whole instead."""
    with pytest.raises(BadInput, match="is not a valid dbt model name"):
        check_identifier(name)
    with pytest.raises(BadInput, match="must be 1-64 characters"):
        check_person(name.replace(".", "_"), "approver")


@pytest.mark.parametrize(
    "plan_id", ["bf_123", "bf_0123456789ab; drop", "x" * 200, "bf_0123456789ab\n"]
)
def test_malformed_plan_ids_are_unknown(plan_id: str) -> None:
    with pytest.raises(BadInput, match="unknown plan"):
        check_plan_id(plan_id)


def test_reasons_are_one_bounded_line() -> None:
    assert check_reason("fare fix") == "fare fix"
    with pytest.raises(BadInput, match="reason is 501 characters; at most 500 are allowed"):
        check_reason("x" * 501)
    with pytest.raises(BadInput, match="reason must be one line of printable text"):
        check_reason("a\nb")


@pytest.mark.parametrize(
    "text",
    [
        "a\nb",
        "a\rb",
        "\x1b[31mred",
        "fix\x7f",  # DEL
        "\x9b2J",  # C1: CSI
        "a\x85b",  # C1: next line
        "fix \u202etxt.exe",  # right-to-left override
        "\u2066isolate\u2069",  # bidi isolates
        "zero\u200bwidth",  # a format character
        "line\u2028separator",
    ],
)
def test_reasons_refuse_every_character_that_is_not_printable(text: str) -> None:
    with pytest.raises(BadInput) as exc:
        check_reason(text, "comment")
    assert str(exc.value) == "comment must be one line of printable text"


def test_reasons_keep_printable_unicode_and_tabs() -> None:
    text = "Tarif korrigiert \u2013 \u00e9t\u00e9 \u6599\u91d1\tok \U0001f44d"
    assert check_reason(text) == text
    assert check_reason(None) == ""
    with pytest.raises(BadInput, match=r"^comment is 501 characters; at most 500 are allowed$"):
        check_reason("c" * 501, "comment")


def test_fingerprint_changes_with_every_input() -> None:
    chunks = split_chunks("fct_trips", date(2024, 1, 1), date(2024, 1, 10), 5)
    base = dict(
        model="fct_trips",
        start=date(2024, 1, 1),
        end=date(2024, 1, 10),
        chunks=chunks,
        compiled_sql=["select 1", "select 2"],
        project_hash="p",
        git_commit="c",
        dbt_vars={"backfill_start": "2024-01-01"},
    )
    reference = fingerprint(**base)  # type: ignore[arg-type]
    assert fingerprint(**base) == reference  # type: ignore[arg-type]
    for key, value in [
        ("compiled_sql", ["select 1", "select 3"]),
        ("project_hash", "q"),
        ("git_commit", "d"),
        ("dbt_vars", {"backfill_start": "2024-01-02"}),
        ("chunks", chunks[:1]),
        ("end", date(2024, 1, 11)),
    ]:
        assert fingerprint(**{**base, key: value}) != reference  # type: ignore[arg-type]


def test_policy_reads_meta_backfill() -> None:
    policy = policy_from_meta(
        "fct_trips",
        {
            "backfill": {
                "partition_field": "trip_date",
                "unique_key": "trip_id",
                "chunk_days": 7,
                "critical": True,
                "approvers": ["bob"],
                "checks": [{"column": "fare_amount", "min": 0, "max": 10}],
            }
        },
    )
    assert policy.unique_key == ("trip_id",)
    assert policy.chunk_days == 7
    assert policy.critical and policy.approvers == ("bob",)
    assert policy.checks[0].max == 10


def test_a_model_that_opts_out_says_why() -> None:
    with pytest.raises(BadInput) as exc:
        policy_from_meta("dim_x", {"backfill": {"enabled": False, "reason": "a view"}})
    assert (
        str(exc.value)
        == "model dim_x has no meta.backfill policy; it cannot be backfilled (a view)"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"publish": "copy"},
            "publish must be one of transaction, partition_copy, got 'copy'",
        ),
        (
            {"publish": "partition_copy", "partition_granularity": "month"},
            "publish: partition_copy needs partition_granularity: day",
        ),
    ],
)
def test_an_unknown_publish_mode_is_refused(extra: dict[str, str], message: str) -> None:
    meta = {"backfill": {"partition_field": "trip_date", "unique_key": "trip_id", **extra}}
    with pytest.raises(BadInput) as exc:
        policy_from_meta("fct_trips", meta)
    assert str(exc.value) == f"model fct_trips has an invalid meta.backfill block: {message}"


def test_publish_defaults_to_one_transaction_per_chunk() -> None:
    meta = {"backfill": {"partition_field": "trip_date", "unique_key": "trip_id"}}
    assert policy_from_meta("fct_trips", meta).publish == "transaction"
    meta["backfill"]["publish"] = "partition_copy"
    assert policy_from_meta("fct_trips", meta).publish == "partition_copy"
