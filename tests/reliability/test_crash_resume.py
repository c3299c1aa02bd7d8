"""A backfill killed anywhere resumes to exactly the clean result, and no reader ever sees
a half-published chunk (tests/reliability/crash_harness.py runs and checks each trial)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import crash_harness
import pytest

from orchestrator.faults import PARTITION_COPY_POINTS, POINTS

TRIALS = crash_harness.standard_trials()


@pytest.mark.parametrize("trial", TRIALS, ids=[t.name for t in TRIALS])
def test_a_killed_backfill_resumes_to_the_clean_result(
    crash_scenario: crash_harness.Scenario, trial: crash_harness.Trial, tmp_path: Path
) -> None:
    result = crash_harness.run_trial(crash_scenario, trial, tmp_path)
    assert result.problems == [], result.report()


def test_every_fault_point_in_wap_is_known_to_the_fault_injector() -> None:
    """The trials here cover POINTS; the partition-copy points (reached only by a model
    that opts in) are killed at in tests/integration/test_partition_copy_publish.py."""
    source = (crash_harness.REPO / "orchestrator" / "wap.py").read_text()
    called = [
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "fault_point"
        and isinstance(node.args[0], ast.Constant)
    ]
    assert sorted(called) == sorted(POINTS + PARTITION_COPY_POINTS)


def test_the_trials_kill_at_every_fault_point_of_every_chunk() -> None:
    sigkills = Counter(
        (k.point, k.nth) for t in TRIALS for k in t.phases if k.how == "fault" and not k.fresh
    )
    assert set(sigkills) == {(p, n) for p in POINTS for n in (1, 2, 3)}
    assert {k.point for t in TRIALS for k in t.phases if k.how == "raise"} == set(POINTS)
    assert len(TRIALS) >= 50
    assert sum(t.real_kills for t in TRIALS) >= 45
