"""Install DuckDB's spatial extension for the BigQuery emulator from a local wheel, offline.

Run by `make bqemu` with the emulator's own interpreter (`.bqemu/bin/python`) and
`HOME=.bqemu/home`: bqemulator runs `INSTALL spatial; LOAD spatial` at start-up, which
finds the extension already installed under `$HOME/.duckdb/extensions/` and never
downloads anything. The extension file ships inside the pinned
`duckdb-extension-spatial` package (same version as the pinned duckdb).
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import duckdb_extension_spatial


def main() -> int:
    package = Path(duckdb_extension_spatial.__file__).parent
    files = sorted(package.rglob("spatial.duckdb_extension"))
    if not files:
        print(f"Error: no spatial.duckdb_extension inside {package}", file=sys.stderr)
        return 1
    con = duckdb.connect()
    con.execute(f"install '{files[0]}'")
    con.execute("load spatial")
    path = con.execute(
        "select install_path from duckdb_extensions() where extension_name = 'spatial'"
    ).fetchone()
    print(f"spatial extension installed at {path[0] if path else '?'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
