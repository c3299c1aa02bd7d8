"""The online sink against a real redis-server and the real built feature mart.

Every check compares what Redis holds, read back key by key, with the warehouse's rows
read straight from DuckDB; counts of what a sync wrote are checked against the server's
own count of applied changes.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
import redis
from online_support import (
    FEATURES,
    MODEL,
    PF,
    RedisServer,
    change_rows,
    days,
    policy,
    publish,
    redis_rows,
    warehouse_rows,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.audit.online_syncs import OnlineSyncs
from orchestrator.online import (
    OnlinePolicy,
    index_key,
    redis_client,
    retry_pending,
    sync_partitions,
    sync_published,
)
from orchestrator.warehouse.duckdb import DuckDBWarehouse

WEEK = days(date(2024, 1, 10), date(2024, 1, 16))


def test_a_sync_pushes_every_row_of_its_partitions(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    expected = warehouse_rows(wh, WEEK)
    assert len(expected) > 100

    # A small batch size: the rows go in many MULTI/EXEC round trips.
    result = sync_partitions(
        wh, FEATURES, PF, policy(), WEEK, client, version_id=f"{MODEL}@1", batch_size=50
    )

    exec_calls = int(client.info("commandstats")["cmdstat_exec"]["calls"])
    assert redis_rows(client) == expected
    assert (result.upserted, result.deleted, result.unchanged) == (len(expected), 0, 0)
    assert result.keys == len(expected)
    assert result.partitions == tuple(WEEK)
    # Pipelined: one MULTI/EXEC per batch of at most 50 commands, not one per command.
    assert result.commands / 50 <= exec_calls < result.commands / 10
    for day in WEEK:
        members = client.smembers(index_key(policy(), day))
        assert members == {key for key in expected if key.endswith(day.isoformat())}
        assert 0 < client.ttl(index_key(policy(), day)) <= 30 * 86_400
    assert all(0 < client.ttl(key) <= 30 * 86_400 for key in expected)
    # Spot check of the encoding: decimals as the warehouse writes them, dates ISO.
    some = client.hgetall(next(iter(sorted(expected))))
    assert some["feature_date"] == "2024-01-10"
    assert Decimal(str(some["gross_earnings"])).as_tuple().exponent == -2


def test_a_second_sync_writes_nothing(wh: DuckDBWarehouse, redis_server: RedisServer) -> None:
    client = redis_server.client()
    first = sync_partitions(wh, FEATURES, PF, policy(), WEEK, client, version_id=f"{MODEL}@1")
    applied = redis_server.changes()

    second = sync_partitions(wh, FEATURES, PF, policy(), WEEK, client, version_id=f"{MODEL}@1")

    assert (second.upserted, second.deleted, second.commands) == (0, 0, 0)
    assert second.unchanged == second.keys == first.keys
    assert redis_server.changes() == applied
    assert redis_rows(client) == warehouse_rows(wh, WEEK)


def test_a_later_publish_rewrites_exactly_the_rows_it_changed(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    sync_partitions(wh, FEATURES, PF, policy(), WEEK, client, version_id=f"{MODEL}@1")
    before = redis_rows(client)

    changed = change_rows(wh, WEEK)  # 3 rows changed (one loses a field), 2 gone, 1 new

    result = sync_partitions(wh, FEATURES, PF, policy(), WEEK, client, version_id=f"{MODEL}@2")
    after = redis_rows(client)

    assert after == warehouse_rows(wh, WEEK)
    assert (result.upserted, result.deleted) == (4, 2)
    assert result.unchanged == len(before) - 2 - 3
    assert set(before) - set(after) == changed.removed
    assert set(after) - set(before) == {changed.added}
    assert {k for k in before.keys() & after.keys() if before[k] != after[k]} == changed.updated
    assert "earnings_per_trip" not in after[changed.nulled]
    assert not client.exists(*changed.removed)
    removed_day = date.fromisoformat(next(iter(changed.removed)).rsplit(":", 1)[1])
    assert not changed.removed & client.smembers(index_key(policy(), removed_day))


def test_a_rollback_resyncs_the_restored_rows(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    span = days(date(2024, 1, 20), date(2024, 1, 22))
    sync_published(
        wh, policy(), relation=FEATURES, partition_field=PF, partitions=span,
        version_id=f"{MODEL}@1", backfill_id="bf_first", client=client,
    )  # fmt: skip
    original = redis_rows(client)
    wh.ensure_schema("backfill_backups")
    backup = "backfill_backups.fct_driver_daily_features__bf_test"
    wh.backup_range(FEATURES, backup, PF, span[0], span[-1])

    def rewrite() -> None:
        wh.execute(
            f"update {FEATURES} set gross_earnings = gross_earnings * 2 where feature_date = $day",
            {"day": span[0]},
        )
        wh.execute(f"delete from {FEATURES} where feature_date = $day", {"day": span[1]})

    registered = publish(wh, span, rewrite, version_id=f"{MODEL}@2", backfill_id="bf_test")
    outcome = sync_published(
        wh, policy(), relation=FEATURES, partition_field=PF, partitions=span,
        version_id=f"{MODEL}@2", backfill_id="bf_test", chunk_no=1, client=client,
    )  # fmt: skip
    assert outcome.synced
    assert redis_rows(client) == warehouse_rows(wh, span) != original
    assert registered.status == "pending"  # recorded inside the publish transaction

    def restore() -> None:
        wh.copy_range(backup, FEATURES, PF, span[0], span[-1])

    publish(wh, span, restore, version_id=f"{MODEL}@3", backfill_id="bf_test", kind="rollback")
    outcome = sync_published(
        wh, policy(), relation=FEATURES, partition_field=PF, partitions=span,
        version_id=f"{MODEL}@3", backfill_id="bf_test", chunk_no=1, kind="rollback",
        client=client,
    )  # fmt: skip

    assert redis_rows(client) == original == warehouse_rows(wh, span)
    day_one = [k for k in original if k.endswith(span[0].isoformat())]
    day_two = [k for k in original if k.endswith(span[1].isoformat())]
    assert outcome.result is not None
    assert (outcome.result.upserted, outcome.result.deleted) == (len(day_one) + len(day_two), 0)
    syncs = OnlineSyncs(wh)
    assert [(r.version_id, r.kind, r.status) for r in syncs.history(MODEL)] == [
        (f"{MODEL}@3", "rollback", "synced"),
        (f"{MODEL}@2", "publish", "synced"),
        (f"{MODEL}@1", "publish", "synced"),
    ]
    assert syncs.pending() == []


def test_an_outage_leaves_the_publish_and_a_pending_sync_until_retried(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    client = redis_client(redis_server.url)  # the orchestrator's own client and timeouts
    first = days(date(2024, 1, 2), date(2024, 1, 4))
    sync_published(
        wh, policy(), relation=FEATURES, partition_field=PF, partitions=first,
        version_id=f"{MODEL}@1", backfill_id="bf_one", client=client,
    )  # fmt: skip
    client.save()  # the restart below loads what the server held: an outage, not a wipe
    redis_server.stop()

    second = days(date(2024, 1, 5), date(2024, 1, 6))
    before = wh.partition_stats(FEATURES, PF, second[0], second[-1])
    publish(
        wh, second, lambda: change_rows(wh, second), version_id=f"{MODEL}@2", backfill_id="bf_two"
    )
    started = time.perf_counter()
    outcome = sync_published(
        wh, policy(), relation=FEATURES, partition_field=PF, partitions=second,
        version_id=f"{MODEL}@2", backfill_id="bf_two", chunk_no=1, client=client,
    )  # fmt: skip
    seconds = time.perf_counter() - started

    # The publish stands; the sync waits, with the error's first line.
    assert wh.partition_stats(FEATURES, PF, second[0], second[-1]) != before
    assert outcome.record.status == "pending" and outcome.result is None
    assert outcome.record.error is not None
    assert outcome.record.error.startswith("ConnectionError: ")
    assert "\n" not in outcome.record.error
    assert seconds < 5
    syncs = OnlineSyncs(wh)
    assert [(r.sync_id, r.attempt) for r in syncs.pending(MODEL)] == [
        (f"{MODEL}@2/2024-01-05/2024-01-06", 1)
    ]

    # Still down: `backfill sync` records one more pending attempt and raises nothing.
    retried = retry_pending(wh, policy(), relation=FEATURES, partition_field=PF, client=client)
    assert [(o.record.status, o.record.attempt) for o in retried] == [("pending", 2)]

    redis_server.start()
    retried = retry_pending(wh, policy(), relation=FEATURES, partition_field=PF, client=client)

    assert [(o.record.status, o.record.attempt) for o in retried] == [("synced", 3)]
    assert syncs.pending() == []
    assert redis_rows(client) == warehouse_rows(wh, first + second)
    applied = redis_server.changes()
    assert retry_pending(wh, policy(), relation=FEATURES, partition_field=PF, client=client) == []
    assert redis_server.changes() == applied
    assert [r.status for r in syncs.attempts(f"{MODEL}@2/2024-01-05/2024-01-06")] == [
        "pending",
        "pending",
        "pending",
        "synced",
    ]


def test_a_sync_the_store_refuses_is_failed_and_retried(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    span = [date(2024, 1, 8)]
    key = sorted(warehouse_rows(wh, span))[0]
    client.set(key, "not a hash")  # the store refuses HGETALL on it: WRONGTYPE

    outcome = sync_published(
        wh, policy(), relation=FEATURES, partition_field=PF, partitions=span,
        version_id=f"{MODEL}@1", backfill_id="bf_x", client=client,
    )  # fmt: skip

    assert outcome.record.status == "failed"
    assert outcome.record.error is not None and outcome.record.error.startswith("ResponseError:")
    client.delete(key)
    retried = retry_pending(wh, policy(), relation=FEATURES, partition_field=PF, client=client)
    assert [o.record.status for o in retried] == ["synced"]
    assert redis_rows(client) == warehouse_rows(wh, span)


def test_a_key_column_the_relation_lacks_fails_the_sync_not_the_publish(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    bad = OnlinePolicy(MODEL, "redis", ("driver", "feature_date"), 30)
    outcome = sync_published(
        wh, bad, relation=FEATURES, partition_field=PF, partitions=[date(2024, 1, 8)],
        version_id=f"{MODEL}@1", backfill_id="bf_x", client=redis_server.client(),
    )  # fmt: skip
    assert outcome.record.status == "failed"
    assert outcome.record.error is not None
    assert "key column driver is not a column of the model" in outcome.record.error
    assert redis_server.client().dbsize() == 0


def test_a_partition_that_became_empty_loses_every_key(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    day = [date(2024, 1, 12)]
    sync_partitions(wh, FEATURES, PF, policy(), day, client, version_id=f"{MODEL}@1")
    assert redis_rows(client)
    wh.execute(f"delete from {FEATURES} where feature_date = $d", {"d": day[0]})

    result = sync_partitions(wh, FEATURES, PF, policy(), day, client, version_id=f"{MODEL}@2")

    assert result.keys == 0 and result.deleted > 0
    assert client.dbsize() == 0  # no row, and no index left behind


def test_days_after_the_data_sync_to_nothing(
    wh: DuckDBWarehouse, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    future = [date(2030, 1, 1) + timedelta(days=i) for i in range(2)]
    result = sync_partitions(wh, FEATURES, PF, policy(), future, client, version_id="v")
    assert (result.keys, result.commands) == (0, 0)
    assert client.dbsize() == 0


def test_an_unreachable_store_never_raises_out_of_the_hook(wh: DuckDBWarehouse) -> None:
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    outcome = sync_published(
        wh, policy(), relation=FEATURES, partition_field=PF, partitions=[date(2024, 1, 8)],
        version_id=f"{MODEL}@1", backfill_id="bf_x", client=client,
    )  # fmt: skip
    assert outcome.record.status == "pending"


def test_a_publish_that_rolls_back_leaves_no_sync(wh: DuckDBWarehouse) -> None:
    span = [date(2024, 1, 8)]
    before = wh.partition_stats(FEATURES, PF, span[0], span[0])
    assert retry_pending(wh, policy(), relation=FEATURES, partition_field=PF) == []

    def fail() -> None:
        change_rows(wh, [span[0], span[0]])
        raise RuntimeError("validation failed")

    with pytest.raises(RuntimeError):
        publish(wh, span, fail, version_id=f"{MODEL}@1", backfill_id="bf_failed")

    assert wh.partition_stats(FEATURES, PF, span[0], span[0]) == before
    assert OnlineSyncs(wh).pending() == []
    assert retry_pending(wh, policy(), relation=FEATURES, partition_field=PF) == []
