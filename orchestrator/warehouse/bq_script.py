"""BigQuery's side of the shared SQL: the dialect and the script a transaction becomes.

The orchestrator writes SQL once, with `$name` parameters and a few DuckDB spellings.
Here that SQL becomes GoogleSQL: parameters become typed query parameters (a statement
on its own) or typed literals (a statement inside a script), `as varchar` becomes
`as string`, and a `transaction()` block becomes one `BEGIN TRANSACTION; ...; COMMIT
TRANSACTION;` script (`ScriptTransaction`). Reads inside the block see the block's own
writes through overlays: a relation written by an insert or a range copy is read as the
committed rows minus the replaced range, plus the rows the script will write.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from orchestrator.errors import WorkFailed
from orchestrator.warehouse.base import Params

if TYPE_CHECKING:
    from google.cloud import bigquery

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_VARCHAR_CAST = re.compile(r"\bas\s+varchar\b", re.IGNORECASE)
_DML_TARGET = re.compile(
    r"^\s*(?:delete\s+from|delete|insert\s+into|insert|update|merge\s+into|merge|truncate\s+table)"
    r"\s+`?([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*){1,2})`?",
    re.IGNORECASE,
)


@dataclass
class ScriptTransaction:
    """What one `transaction()` block will commit, and how reads inside it see it."""

    statements: list[str] = field(default_factory=list)
    overlays: dict[str, str] = field(default_factory=dict)  # relation -> SELECT as left
    opaque: set[str] = field(default_factory=set)  # written by DML no overlay describes
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def add_dml(self, sql: str, params: Params | None) -> None:
        """A DML statement of the caller's: sent in the script, its target unreadable after."""
        self.statements.append(inline_params(sql, params))
        target = _DML_TARGET.match(sql)
        self.opaque.add(target.group(1) if target else "*")

    def script(self) -> str:
        return ";\n".join(["BEGIN TRANSACTION", *self.statements, "COMMIT TRANSACTION"]) + ";"

    def with_overlays(self, sql: str) -> str:
        """`sql` reading each relation the transaction wrote as the script leaves it."""
        if not (self.overlays or self.opaque):
            return sql
        for relation in sorted(self.opaque):
            if relation == "*" or mentions(sql, relation):
                raise WorkFailed(
                    f"cannot read {relation if relation != '*' else 'a relation'} after "
                    "changing it with a DML statement in the same BigQuery transaction"
                )
        if not self.overlays:
            return sql
        # One pass: each overlay is already written in terms of the state it was taken
        # from, so the text substituted here must not be substituted again.
        names = sorted(self.overlays, key=len, reverse=True)
        pattern = re.compile(
            r"(?<![\w.`])(" + "|".join(re.escape(n) for n in names) + r")(?![\w`])"
        )
        overlays = self.overlays
        return outside_quotes(
            sql, lambda part: pattern.sub(lambda m: f"({overlays[m.group(1)]})", part)
        )

    def overlay_base(self, relation: str) -> str:
        if relation in self.overlays:
            return f"({self.overlays[relation]})"
        return relation


def translate_params(
    sql: str, params: Params | None
) -> tuple[str, list[bigquery.ScalarQueryParameter]]:
    """`$name` placeholders -> `@name` and typed query parameters (quoted text untouched)."""
    from google.cloud import bigquery

    if not params:
        return sql, []
    used: dict[str, bigquery.ScalarQueryParameter] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise WorkFailed(f"SQL parameter ${name} has no value")
        value = to_db(params[name])
        used[name] = bigquery.ScalarQueryParameter(name, type_of(value), value)
        return f"@{name}"

    return outside_quotes(sql, lambda part: _PARAM.sub(replace, part)), list(used.values())


def inline_params(sql: str, params: Params | None) -> str:
    """`$name` placeholders -> typed literals, for statements sent inside a script."""
    if not params:
        return sql

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise WorkFailed(f"SQL parameter ${name} has no value")
        value = to_db(params[name])
        return render_literal(value, type_of(value))

    return outside_quotes(sql, lambda part: _PARAM.sub(replace, part))


def render_literal(value: Any, sql_type: str) -> str:
    """A GoogleSQL literal of `value` as `sql_type` (strings escaped; NULL typed)."""
    base = sql_type.split("(")[0].upper()
    if value is None:
        return f"cast(null as {base})"
    if base == "STRING":
        return _string(str(value))
    if base == "BOOL":
        return "true" if value else "false"
    if base == "INT64":
        return str(int(value))
    if base == "FLOAT64":
        number = float(value)
        text = repr(number) if math.isfinite(number) else str(number)  # nan, inf, -inf
        return f"cast('{text}' as float64)"
    if base in {"NUMERIC", "BIGNUMERIC"}:
        return f"{base.lower()} '{Decimal(str(value))}'"
    if base == "DATE":
        return date_literal(value)
    if base == "TIMESTAMP":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return f"timestamp '{moment.isoformat(sep=' ')}+00'"
    if base == "DATETIME":
        return f"datetime '{value.isoformat(sep=' ')}'"
    raise WorkFailed(f"cannot write a {sql_type} literal")


def _string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def date_literal(value: date) -> str:
    day = value.date() if isinstance(value, datetime) else value
    return f"date '{day.isoformat()}'"


def type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return "NUMERIC"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    return "STRING"


def to_db(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # every orchestrator time is naive UTC
    return value


def translate_types(sql: str) -> str:
    """The few DuckDB spellings the shared SQL uses that GoogleSQL spells differently."""
    return outside_quotes(sql, lambda part: _VARCHAR_CAST.sub("as string", part))


def outside_quotes(sql: str, change: Callable[[str], str]) -> str:
    """Apply `change` to the parts of `sql` outside string literals, quoted names and comments."""
    out: list[str] = []
    plain: list[str] = []
    i = 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"`":
            end = i + 1
            while end < len(sql) and sql[end] != char:
                end += 2 if sql[end] == "\\" else 1
            out.append(change("".join(plain)))
            plain = []
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i) or char == "#":
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            out.append(change("".join(plain)))
            plain = []
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = len(sql) if end < 0 else end + 2
            out.append(change("".join(plain)))
            plain = []
            out.append(sql[i:end])
            i = end
        else:
            plain.append(char)
            i += 1
    out.append(change("".join(plain)))
    return "".join(out)


def mentions(sql: str, relation: str) -> bool:
    return bool(re.search(r"(?<![\w.`])" + re.escape(relation) + r"(?![\w`])", sql))
