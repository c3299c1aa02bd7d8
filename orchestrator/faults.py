"""Fault injection for crash tests: BACKFILL_FAULT=<point>[@<n>][:raise].

`BACKFILL_FAULT=after_backup@2` kills the process with SIGKILL the second time it reaches
that point, exactly as a machine failure would; a `:raise` suffix raises instead. Unset in
normal use, where fault_point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = (
    "after_started",
    "after_backup",
    "after_stage",
    "after_validate",
    "inside_publish",
    "after_publish",
)
# Reached only by a model that opts into `publish: partition_copy`, after each partition.
PARTITION_COPY_POINTS = ("between_partition_copies",)
_reached: Counter[str] = Counter()
_counting_for = ""  # the BACKFILL_FAULT value that `_reached` counts for


class InjectedFault(RuntimeError):
    pass


def reset() -> None:
    """Start counting afresh (for callers that run several commands in one process)."""
    global _counting_for
    _reached.clear()
    _counting_for = ""


def fault_point(name: str) -> None:
    spec = os.environ.get("BACKFILL_FAULT")
    if not spec:
        return
    global _counting_for
    if spec != _counting_for:  # a new fault: counts of an earlier one must not carry over
        reset()
        _counting_for = spec
    target, _, mode = spec.partition(":")
    point, _, nth = target.partition("@")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] != int(nth or 1):
        return
    if mode == "raise":
        raise InjectedFault(f"injected fault at {name}")
    os.kill(os.getpid(), signal.SIGKILL)
