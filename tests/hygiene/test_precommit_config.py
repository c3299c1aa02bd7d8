"""`.pre-commit-config.yaml` runs the same, locally installed tools as `make lint`."""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from .conftest import REPO_ROOT


def hooks() -> list[dict[str, Any]]:
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_hooks_are_local_and_use_the_project_venv() -> None:
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    for hook in hooks():
        words = [w for w in shlex.split(hook["entry"]) if w != "env" and "=" not in w]
        assert hook["language"] == "system", hook["id"]
        assert words[0].startswith(".venv/bin/"), f"{hook['id']}: {hook['entry']}"


def test_hooks_cover_every_lint_gate() -> None:
    entries = " ; ".join(hook["entry"] for hook in hooks())
    for tool in ("ruff check", "ruff format", "mypy", "sqlfluff lint", "cli_reference"):
        assert tool in entries, f"no pre-commit hook runs {tool}"
