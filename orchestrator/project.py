"""The dbt project's identity: which files it is made of, their hash, the git commit.

A leaf module (it imports nothing of the orchestrator), so the compile cache, the dbt
wrapper and the command context can all key on it without importing each other.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

PROJECT_FILES = ("models", "macros", "snapshots", "seeds", "tests/dbt", "dbt_project.yml")


def git_commit(project_dir: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def project_hash(project_dir: Path) -> str:
    """Hash of every dbt project file: any edit to models or macros changes it."""
    digest = hashlib.sha256()
    for entry in PROJECT_FILES:
        root = project_dir / entry
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            digest.update(str(path.relative_to(project_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
