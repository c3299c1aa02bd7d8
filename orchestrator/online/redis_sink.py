"""Push the rows of some partitions of a warehouse relation to Redis, writing only what differs.

Layout, for a model with `online: {key: [driver_id, feature_date]}`:
- one hash per row, `rideshare:<model>:<driver_id>:<feature_date>`, a field per column
  (a null column is left out; values as text: decimals as written, dates ISO 8601);
- one set per partition, `rideshare:_partitions:<model>:<date>`, of the keys the last sync
  wrote for that day: a key in it whose row is gone from the warehouse is deleted.

A sync reads each partition's rows and the current hashes, then writes the keys that
differ (DEL + HSET + EXPIRE in one MULTI/EXEC, so a reader never sees half a row) and
deletes the keys whose rows disappeared, in pipelined batches. A second sync of the same
rows finds nothing to write.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import redis

from orchestrator.errors import BadInput, WorkFailed
from orchestrator.online.policy import NAMESPACE, OnlinePolicy
from orchestrator.warehouse.base import Warehouse

# Commands per round trip: one pipeline (a MULTI/EXEC when writing) carries at most this many.
BATCH_COMMANDS = 500

Command = tuple[str, ...]


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: keys written (new or changed), deleted, and left as they were."""

    model: str
    version_id: str
    partitions: tuple[date, ...]
    upserted: int
    deleted: int
    unchanged: int
    keys: int  # keys the partitions hold after the sync (= their rows in the warehouse)
    commands: int  # write commands sent (0 when nothing differed)
    seconds: float

    @property
    def writes(self) -> int:
        return self.upserted + self.deleted


def row_key(policy: OnlinePolicy, values: Sequence[Any]) -> str:
    """`rideshare:<model>:<v1>:<v2>…`; `%` and `:` inside a value are escaped, so two rows
    never share a key."""
    parts = [_escape(encode(value) or "") for value in values]
    return ":".join([policy.prefix, *parts])


def index_key(policy: OnlinePolicy, day: date) -> str:
    """The set of keys a partition holds in Redis."""
    return f"{NAMESPACE}:_partitions:{policy.model}:{day.isoformat()}"


def encode(value: Any) -> str | None:
    """A warehouse value as the text stored in a hash field (None: the field is left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def sync_partitions(
    wh: Warehouse,
    relation: str,
    partition_field: str,
    online_policy: OnlinePolicy,
    partitions: Sequence[date],
    redis_client: redis.Redis,
    *,
    version_id: str,
    batch_size: int = BATCH_COMMANDS,
) -> SyncResult:
    """Make Redis hold exactly the rows `relation` has now in `partitions`.

    Call it with the production relation after a publish (or rollback) committed: it
    pushes what readers of the warehouse see, never staged rows. Raises redis' errors
    (ConnectionError when the server is down): the caller records the sync as pending.
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    columns = wh.columns(relation)
    if not columns:
        raise BadInput(f"relation {relation} does not exist")
    online_policy.check_columns(columns)
    if partition_field not in columns:
        raise BadInput(f"partition field {partition_field} is not a column of {relation}")
    days = tuple(sorted(set(partitions)))
    upserted = deleted = unchanged = keys = commands = 0
    for day in days:
        desired = _rows(wh, relation, partition_field, online_policy, columns, day)
        plan = _plan(redis_client, online_policy, day, desired, batch_size)
        commands += _write(redis_client, plan.units, batch_size)
        upserted += len(plan.upserts)
        deleted += len(plan.deletes)
        unchanged += len(desired) - len(plan.upserts)
        keys += len(desired)
    return SyncResult(
        model=online_policy.model,
        version_id=version_id,
        partitions=days,
        upserted=upserted,
        deleted=deleted,
        unchanged=unchanged,
        keys=keys,
        commands=commands,
        seconds=time.perf_counter() - started,
    )


def read_partition(
    redis_client: redis.Redis, online_policy: OnlinePolicy, day: date
) -> dict[str, dict[str, str]]:
    """Every hash Redis holds for one partition, by key (what a sync last wrote)."""
    members = sorted(_text(m) for m in _members(redis_client, index_key(online_policy, day)))
    current = _hashes(redis_client, members, BATCH_COMMANDS)
    return {key: value for key, value in current.items() if value}


@dataclass(frozen=True)
class _Plan:
    upserts: list[str]
    deletes: list[str]
    units: list[list[Command]]  # each unit's commands go in the same MULTI/EXEC


def _rows(
    wh: Warehouse,
    relation: str,
    partition_field: str,
    policy: OnlinePolicy,
    columns: list[str],
    day: date,
) -> dict[str, dict[str, str]]:
    """The partition's rows as {key: {column: text}} (one query per partition)."""
    key_positions = [columns.index(column) for column in policy.key]
    rows = wh.query(
        f"select {', '.join(columns)} from {relation} where {partition_field} = $day",
        {"day": day},
    )
    desired: dict[str, dict[str, str]] = {}
    for row in rows:
        key = row_key(policy, [row[i] for i in key_positions])
        if key in desired:
            raise WorkFailed(
                f"{relation} has two rows with the online key {key} on {day}; "
                f"meta.backfill.online key must be unique"
            )
        desired[key] = {
            column: text
            for column, value in zip(columns, row, strict=True)
            if (text := encode(value)) is not None
        }
    return desired


def _plan(
    client: redis.Redis,
    policy: OnlinePolicy,
    day: date,
    desired: Mapping[str, Mapping[str, str]],
    batch_size: int,
) -> _Plan:
    """Compare the partition's rows with what Redis holds; the writes that make them equal."""
    index = index_key(policy, day)
    indexed = {_text(m) for m in _members(client, index)}
    current = _hashes(client, list(desired), batch_size)
    upserts = [key for key, fields in desired.items() if current.get(key) != fields]
    deletes = sorted(indexed - desired.keys())
    added = sorted(desired.keys() - indexed)
    ttl = policy.ttl_seconds
    units: list[list[Command]] = []
    for key in upserts:
        unit: list[Command] = [("DEL", key)] if current.get(key) else []
        flat = [part for field_value in sorted(desired[key].items()) for part in field_value]
        unit.append(("HSET", key, *flat))
        if ttl is not None:
            unit.append(("EXPIRE", key, str(ttl)))
        units.append(unit)
    for group in _groups(deletes, batch_size):
        units.append([("DEL", *group), ("SREM", index, *group)])
    for group in _groups(added, batch_size):
        units.append([("SADD", index, *group)])
    if units and ttl is not None and desired:
        # The index outlives every key it lists: each write of the partition renews it.
        units.append([("EXPIRE", index, str(ttl))])
    return _Plan(upserts, deletes, units)


def _write(client: redis.Redis, units: list[list[Command]], batch_size: int) -> int:
    """Send the units in MULTI/EXEC pipelines of about `batch_size` commands (a unit is
    never split across two). Returns the number of commands sent."""
    sent = 0
    batch: list[Command] = []
    for unit in units:
        if batch and len(batch) + len(unit) > batch_size:
            sent += _execute(client, batch)
            batch = []
        batch.extend(unit)
    if batch:
        sent += _execute(client, batch)
    return sent


def _execute(client: redis.Redis, commands: list[Command]) -> int:
    pipe = client.pipeline(transaction=True)
    for command in commands:
        pipe.execute_command(*command)
    pipe.execute()
    return len(commands)


def _members(client: redis.Redis, key: str) -> set[Any]:
    return set(client.smembers(key))


def _hashes(client: redis.Redis, keys: list[str], batch_size: int) -> dict[str, dict[str, str]]:
    """HGETALL of every key, pipelined (no transaction: reads only); {} for a missing key."""
    found: dict[str, dict[str, str]] = {}
    for group in _groups(keys, batch_size):
        pipe = client.pipeline(transaction=False)
        for key in group:
            pipe.hgetall(key)
        for key, value in zip(group, pipe.execute(), strict=True):
            found[key] = {_text(f): _text(v) for f, v in dict(value).items()}
    return found


def _groups(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for offset in range(0, len(items), size):
        yield list(items[offset : offset + size])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")
