"""A broker that drops the bridge right after accepting it: the log names a lost
connection, not a refused password (issue 27, item 15)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import structlog

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.simulator import Simulator
from tests.conftest import RunningBridge, make_settings, until

CONNACK_V5 = b"\x20\x03\x00\x00\x00"  # session present 0, success, no properties


async def test_a_broker_that_drops_us_after_connack_is_not_called_an_auth_refusal(
    simulator: Simulator,
) -> None:
    accepted: list[int] = []

    async def drop_after_connack(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(4096)  # the CONNECT
        writer.write(CONNACK_V5)
        await writer.drain()
        accepted.append(1)
        writer.close()  # gone before the bridge can subscribe

    server = await asyncio.start_server(drop_after_connack, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    broker = SimpleNamespace(host="127.0.0.1", port=port)  # what make_settings reads
    settings = parse_settings(make_settings(broker, simulator))  # type: ignore[arg-type]
    running = RunningBridge(settings)
    with structlog.testing.capture_logs() as logs:
        await running.start()
        try:
            await until(
                lambda: any(e["event"] == "mqtt_disconnected" for e in logs), "the drop logged"
            )
        finally:
            await running.stop()
            server.close()
            await server.wait_closed()
    drops = [e for e in logs if e["event"] in ("mqtt_disconnected", "mqtt_connect_failed")]
    assert accepted
    assert not any(e["cause"].startswith("auth") for e in drops), drops
    assert drops[0]["cause"].startswith("lost: "), drops
