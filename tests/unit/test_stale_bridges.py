"""Which bridge availability topics belong to a shard layout no longer in use."""

from __future__ import annotations

import pytest

from goe2mqtt.bridge.stale_bridges import stale_bridge, stale_bridge_subscriptions
from goe2mqtt.mqtt.topics import Topics


@pytest.mark.parametrize(
    ("shard", "shards", "topic", "earlier"),
    [
        (None, None, "b/bridge/availability", None),  # our own
        (None, None, "b/bridge/shard-0/availability", Topics("b", 0)),
        (None, None, "b/bridge/shard-12/availability", Topics("b", 12)),
        (0, 2, "b/bridge/availability", Topics("b")),
        (0, 2, "b/bridge/shard-1/availability", None),  # this layout's
        (0, 2, "b/bridge/shard-2/availability", Topics("b", 2)),
        (None, None, "b/bridge/shard-01/availability", None),  # no goe2mqtt's
        (None, None, "b/bridge/other/availability", None),
        (None, None, "b/bridge/shard-1/info", None),
        (None, None, "b/garage/availability", None),
        (None, None, "bb/bridge/shard-1/availability", None),
        (None, None, "b/bridge/shard-1/x/availability", None),
        (None, None, "b/bridge/shard-1023/availability", Topics("b", 1023)),
        # No goe2mqtt's either (count <= 1024), and int() of 5000 digits raised: a
        # traceback in the log per such retained message.
        (None, None, f"b/bridge/shard-{'9' * 5000}/availability", None),
    ],
)
def test_a_bridge_of_another_layout(
    shard: int | None, shards: int | None, topic: str, earlier: Topics | None
) -> None:
    assert stale_bridge(Topics("b", shard), shards, topic) == earlier


def test_only_the_single_bridge_or_shard_0_looks() -> None:
    assert [s.topic for s in stale_bridge_subscriptions(Topics("b"), None)] == [
        "b/bridge/+/availability"
    ]
    looking = stale_bridge_subscriptions(Topics("b", 0), 3)
    assert [s.topic for s in looking] == ["b/bridge/+/availability", "b/bridge/availability"]
    assert all(s.retained_only for s in looking)
    assert stale_bridge_subscriptions(Topics("b", 1), 3) == []
