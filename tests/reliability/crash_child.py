"""A new interpreter for one crash-trial phase: `python crash_child.py SPEC_JSON`.

The same body as a forked phase (`crash_harness.child_main`: the reader, the fault-point
hook, then the CLI's `run --execute`), but paying the whole start-up of a CLI process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crash_harness import ChildSpec, child_main

if __name__ == "__main__":
    code = child_main(ChildSpec(**json.loads(sys.argv[1])))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the reader thread may still be inside DuckDB: no interpreter teardown
