"""`goe2mqtt check-config --connect`: try the broker and every charger, say what is wrong.

A config can be valid and still not work: a broker that refuses the password, a
token the cloud does not accept, a serial that is somebody else's typo. One line per
thing tried, in words a newcomer can act on. Each charger is tried through the
transport the daemon would use (goe/factory builds it, as for the daemon): a pushing
one until it pushes or says why not, then every one is asked for its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiomqtt

from goe2mqtt import __version__
from goe2mqtt.bridge.own_mqtt import StreamBroker
from goe2mqtt.bridge.startup import session_options
from goe2mqtt.config.settings import ChargerSettings, Settings
from goe2mqtt.goe.factory import open_transport
from goe2mqtt.goe.transport import (
    AuthFailed,
    ChargerOffline,
    GoeError,
    PushTransport,
    Transport,
)
from goe2mqtt.mqtt.client import connect_cause, side_client
from goe2mqtt.mqtt.topics import Topics

TIMEOUT = 10.0
_FACTS = ("sse", "typ", "fwv", "car")


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.what}: {self.detail}"


async def check_broker(settings: Settings) -> Check:
    mqtt = settings.mqtt
    what = f"MQTT broker {mqtt.host}:{mqtt.port}"
    options = session_options(settings, Topics(mqtt.base_topic))
    try:
        async with side_client(options, "check", timeout=TIMEOUT):
            pass
    except aiomqtt.MqttError as exc:
        return Check(False, what, f"{connect_cause(exc)} ({exc})")
    tls = " over TLS" if mqtt.tls is not None else ""
    user = f" as {mqtt.username}" if mqtt.username else ""
    return Check(True, what, f"connected{tls}{user} (MQTT {mqtt.protocol})")


def charger_label(charger: ChargerSettings) -> str:
    if charger.resolved_transport == "mqtt":
        return f"charger {charger.name} (its own MQTT, serial {charger.serial})"
    where = f"cloud, serial {charger.serial}" if charger.api == "cloud" else charger.host
    return f"charger {charger.name} ({where})"


async def check_charger(transport: Transport, charger: ChargerSettings) -> Check:
    """Ask the charger through its transport: who it is, or why it does not answer."""
    what = charger_label(charger)
    verb = "answers"
    if isinstance(transport, PushTransport):
        await _settle(transport)
        if not transport.live:  # the reason, and what serves it meanwhile
            return Check(False, what, transport.connection)
        verb = transport.connection  # websocket, cloud websocket, mqtt
    try:
        status = await transport.status(_FACTS)
    except AuthFailed:
        return Check(False, what, "token rejected (401): copy the API key from the go-e app again")
    except ChargerOffline as exc:
        return Check(False, what, f"{exc}: is the charger online and its cloud API enabled?")
    except GoeError as exc:
        return Check(False, what, str(exc))
    serial = status.get("sse")
    if charger.serial is not None and isinstance(serial, str) and serial != charger.serial:
        return Check(False, what, f"answers as serial {serial}, not {charger.serial}")
    return Check(True, what, f"{verb}: {_facts(status)}")


def _facts(status: Mapping[str, Any]) -> str:
    said = [str(status["typ"])] if "typ" in status else []
    said += [f"{name} {status[key]}" for key, name in (("fwv", "firmware"), ("sse", "serial"))
             if key in status]  # fmt: skip
    # A charger on its own MQTT sends every key only now and then (the changed ones at once).
    return ", ".join(said) or "heard; model, firmware and serial not yet (sent now and then)"


async def _settle(transport: PushTransport) -> None:
    """Let a pushing transport connect: until it says its state changed, at most TIMEOUT."""
    settled = asyncio.Event()

    async def ignore(values: Mapping[str, Any], full: bool) -> None:
        return None

    pushing = asyncio.create_task(transport.push(ignore, settled.set))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled.wait(), TIMEOUT)
    finally:
        pushing.cancel()
        await asyncio.wait({pushing})


async def check_connections(settings: Settings) -> list[Check]:
    """The broker and every charger this instance would serve, tried at once."""
    headers = {"User-Agent": f"goe2mqtt/{__version__}"}
    options = session_options(settings, Topics(settings.mqtt.base_topic))
    # A client id of its own: a running daemon's connection is not taken over.
    broker = StreamBroker(dataclasses.replace(options, client_id=f"{options.client_id}-check"))
    async with aiohttp.ClientSession(headers=headers) as http:
        chargers = settings.owned_chargers()
        transports = [open_transport(http, c, broker=broker) for c in chargers]
        listening = asyncio.create_task(broker.run()) if broker.wanted else None
        try:
            return list(
                await asyncio.gather(
                    check_broker(settings),
                    *(check_charger(t, c) for t, c in zip(transports, chargers, strict=True)),
                )
            )
        finally:
            if listening is not None:
                listening.cancel()
                await asyncio.wait({listening})
