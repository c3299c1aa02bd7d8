"""The Python side keeps its shape: one owner per audit table, a CLI that only parses and
prints, and no import circles. Each check runs on the real tree and on a broken sample."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from orchestrator.audit import SCHEMA, TABLES

from .conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "orchestrator"
AUDIT_PACKAGE = PACKAGE / "audit"
# SQL that names an audit table: after FROM / JOIN / INTO / UPDATE / TABLE, with or
# without the schema, or the audit store's own table-name helper.
_SQL_ON_TABLE = re.compile(
    r"(?i)\b(?:from|join|into|update|table)\s+[\w{}.\"'`]*?\b(" + "|".join(TABLES) + r")\b"
)
_AUDIT_NAMES = re.compile(rf"\.t\(|\b{SCHEMA}\b")
# What the CLI may import: the library facade, the demo tooling, and its own plumbing.
CLI_IMPORTS = {
    "orchestrator.backfills",
    "orchestrator.demo",
    "orchestrator.demo.walkthrough",
    "orchestrator.render",
    "orchestrator.context",
    "orchestrator.errors",
    "orchestrator.options",
}


def audit_sql_outside_the_audit_package(path: Path, text: str) -> list[str]:
    """`path:line` of every statement outside orchestrator/audit that names an audit table."""
    if path.is_relative_to(AUDIT_PACKAGE):
        return []
    found = []
    tree = ast.parse(text)
    # A docstring (a bare string statement) may talk about a table: skip it and its text.
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if id(node) in docstrings or (
            isinstance(node, ast.Expr) and id(getattr(node, "value", None)) in docstrings
        ):
            continue
        if isinstance(node, ast.Constant | ast.JoinedStr | ast.Call):
            segment = ast.get_source_segment(text, node) or ""
            if _SQL_ON_TABLE.search(segment) or _AUDIT_NAMES.search(segment):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return sorted(set(found))


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_outside_the_audit_package_builds_sql_on_audit_tables() -> None:
    problems = [
        p for path in modules() for p in audit_sql_outside_the_audit_package(path, path.read_text())
    ]
    assert problems == []


def test_the_check_finds_audit_sql_where_it_does_not_belong() -> None:
    sample = PACKAGE / "versions.py"
    broken = 'rows = wh.query(f"select * from {SCHEMA}.dataset_versions where x = 1")\n'
    assert audit_sql_outside_the_audit_package(sample, broken) == ["orchestrator/versions.py:1"]
    assert audit_sql_outside_the_audit_package(sample, 'audit.t("locks")\n') != []
    assert audit_sql_outside_the_audit_package(sample, '"""from the locks table."""\n') == []


def test_the_cli_imports_only_the_library_facade_and_its_plumbing() -> None:
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("orchestrator")
        ):
            names = {f"{node.module}.{a.name}" for a in node.names}
            imported |= {n if n in CLI_IMPORTS else node.module for n in names}
    assert imported - CLI_IMPORTS == set()


def test_record_writers_never_import_the_command_context() -> None:
    for path in sorted(AUDIT_PACKAGE.glob("*.py")):
        assert "orchestrator.context" not in path.read_text(), path.name
