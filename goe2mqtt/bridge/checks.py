"""`goe2mqtt check-config --connect`: try the broker and every charger, say what is wrong.

A config can be valid and still not work: a broker that refuses the password, a
token the cloud does not accept, a serial that is somebody else's typo. One line per
thing tried, in words a newcomer can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
import aiomqtt

from goe2mqtt import __version__
from goe2mqtt.bridge.process import session_options
from goe2mqtt.config.settings import ChargerSettings, Settings
from goe2mqtt.goe.channels import goe_client, open_transport
from goe2mqtt.goe.client import AuthFailed, ChargerOffline, GoeError
from goe2mqtt.goe.push import WebSocketTransport
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


async def check_charger(
    http: aiohttp.ClientSession, charger: ChargerSettings, settings: Settings
) -> Check:
    where = f"cloud, serial {charger.serial}" if charger.api == "cloud" else charger.host
    what = f"charger {charger.name} ({where})"
    if charger.channel == "mqtt":
        return await check_own_mqtt(charger, settings)
    if charger.channel == "websocket":
        return await check_websocket(http, charger, what)
    try:
        status = await goe_client(http, charger, timeout=TIMEOUT).status(_FACTS)
    except AuthFailed:
        return Check(False, what, "token rejected (401): copy the API key from the go-e app again")
    except ChargerOffline as exc:
        return Check(False, what, f"{exc}: is the charger online and its cloud API enabled?")
    except GoeError as exc:
        return Check(False, what, str(exc))
    serial = status.get("sse")
    if charger.serial is not None and isinstance(serial, str) and serial != charger.serial:
        return Check(False, what, f"answers as serial {serial}, not {charger.serial}")
    model, firmware = status.get("typ", "go-e charger"), status.get("fwv", "?")
    return Check(True, what, f"answers: {model}, firmware {firmware}, serial {serial}")


async def check_websocket(
    http: aiohttp.ClientSession, charger: ChargerSettings, what: str
) -> Check:
    """Open the charger's websocket once: authenticated and a full status, or why not."""
    transport = open_transport(http, charger)
    assert isinstance(transport, WebSocketTransport)
    settled = asyncio.Event()

    async def ignore(values: object, full: bool) -> None:
        return None

    pushing = asyncio.create_task(transport.push(ignore, settled.set))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled.wait(), TIMEOUT)
    finally:
        pushing.cancel()
        await asyncio.wait({pushing})
    link = transport.link
    if not link.live:
        return Check(False, f"{what} websocket", link.reason)
    hello = link.hello
    return Check(True, f"{what} websocket",
                 f"authenticated: {hello.get('devicetype', 'go-e charger')}, firmware"
                 f" {hello.get('version', '?')}, serial {hello.get('serial', '?')}")  # fmt: skip


async def check_own_mqtt(charger: ChargerSettings, settings: Settings) -> Check:
    """transport mqtt: is the charger heard on the broker?"""
    base = f"{charger.mqtt_prefix.lstrip('/')}/{charger.serial}"
    what = f"charger {charger.name} (its own MQTT, {base}/+)"
    options = session_options(settings, Topics(settings.mqtt.base_topic))
    try:
        async with side_client(options, f"check-{charger.name}", timeout=TIMEOUT) as client:
            await client.subscribe(f"{base}/+")
            await client.subscribe(f"/{base}/+")
            async with asyncio.timeout(TIMEOUT):
                async for message in client.messages:
                    return Check(True, what, f"heard: {message.topic.value}")
    except TimeoutError:
        pass
    except aiomqtt.MqttError as exc:
        return Check(False, what, f"broker: {connect_cause(exc)}")
    return Check(False, what, f"nothing heard in {TIMEOUT:.0f} s: is the charger's MQTT (mce)"
                 " on, and does it use this broker (mcu) and prefix (mtp)?")  # fmt: skip


async def check_connections(settings: Settings) -> list[Check]:
    """The broker and every charger this instance would poll, tried at once."""
    headers = {"User-Agent": f"goe2mqtt/{__version__}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        return list(
            await asyncio.gather(
                check_broker(settings),
                *(check_charger(http, c, settings) for c in settings.owned_chargers()),
            )
        )
