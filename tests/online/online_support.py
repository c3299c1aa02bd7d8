"""Helpers of the online store tests: a redis-server process, the feature mart's rows as
Redis should hold them, what Redis holds, and a publish that changes rows the way a later
backfill would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from datetime import datetime as Datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.audit.online_syncs import OnlineSyncs, SyncRecord
from orchestrator.online import OnlinePolicy, register_sync
from orchestrator.warehouse.duckdb import DuckDBWarehouse

MODEL = "fct_driver_daily_features"
FEATURES = f"marts.{MODEL}"
PF = "feature_date"


REDIS_SERVER = Path(sys.prefix) / "bin" / "redis-server"
START_TIMEOUT_SECONDS = 10.0


class RedisServer:
    """One redis-server process on 127.0.0.1; `stop` and `start` again keep the port."""

    def __init__(self, binary: Path, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        probe = self.client()
        while True:
            try:
                if probe.ping():
                    break
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(
                    f"redis-server on port {self.port} did not answer PING: {text}", pytrace=False
                )
            time.sleep(0.02)
        probe.close()

    def stop(self) -> None:
        """SIGTERM to the server's PID, SIGKILL if it has not exited within 10 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        """A client that fails at once when the server is down (no retries)."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=10,
            retry=Retry(NoBackoff(), 0),
        )

    def changes(self) -> int:
        """Writes the server has applied since its last save (it counts every change)."""
        with self.client() as client:
            return int(client.info("persistence")["rdb_changes_since_last_save"])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def policy() -> OnlinePolicy:
    """The mart's sink as its YAML declares it (tests/online/test_online_policy.py checks)."""
    return OnlinePolicy(MODEL, "redis", ("driver_id", "feature_date"), 30)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _text(value: Any) -> str:
    if isinstance(value, date | Datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def warehouse_rows(wh: DuckDBWarehouse, partitions: list[date]) -> dict[str, dict[str, str]]:
    """The relation's rows of `partitions`, keyed and written as the sink should have them."""
    columns = wh.columns(FEATURES)
    found = {}
    for day in partitions:
        for row in wh.query(f"select * from {FEATURES} where {PF} = $d", {"d": day}):
            values = dict(zip(columns, row, strict=True))
            key = f"rideshare:{MODEL}:{values['driver_id']}:{values[PF].isoformat()}"
            found[key] = {c: _text(v) for c, v in values.items() if v is not None}
    return found


def redis_rows(client: redis.Redis) -> dict[str, dict[str, str]]:
    """Every row hash of the model that Redis holds (index sets left out)."""
    return {
        str(key): {str(f): str(v) for f, v in client.hgetall(key).items()}
        for key in client.scan_iter(match=f"rideshare:{MODEL}:*", count=1000)
    }


@dataclass(frozen=True)
class Changed:
    updated: set[str]
    nulled: str
    removed: set[str]
    added: str


def _key(driver_id: str, day: date) -> str:
    return f"rideshare:{MODEL}:{driver_id}:{day.isoformat()}"


def change_rows(wh: DuckDBWarehouse, partitions: list[date]) -> Changed:
    """What a later publish does to some partitions: 3 rows of the first day change (the
    first also loses its earnings_per_trip), the last 2 rows of the last day disappear, and
    a new driver appears on the second day."""
    first, second, last = partitions[0], partitions[min(1, len(partitions) - 1)], partitions[-1]
    ids = [
        str(r[0])
        for r in wh.query(
            f"select driver_id from {FEATURES} where {PF} = $d order by driver_id limit 3",
            {"d": first},
        )
    ]
    gone = [
        str(r[0])
        for r in wh.query(
            f"select driver_id from {FEATURES} where {PF} = $d order by driver_id desc limit 2",
            {"d": last},
        )
    ]
    wh.execute(
        f"update {FEATURES} set trips_completed = trips_completed + 1 "
        f"where {PF} = $d and driver_id in ($a, $b, $c)",
        {"d": first, "a": ids[0], "b": ids[1], "c": ids[2]},
    )
    wh.execute(
        f"update {FEATURES} set earnings_per_trip = null where {PF} = $d and driver_id = $a",
        {"d": first, "a": ids[0]},
    )
    wh.execute(
        f"delete from {FEATURES} where {PF} = $d and driver_id in ($a, $b)",
        {"d": last, "a": gone[0], "b": gone[1]},
    )
    wh.execute(
        f"insert into {FEATURES} select * replace ('d99999' as driver_id) from {FEATURES} "
        f"where {PF} = $d order by driver_id limit 1",
        {"d": second},
    )
    return Changed(
        updated={_key(i, first) for i in ids},
        nulled=_key(ids[0], first),
        removed={_key(i, last) for i in gone},
        added=_key("d99999", second),
    )


def publish(
    wh: DuckDBWarehouse,
    partitions: list[date],
    change: Callable[[], object],
    *,
    version_id: str,
    backfill_id: str,
    kind: str = "publish",
) -> SyncRecord:
    """A publish as write-audit-publish does it: the change and the pending sync record in
    one transaction (the audit table made beforehand, outside it)."""
    OnlineSyncs(wh).ensure()
    with wh.transaction():
        change()
        return register_sync(
            wh,
            policy(),
            partitions=partitions,
            version_id=version_id,
            backfill_id=backfill_id,
            chunk_no=1,
            kind=kind,
        )
