"""The online store sink: the rows a backfill published, pushed to Redis for serving.

A model opts in with `meta.backfill.online` ({store: redis, key: [...], ttl_days: N}).
After a chunk's publish (or a rollback) commits, `sync_published` makes Redis hold
exactly the rows of those partitions: it upserts changed rows, deletes rows that
disappeared, writes nothing when nothing differs, and records the sync in
`backfill_audit.online_syncs`. An unreachable store leaves the sync pending for
`retry_pending` (`backfill sync MODEL`); the publish stands.
"""

from orchestrator.online.policy import OnlinePolicy, online_policy_from_meta
from orchestrator.online.redis_sink import (
    SyncResult,
    index_key,
    read_partition,
    row_key,
    sync_partitions,
)
from orchestrator.online.syncs import (
    SyncOutcome,
    days_between,
    redis_client,
    register_sync,
    retry_pending,
    sync_id_for,
    sync_published,
)

__all__ = [
    "OnlinePolicy",
    "SyncOutcome",
    "SyncResult",
    "days_between",
    "index_key",
    "online_policy_from_meta",
    "read_partition",
    "redis_client",
    "register_sync",
    "retry_pending",
    "row_key",
    "sync_id_for",
    "sync_partitions",
    "sync_published",
]
