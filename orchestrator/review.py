"""`backfill review --since 30d`: the period's backfills, grouped by model, reason
category and outcome, and the partitions backfilled more than once (a repeated root
cause worth fixing upstream)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator import plan as planning
from orchestrator.audit import utcnow
from orchestrator.context import Context
from orchestrator.errors import BadInput

_SINCE = re.compile(r"([1-9][0-9]{0,4})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


@dataclass
class Group:
    model: str
    category: str
    outcome: str
    backfills: int = 0
    partitions: int = 0
    partitions_changed: int = 0
    rows_changed: int = 0
    seconds: float = 0.0
    failed_checks: int = 0
    rollbacks: int = 0


@dataclass
class Review:
    since: datetime
    groups: list[Group] = field(default_factory=list)
    repeated: list[dict[str, Any]] = field(default_factory=list)  # model, partition, backfills


def parse_since(text: str) -> datetime:
    """`30d`, `12h`, `2w` ago, or an ISO date (from its midnight UTC)."""
    match = _SINCE.fullmatch(text or "")
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return utcnow() - timedelta(**{_UNITS[unit]: amount})
    if planning.ISO_DATE.fullmatch(text or ""):
        return datetime.combine(planning.parse_date(text, "since"), datetime.min.time())
    raise BadInput(f"since {text!r} must be a period like 30d, 12h or 2w, or a date (YYYY-MM-DD)")


def review(ctx: Context, since_text: str, model: str | None = None) -> Review:
    since = parse_since(since_text)
    if model is not None:
        planning.check_identifier(model)
        ctx.dbt.manifest().model(model)
    audit = ctx.audit
    backfills = [b for b in audit.plans.planned_since(since) if model in (None, b["model"])]
    ids = [str(b["backfill_id"]) for b in backfills]
    written = audit.chunks.partitions_written(ids)
    failed = audit.chunks.failed_checks(ids)
    groups: dict[tuple[str, str, str], Group] = {}
    for b in backfills:
        key = (str(b["model"]), str(b["category"]), str(b["status"]))
        group = groups.setdefault(key, Group(*key))
        group.backfills += 1
        mine = [w for w in written if w[0] == b["backfill_id"]]
        group.partitions += len(mine)
        group.partitions_changed += sum(1 for w in mine if (w[3], w[4]) != (w[5], w[6]))
        group.rows_changed += sum(abs(w[5] - w[3]) for w in mine)
        if b["started_at"] is not None and b["completed_at"] is not None:
            group.seconds += (b["completed_at"] - b["started_at"]).total_seconds()
        group.failed_checks += failed.get(str(b["backfill_id"]), 0)
        group.rollbacks += b["status"] == "rolled_back"
    counts = Counter((w[1], w[2]) for w in written)
    repeated = [
        {
            "model": m,
            "partition": day,
            "backfills": sorted({w[0] for w in written if (w[1], w[2]) == (m, day)}),
        }
        for (m, day), n in sorted(counts.items())
        if n > 1
    ]
    return Review(
        since, sorted(groups.values(), key=lambda g: (g.model, g.category, g.outcome)), repeated
    )
