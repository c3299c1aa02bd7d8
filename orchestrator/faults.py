"""Fault injection for crash tests: BACKFILL_FAULT=<point> makes the process die there.

`BACKFILL_FAULT=after_backup` kills the process with SIGKILL at that point, exactly as
a machine failure would; `BACKFILL_FAULT=after_backup:raise` raises instead. Unset in
normal use, where fault_point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


class InjectedFault(RuntimeError):
    pass


def fault_point(name: str) -> None:
    spec = os.environ.get("BACKFILL_FAULT")
    if not spec:
        return
    point, _, mode = spec.partition(":")
    if point != name:
        return
    if mode == "raise":
        raise InjectedFault(f"injected fault at {name}")
    os.kill(os.getpid(), signal.SIGKILL)
