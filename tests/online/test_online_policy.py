"""`meta.backfill.online`: the feature mart's real YAML, and every bad block refused in one line."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import BadInput
from orchestrator.online import OnlinePolicy, index_key, online_policy_from_meta, row_key

REPO = Path(__file__).resolve().parents[2]
FEATURES_YAML = REPO / "models" / "marts" / "features" / "_features__models.yml"


def meta_with(online: Any, partition_field: str = "feature_date") -> dict[str, Any]:
    return {"backfill": {"partition_field": partition_field, "online": online}}


def test_the_feature_mart_declares_its_online_sink() -> None:
    model = yaml.safe_load(FEATURES_YAML.read_text())["models"][0]
    policy = online_policy_from_meta(model["name"], model["config"]["meta"])
    assert policy == OnlinePolicy(
        model="fct_driver_daily_features",
        store="redis",
        key=("driver_id", "feature_date"),
        ttl_days=30,
    )
    assert policy.prefix == "rideshare:fct_driver_daily_features"
    assert policy.ttl_seconds == 30 * 86_400


@pytest.mark.parametrize(
    "meta",
    [{}, {"backfill": {"partition_field": "d"}}, {"backfill": {"enabled": False}}],
    ids=["no meta", "no online block", "no backfill"],
)
def test_a_model_without_an_online_block_has_no_sink(meta: dict[str, Any]) -> None:
    assert online_policy_from_meta("fct_x", meta) is None


def test_key_may_be_one_column_and_ttl_may_be_left_out() -> None:
    policy = online_policy_from_meta("fct_x", meta_with({"store": "redis", "key": "day"}, "day"))
    assert policy == OnlinePolicy("fct_x", "redis", ("day",), None)
    assert policy.ttl_seconds is None


@pytest.mark.parametrize(
    ("online", "message"),
    [
        ("redis", "expected a mapping like {store: redis, key: [...], ttl_days: 30}, got 'redis'"),
        ({"store": "memcached", "key": ["feature_date"]}, "store must be one of redis, got 'mem"),
        ({"key": ["feature_date"]}, "store must be one of redis, got None"),
        ({"store": "redis"}, "key must be a non-empty list of column names, got None"),
        ({"store": "redis", "key": []}, "key must be a non-empty list of column names, got []"),
        ({"store": "redis", "key": ["feature_date", 3]}, "key column 3 is not a column name"),
        (
            {"store": "redis", "key": ["feature_date", "a b"]},
            "key column 'a b' is not a column name",
        ),
        (
            {"store": "redis", "key": ["feature_date", "feature_date"]},
            "key ['feature_date', 'feature_date'] names a column twice",
        ),
        (
            {"store": "redis", "key": ["driver_id"]},
            "key ['driver_id'] must include the partition field feature_date",
        ),
        (
            {"store": "redis", "key": ["feature_date"], "ttl_days": 0},
            "ttl_days must be a positive whole number of days, got 0",
        ),
        (
            {"store": "redis", "key": ["feature_date"], "ttl_days": True},
            "ttl_days must be a positive whole number of days, got True",
        ),
        (
            {"store": "redis", "key": ["feature_date"], "ttl_days": "30"},
            "ttl_days must be a positive whole number of days, got '30'",
        ),
        (
            {"store": "redis", "key": ["feature_date"], "ttl": 30},
            "unknown key ttl (known: store, key, ttl_days)",
        ),
    ],
)
def test_a_bad_online_block_is_bad_input_in_one_line(online: Any, message: str) -> None:
    with pytest.raises(BadInput) as raised:
        online_policy_from_meta("fct_x", meta_with(online))
    text = str(raised.value)
    assert text.startswith("model fct_x has an invalid meta.backfill.online block: ")
    assert message in text
    assert "\n" not in text


def test_a_key_column_the_model_lacks_is_refused() -> None:
    policy = OnlinePolicy("fct_x", "redis", ("driver", "feature_date"))
    policy.check_columns(["driver", "feature_date", "n"])
    with pytest.raises(BadInput, match="key column driver is not a column of the model"):
        policy.check_columns(["driver_id", "feature_date"])


def test_keys_are_unambiguous() -> None:
    policy = OnlinePolicy("fct_x", "redis", ("a", "day"))
    day = date(2024, 1, 2)
    assert row_key(policy, ["d1", day]) == "rideshare:fct_x:d1:2024-01-02"
    # A value holding the separator cannot collide with another pair of values.
    assert row_key(policy, ["a:b", "c"]) != row_key(policy, ["a", "b:c"])
    assert row_key(policy, ["a:b%", "c"]) == "rideshare:fct_x:a%3Ab%25:c"
    assert row_key(policy, [Decimal("1.50"), day]) == "rideshare:fct_x:1.50:2024-01-02"
    assert index_key(policy, day) == "rideshare:_partitions:fct_x:2024-01-02"
