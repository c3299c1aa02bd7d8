"""The online sink's hooks: after a publish or rollback commits, and `backfill sync MODEL`.

The publish (or rollback) is the source of truth and is never undone by the sink: a
sync runs after its transaction committed, reads the production rows it made, and
records what it pushed in `backfill_audit.online_syncs`. When Redis cannot be reached
the sync is recorded `pending` (the error's first line kept) and nothing is raised;
`retry_pending` (`backfill sync MODEL`) syncs it later from the warehouse as it is then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from orchestrator.audit.online_syncs import OnlineSyncs, SyncRecord, first_line
from orchestrator.errors import BackfillError
from orchestrator.online.policy import OnlinePolicy
from orchestrator.online.redis_sink import SyncResult, sync_partitions
from orchestrator.warehouse.base import Warehouse

REDIS_URL_ENV = "BACKFILL_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The store is unreachable (down, network, loading its data): retry later.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


@dataclass(frozen=True)
class SyncOutcome:
    """One sync's recorded state, and what it wrote when it ran."""

    record: SyncRecord
    result: SyncResult | None  # None when the store could not be written

    @property
    def synced(self) -> bool:
        return self.record.status == "synced"


def redis_client(url: str | None = None) -> redis.Redis:
    """A client for `url`, else `$BACKFILL_REDIS_URL`, else redis://127.0.0.1:6379/0.

    Short timeouts and two quick retries: an outage costs a publish about a second, then
    the sync is left pending.
    """
    return redis.Redis.from_url(
        url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), 2),
    )


def sync_id_for(version_id: str, partitions: Sequence[date]) -> str:
    """One id per (version, partition range): a resumed chunk finds its own record."""
    days = sorted(set(partitions))
    return f"{version_id}/{days[0].isoformat()}/{days[-1].isoformat()}"


def days_between(start: date, end: date) -> list[date]:
    """Every day of [start, end]: a sync covers the chunk's days, empty ones included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def register_sync(
    wh: Warehouse,
    policy: OnlinePolicy,
    *,
    partitions: Sequence[date],
    version_id: str,
    backfill_id: str | None,
    chunk_no: int | None = None,
    kind: str = "publish",
) -> SyncRecord:
    """Record the sync as `pending`. Call it inside the publish (or rollback) transaction,
    after `OnlineSyncs(wh).ensure()` ran outside it: a crash between the commit and the
    sync then leaves a pending sync for `backfill sync`, never a silent gap."""
    return OnlineSyncs(wh).record(
        policy.model,
        version_id,
        backfill_id,
        partitions,
        0,
        0,
        "pending",
        None,
        sync_id=sync_id_for(version_id, partitions),
        store=policy.store,
        kind=kind,
        chunk_no=chunk_no,
    )


def sync_published(
    wh: Warehouse,
    policy: OnlinePolicy,
    *,
    relation: str,
    partition_field: str,
    partitions: Sequence[date],
    version_id: str,
    backfill_id: str | None,
    chunk_no: int | None = None,
    kind: str = "publish",
    client: redis.Redis | None = None,
) -> SyncOutcome:
    """Sync the partitions a publish (kind `publish`) or a rollback (`rollback`) just
    committed to `relation`, and record it. Call it after the transaction committed,
    never inside it.

    Never raises for the store: unreachable → `pending`, refused (e.g. out of memory,
    a key of another type) → `failed`, both left for `backfill sync MODEL`.
    """
    syncs = OnlineSyncs(wh)
    syncs.ensure()
    sync_id = sync_id_for(version_id, partitions)
    return _attempt(
        syncs,
        wh,
        policy,
        relation=relation,
        partition_field=partition_field,
        partitions=partitions,
        version_id=version_id,
        backfill_id=backfill_id,
        chunk_no=chunk_no,
        kind=kind,
        sync_id=sync_id,
        client=client or redis_client(),
    )


def retry_pending(
    wh: Warehouse,
    policy: OnlinePolicy,
    *,
    relation: str,
    partition_field: str,
    client: redis.Redis | None = None,
) -> list[SyncOutcome]:
    """`backfill sync MODEL`: sync every pending or failed sync of the model, oldest first,
    from the warehouse as it is now. Stops at the first outage (the rest would fail the
    same way) and returns the outcomes of the syncs it tried; [] when none was pending."""
    syncs = OnlineSyncs(wh)
    waiting = syncs.pending(policy.model)
    if not waiting:
        return []
    syncs.ensure()
    client = client or redis_client()
    outcomes = []
    for record in waiting:
        outcome = _attempt(
            syncs,
            wh,
            policy,
            relation=relation,
            partition_field=partition_field,
            partitions=record.partitions,
            version_id=record.version_id,
            backfill_id=record.backfill_id,
            chunk_no=record.chunk_no,
            kind=record.kind,
            sync_id=record.sync_id,
            client=client,
        )
        outcomes.append(outcome)
        if outcome.record.status == "pending":
            break
    return outcomes


def _attempt(
    syncs: OnlineSyncs,
    wh: Warehouse,
    policy: OnlinePolicy,
    *,
    relation: str,
    partition_field: str,
    partitions: Sequence[date],
    version_id: str,
    backfill_id: str | None,
    chunk_no: int | None,
    kind: str,
    sync_id: str,
    client: redis.Redis,
) -> SyncOutcome:
    result: SyncResult | None = None
    error: Exception | None = None
    try:
        result = sync_partitions(
            wh, relation, partition_field, policy, partitions, client, version_id=version_id
        )
        status = "synced"
    except OUTAGE_ERRORS as exc:
        status, error = "pending", exc
    except (redis.RedisError, BackfillError) as exc:
        status, error = "failed", exc
    record = syncs.record(
        policy.model,
        version_id,
        backfill_id,
        partitions,
        result.upserted if result else 0,
        result.deleted if result else 0,
        status,
        None if error is None else f"{type(error).__name__}: {first_line(error)}",
        sync_id=sync_id,
        store=policy.store,
        kind=kind,
        chunk_no=chunk_no,
        keys_unchanged=result.unchanged if result else 0,
        keys_total=result.keys if result else 0,
    )
    return SyncOutcome(record, result)
