"""Bridge topics an earlier layout of this installation left retained.

A bridge that becomes shards publishes ``{base}/bridge/shard-{i}/availability`` and
``.../info``; the un-sharded ``{base}/bridge/availability`` ("offline") and its last
``info`` stayed retained for ever, and every new subscriber read a bridge that no longer
exists. So did ``shard-{i}`` for an i past a smaller ``shard.count``, and every shard's
after going back to one instance. One bridge per installation looks (the un-sharded
one, or shard 0: as it answers commands for nobody's chargers) when it starts, and
clears the availability and info of a layout not its own unless that one says
``online``: a bridge that still runs there (a mistake worth a line, not a clear), or
one killed while the broker was down (README "Fleets: shards" has the one line that
clears it).
"""

from __future__ import annotations

import re

from goe2mqtt.mqtt.session import Subscription
from goe2mqtt.mqtt.topics import BRIDGE_LEAF, Topics

_SHARD = re.compile(r"shard-(0|[1-9][0-9]{0,8})\Z")  # shard.count is at most 1024


def stale_bridge_subscriptions(topics: Topics, shards: int | None) -> list[Subscription]:
    """What the looking bridge reads once (retained only); nothing for the other shards."""
    if topics.shard not in (None, 0):
        return []
    wanted = [Subscription(f"{topics.base}/{BRIDGE_LEAF}/+/availability", qos=0,
                           retained_only=True)]  # fmt: skip
    if shards is not None:
        wanted.append(
            Subscription(f"{topics.base}/{BRIDGE_LEAF}/availability", qos=0, retained_only=True)
        )
    return wanted


def stale_bridge(topics: Topics, shards: int | None, topic: str) -> Topics | None:
    """The topics of the earlier bridge whose availability this is, when that bridge is
    not one of this layout's (None: not a bridge's availability, or one of ours)."""
    root = f"{topics.base}/{BRIDGE_LEAF}/"
    if topic == root + "availability":
        return None if shards is None else Topics(topics.base)
    if not (topic.startswith(root) and topic.endswith("/availability")):
        return None
    middle = topic[len(root) : -len("/availability")]
    match = _SHARD.match(middle)
    if match is None:
        return None  # not a topic any goe2mqtt publishes
    index = int(match.group(1))
    if shards is not None and index < shards:
        return None  # a shard of this layout: its own to say
    return Topics(topics.base, shard=index)
