"""Before the session starts: is another bridge already live on our topics?

Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio

import aiomqtt
import structlog

from goe2mqtt.mqtt.client import RETAINED_QUIET, MqttOptions, disconnect_cause, side_client
from goe2mqtt.mqtt.topics import ONLINE

log = structlog.get_logger()


async def another_live_instance(options: MqttOptions, heartbeat_topic: str, wait: float) -> bool:
    """Whether a live bridge already serves our topics.

    Its availability says online (retained) and its heartbeat (bridge info, refreshed
    every keepalive/4) still comes. A bridge that died without its will reaching the
    broker (killed while the broker was down) leaves "online" but no heartbeat.
    Unreachable broker: False, and the session's own retries will say why.
    """
    client = side_client(options, "preflight", timeout=5)
    try:
        async with client:
            await client.subscribe(options.availability_topic, qos=1)
            async with asyncio.timeout(RETAINED_QUIET * 2):
                async for message in client.messages:
                    if message.payload != ONLINE.encode():
                        return False
                    break
            log.info("checking_for_another_instance", topic=heartbeat_topic, wait=wait)
            await client.subscribe(heartbeat_topic, qos=0)
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if message.topic.matches(heartbeat_topic) and not message.retain:
                        return True
    except (TimeoutError, aiomqtt.MqttError):
        return False
    finally:
        disconnect_cause(client)  # a cut connection's error told: never "never retrieved"
    return False
