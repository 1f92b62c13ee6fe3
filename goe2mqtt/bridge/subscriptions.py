"""What the bridge's MQTT session subscribes, besides the inputs its config names (the
ledger's prices, the sites' meters and commands): the chargers' commands, what earlier
runs left retained, and the topics of ours that others may write."""

from __future__ import annotations

from collections.abc import Sequence

from goe2mqtt.bridge.housekeeping import housekeeping_subscriptions
from goe2mqtt.bridge.stale_bridges import stale_bridge_subscriptions
from goe2mqtt.bridge.watched import watched_subscriptions
from goe2mqtt.mqtt.session import Subscription
from goe2mqtt.mqtt.topics import Topics


def session_subscriptions(
    topics: Topics, owned: Sequence[str], *, prefix: str | None, shards: int | None
) -> list[Subscription]:
    # QoS 1 on a persistent session: commands sent while we are away wait for us.
    # no_local keeps our own results (same topic level) from coming back to us.
    commands = Subscription(topics.command_filter, qos=1, no_local=True, retain_as_published=True)
    return [
        commands,
        *housekeeping_subscriptions(topics, prefix),
        *stale_bridge_subscriptions(topics, shards),
        *watched_subscriptions(topics, owned),  # others' writes answered
    ]
