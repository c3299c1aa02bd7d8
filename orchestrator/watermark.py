"""What a build consumes from its source: the highest batch it could see.

Bronze batch ids sort in delivery order (`YYYYMMDD-NN`, the ingestion day first), so the
highest batch visible when a build starts bounds every row it read. The ledger keeps it
per partition; `backfill detect` looks only at batches above what it has examined.
"""

from __future__ import annotations

import re
from datetime import date

from orchestrator.policy import DetectSource
from orchestrator.warehouse.base import Warehouse

_DAY_PREFIX = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})")


def source_watermark(
    wh: Warehouse, detect: DetectSource | None, at_least: str | None = None
) -> str | None:
    """The highest batch of the model's bronze source now; None for a model that reads
    no bronze directly (its staleness follows its parents'). Given a batch known to exist
    (`at_least`), only the ingestion days from its day on are read: every later batch is
    ingested then, so the answer is the same and its cost does not grow with history."""
    if detect is None:
        return None
    since = batch_day(at_least) if at_least else None
    pruned = f" where {detect.ingested} >= cast('{since.isoformat()}' as date)" if since else ""
    rows = wh.query(f"select max({detect.batch}) from {detect.source}{pruned}")
    found = None if not rows or rows[0][0] is None else str(rows[0][0])
    return at_least if found is None or (at_least and found < at_least) else found


def batch_day(batch_id: str) -> date | None:
    """The ingestion day a batch id starts with, for partition pruning (None if it has none)."""
    match = _DAY_PREFIX.match(batch_id)
    if match is None:
        return None
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        return None
