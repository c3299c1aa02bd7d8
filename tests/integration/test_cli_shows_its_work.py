"""The CLI shows its work: `status` tells the whole story of a backfill, a run without a
terminal logs one line per chunk step, and an unknown model is bad input everywhere."""

from __future__ import annotations

import re
from pathlib import Path

from support import approved, backfill, correct_a_fare


def test_a_run_without_a_terminal_logs_one_line_per_chunk_step(warehouse: Path) -> None:
    correct_a_fare(warehouse, "2024-01-12")
    plan_id = approved(
        warehouse, "fct_trips", "2024-01-10", "2024-01-13", "--chunk-days", "2",
        "--reason", "fare fix",
    )  # fmt: skip

    run = backfill("run", plan_id, "--execute")  # CliRunner: stderr is no terminal

    assert run.exit_code == 0, run.stderr
    steps = [line for line in run.stderr.splitlines() if line.startswith("fct_trips chunk")]
    expected_steps = ["measure", "backup", "stage", "validate", "publish", "cleanup"]
    for n, (start, end) in enumerate([("10", "11"), ("12", "13")], start=1):
        lines = [s for s in steps if s.startswith(f"fct_trips chunk {n}/2 ")]
        assert [re.sub(r" [0-9.]+s$", "", s).rsplit(" ", 1)[-1] for s in lines] == expected_steps
        assert all(f"2024-01-{start}..2024-01-{end}: " in s for s in lines)
        assert all(re.search(r" [0-9]+\.[0-9]{2}s$", s) for s in lines)

    status = backfill("status", plan_id)
    assert status.exit_code == 0
    text = status.stdout.splitlines()
    assert text[1] == "reason: fare fix (category other)"
    assert re.fullmatch(r"started \S+ \S+ UTC, ended \S+ \S+ UTC, [0-9.]+s", text[2]), text[2]
    chunk_rows = [line.split() for line in text if re.match(r"^[12] +fct_trips ", line)]
    assert [row[-1] for row in chunk_rows] == ["-", "2024-01-12"]  # only the corrected day
    assert re.search(r"^validation: [0-9]+ checks, 0 failed$", status.stdout, re.M)
    as_json = backfill("status", plan_id, "--json").json()
    assert [c["changed_partitions"] for c in as_json["chunks"]] == [[], ["2024-01-12"]]
    assert as_json["validation"] and all(c["passed"] for c in as_json["validation"])
    assert as_json["duration_seconds"] > 0


def test_status_lists_failed_checks_first(warehouse: Path) -> None:
    from tests.integration.test_validation_catches_corruption import negative_distances

    plan_id = approved(warehouse, "fct_trips", "2024-01-10", "2024-01-20", "--chunk-days", "11")
    negative_distances(warehouse)
    assert backfill("run", plan_id, "--execute").exit_code == 1
    checks = backfill("status", plan_id, "--json").json()["validation"]
    outcomes = [c["passed"] for c in checks]
    assert outcomes == sorted(outcomes)  # False (failed) before True
    assert checks[0]["check"] == "distance_miles stays non-negative"


def test_history_of_an_unknown_model_is_bad_input(warehouse: Path) -> None:
    result = backfill("history", "--model", "nope")
    assert (result.exit_code, result.stderr) == (2, "Error: unknown model 'nope'\n")
