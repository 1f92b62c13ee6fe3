"""A hostile charger on the LAN behind the local HTTP API v2: the words it answers with
are its own, and reach the operator's screens only as printable text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from goe2mqtt.goe.client import _interpret_local
from goe2mqtt.goe.transport import GoeError
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import WAIT, make_settings
from ..web import get, web_daemon

# JSON's escapes make a lone surrogate (no UTF-8 holds it) and a terminal's escape
# sequence (clear the screen); the charger's "reason" is its own text.
HOSTILE_REASON = b'{"reason": "spoofed \\ud800 \\u001b[2J end"}'


@pytest.fixture
async def hostile_charger() -> AsyncIterator[str]:
    """host:port of a local API that refuses every request (403) with a hostile reason."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, body=HOSTILE_REASON, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_chargers_reason_with_a_lone_surrogate_does_not_take_the_status_page_down(
    broker: MosquittoBroker, simulator: Simulator, hostile_charger: str, tmp_path: Path
) -> None:
    """Its 403's reason became the charger's offline reason verbatim: the fleet page for
    every charger answered 500 (UTF-8 cannot encode the surrogate) and its live stream
    broke at each tick; the terminal's escape went out as it came."""
    raw = make_settings(broker, simulator)
    raw["chargers"] = [{"name": "garage", "host": hostile_charger, "scan_interval": 0.3}]
    folder = tmp_path / "daemon"
    async with web_daemon(folder, raw) as (_, url):

        async def page_told() -> tuple[int, str]:
            """The fleet page once it says something of the charger's answer (or fails)."""
            async with asyncio.timeout(WAIT):  # a liveness bound
                while True:
                    status, body, _ = await get(url + "/")
                    if status != 200 or "spoofed" in body:
                        return status, body
                    await asyncio.sleep(0.05)

        status, body = await page_told()
        assert status == 200, body[:300]
        assert "spoofed ? ?[2J end" in body
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/events") as stream,
        ):
            await stream.content.readuntil(b"\n\n")  # retry:
            event = (await stream.content.readuntil(b"\n\n")).decode()
            assert "spoofed ? ?[2J end" in event


@pytest.mark.parametrize(
    ("status", "body", "keys"),
    [
        (403, HOSTILE_REASON, set()),
        (422, HOSTILE_REASON, set()),
        (500, b'{"amp": "spoofed \\ud800 \\u001b[2J end"}', {"amp"}),  # a refused set
    ],
)
def test_every_text_a_charger_answers_with_is_printable(
    status: int, body: bytes, keys: set[str]
) -> None:
    with pytest.raises(GoeError) as raised:
        _interpret_local(status, body, set_keys=keys)
    assert "spoofed ? ?[2J end" in str(raised.value)
