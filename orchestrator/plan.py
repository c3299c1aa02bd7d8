"""Pure planning: a request becomes validated partitions, chunks and a fingerprint.

Nothing here touches the warehouse or dbt, so every rule is unit-testable.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from orchestrator.errors import BadInput
from orchestrator.policy import BackfillPolicy

# Matched with `fullmatch`: `$` would also match before a trailing newline.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.v[0-9]+)?")
PERSON = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # \d admits non-ASCII digits
PLAN_ID = re.compile(r"bf_[0-9a-f]{12}")
MAX_REASON = 500


@dataclass(frozen=True)
class Chunk:
    """A contiguous run of day partitions of one model, built and published together."""

    model: str
    chunk_no: int
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dbt_vars(self) -> dict[str, str]:
        return {"backfill_start": self.start.isoformat(), "backfill_end": self.end.isoformat()}

    def as_dict(self) -> dict[str, Any]:
        """As stored with the plan and printed: dates in ISO form."""
        return {
            "model": self.model,
            "chunk_no": self.chunk_no,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Chunk:
        return cls(
            str(raw["model"]),
            int(raw["chunk_no"]),
            date.fromisoformat(str(raw["start"])),
            date.fromisoformat(str(raw["end"])),
        )


def parse_date(value: str, label: str) -> date:
    """Strict ISO date: `2024-1-1` and `2024-02-30` are refused with a one-line reason."""
    if not ISO_DATE.fullmatch(value or ""):
        raise BadInput(f"{label} date {value!r} is not an ISO date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{label} date {value!r} is not a valid calendar date") from None


def check_identifier(value: str, label: str = "model name") -> str:
    if not IDENTIFIER.fullmatch(value or ""):
        raise BadInput(f"{label} {value!r} is not a valid dbt model name")
    return value


def normalise_person(value: str) -> str:
    """A person's name as it is compared and recorded: Unicode NFKC (full-width letters
    become ASCII), surrounding spaces dropped, case folded (`Alice` is `alice`)."""
    return unicodedata.normalize("NFKC", value or "").strip(" ").casefold()


def check_person(value: str, label: str) -> str:
    """The normalised name, or a refusal of what was typed."""
    name = normalise_person(value)
    if not PERSON.fullmatch(name):
        raise BadInput(
            f"{label} {value!r} must be 1-64 characters of letters, digits, '.', '_', '@', '+', '-'"
        )
    return name


def check_plan_id(value: str) -> str:
    if not PLAN_ID.fullmatch(value or ""):
        raise BadInput(f"unknown plan {value!r}")
    return value


def check_reason(value: str | None, label: str = "reason") -> str:
    """One line of printable text (tabs allowed): no newline, no control character (C0, DEL,
    C1), no format character such as a bidi override (U+202E), no line or paragraph separator."""
    text = value or ""
    if len(text) > MAX_REASON:
        raise BadInput(f"{label} is {len(text)} characters; at most {MAX_REASON} are allowed")
    if not all(ch.isprintable() or ch == "\t" for ch in text):
        raise BadInput(f"{label} must be one line of printable text")
    return text


CATEGORIES = (
    "late_data",
    "upstream_fix",
    "logic_change",
    "metric_change",
    "schema_change",
    "other",
)
DETECTED_KINDS = ("stale", "missing", "drifted")


def check_category(value: str | None) -> str:
    """Why a backfill is needed, from a closed list (`--reason` stays free text)."""
    category = value or "other"
    if category not in CATEGORIES:
        raise BadInput(f"category {category!r} is not one of {', '.join(CATEGORIES)}")
    return category


def check_detected(kinds: tuple[str, ...], start: str | None, end: str | None) -> None:
    """A plan of detected partitions takes no range of its own."""
    unknown = [k for k in kinds if k not in DETECTED_KINDS]
    if unknown:
        raise BadInput(f"unknown partition kind {unknown[0]!r}; use {', '.join(DETECTED_KINDS)}")
    if start is not None or end is not None:
        raise BadInput(
            "--stale, --missing and --drifted plan exactly the partitions backfill detect "
            "finds; give them without --start and --end"
        )


def check_partition_count(model: str, partitions: int, policy: BackfillPolicy) -> None:
    if partitions > policy.max_days:
        raise BadInput(
            f"{partitions} partitions to plan; {model} allows at most {policy.max_days} "
            "(meta.backfill.max_days)"
        )


def chunks_of_days(model: str, days: list[date], chunk_days: int) -> list[Chunk]:
    """Contiguous runs of `days`, each split into chunks of at most `chunk_days`."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    chunks: list[Chunk] = []
    for first, last in runs:
        for c in split_chunks(model, first, last, chunk_days):
            chunks.append(Chunk(model, len(chunks) + 1, c.start, c.end))
    return chunks


def check_chunk_days(chunk_days: int, max_days: int) -> int:
    """At least 1 and at most the model's `max_days` (a chunk never spans more than a plan)."""
    if chunk_days < 1:
        raise BadInput(f"chunk days must be at least 1, not {chunk_days}")
    if chunk_days > max_days:
        raise BadInput(f"chunk days must be at most {max_days}, not {chunk_days}")
    return chunk_days


def validate_range(
    model: str, start_text: str, end_text: str, policy: BackfillPolicy, today: date
) -> tuple[date, date]:
    """DESIGN.md §4: ISO dates, start <= end, end not in the future, range <= max_days."""
    start = parse_date(start_text, "start")
    end = parse_date(end_text, "end")
    if start > end:
        raise BadInput(f"start date {start} is after end date {end}")
    if end > today:
        raise BadInput(f"end date {end} is in the future (today is {today})")
    days = (end - start).days + 1
    if days > policy.max_days:
        raise BadInput(
            f"range {start}..{end} covers {days} days; {model} allows at most "
            f"{policy.max_days} (meta.backfill.max_days)"
        )
    return start, end


def split_chunks(model: str, start: date, end: date, chunk_days: int) -> list[Chunk]:
    if chunk_days < 1:
        raise BadInput(f"chunk days must be at least 1, not {chunk_days}")
    chunks: list[Chunk] = []
    cursor = start
    while cursor <= end:
        # Never past `end`, and never a timedelta that overflows (a huge chunk_days).
        last = end if chunk_days > (end - cursor).days else cursor + timedelta(days=chunk_days - 1)
        chunks.append(Chunk(model, len(chunks) + 1, cursor, last))
        cursor = last + timedelta(days=1)
    return chunks


def fingerprint(
    *,
    model: str,
    start: date,
    end: date,
    chunks: list[Chunk],
    compiled_sql: list[str],
    project_hash: str,
    git_commit: str,
    dbt_vars: dict[str, Any],
) -> str:
    """Hash of everything that decides what a backfill writes (DESIGN.md §4)."""
    payload = {
        "model": model,
        "range": [start.isoformat(), end.isoformat()],
        "chunks": [[c.model, c.chunk_no, c.start.isoformat(), c.end.isoformat()] for c in chunks],
        "compiled_sql": [hashlib.sha256(sql.encode()).hexdigest() for sql in compiled_sql],
        "project_hash": project_hash,
        "git_commit": git_commit,
        "vars": dbt_vars,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
