"""A simulated charger that publishes to MQTT itself, as go-e firmware 055+ does.

Every key on {prefix}/{serial}/{key} (JSON, QoS 0, not retained): changed keys each
``interval``, every key each ``republish``; writes on {key}/set answered on
{key}/result ("success" or the reason) through the same checks as the HTTP API.
``leading_slash`` plays firmware before ~055.7 (/go-eCharger/...).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt

from goe2mqtt.sim.charger import SimulatedCharger

# Keys the charger will not take over MQTT (its own answer, from the facts file).
NOT_FROM_MQTT = frozenset({"mcu", "mce", "mtp", "mcr"})


class MqttCharger:
    def __init__(
        self,
        charger: SimulatedCharger,
        host: str,
        port: int,
        *,
        prefix: str = "go-eCharger",
        interval: float = 1.0,
        republish: float = 30.0,
        leading_slash: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.charger = charger
        self._host, self._port = host, port
        self.base = f"{'/' if leading_slash else ''}{prefix}/{charger.serial}"
        self._username, self._password = username, password  # its broker user (mcu)
        self.interval = interval
        self.republish = republish
        self.silent = False  # stops publishing (a charger off the network)
        self.results: list[tuple[str, str]] = []  # (key, answer) of every write

    async def run(self) -> None:
        """Publish and take writes until cancelled (reconnecting to the broker)."""
        while True:
            try:
                async with aiomqtt.Client(
                    self._host, self._port, identifier=f"go-e-{self.charger.serial}",
                    username=self._username, password=self._password,
                ) as client:  # fmt: skip
                    await client.subscribe(f"{self.base}/+/set", qos=1)
                    writer = asyncio.create_task(self._take_writes(client))
                    try:
                        await self._publish(client)
                    finally:
                        writer.cancel()  # waited for without taking our own cancel
                        await asyncio.wait({writer})
                        if not writer.cancelled() and writer.exception() is not None:
                            raise aiomqtt.MqttError("the write listener ended")
            except aiomqtt.MqttError:
                await asyncio.sleep(1.0)  # firmware 60.4+ reconnects; so do we

    async def _publish(self, client: aiomqtt.Client) -> None:
        last: dict[str, Any] = {}
        full_at = 0.0
        while True:
            if not self.silent:
                now = self.charger.status()
                everything = time.monotonic() - full_at >= self.republish
                if everything:
                    full_at = time.monotonic()
                for key, value in now.items():
                    if everything or key not in last or last[key] != value:
                        await client.publish(f"{self.base}/{key}", json.dumps(value), qos=0)
                last = now
            await asyncio.sleep(self.interval)

    async def _take_writes(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            key = message.topic.value[len(self.base) + 1 :].removesuffix("/set")
            payload = message.payload if isinstance(message.payload, bytes) else b""
            answer = self._apply(key, payload)
            self.results.append((key, answer))
            await client.publish(f"{self.base}/{key}/result", answer, qos=0)

    def _apply(self, key: str, payload: bytes) -> str:
        if key in NOT_FROM_MQTT:
            return "api key is not allowed from mqtt"
        charger = self.charger
        charger.set_requests += 1
        if charger.faults.reject_sets:
            return "rejected (simulated)"
        if charger.faults.drop_sets:
            charger.dropped_sets.append({key: payload.decode("utf-8", "replace")})
            return "success"
        _, answers = charger.apply_set({key: payload.decode("utf-8", "replace")})
        answer = answers.get(key)
        return "success" if answer is True else str(answer)
