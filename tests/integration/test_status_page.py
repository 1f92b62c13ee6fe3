"""The status page in a real Chromium: live, escaped, filtered, paged and guarded."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from playwright.async_api import Dialog, Page, expect

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.sim.simulator import Simulator

from ..browser import chromium
from ..conftest import SERIALS, TOKEN, WAIT, Daemon, make_settings, write_config
from ..web import free_port, listening, serving

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_CARD = "</script><script>alert(1)</script>"
LIVE_WITHIN_MS = 2000  # issue 29: a change reaches the open page within 2 s
SCREENSHOT = os.environ.get("STATUS_PAGE_SCREENSHOT")  # where to keep the README's picture


def cell(name: str, field: str) -> str:
    return f'#fleet tr[data-name="{name}"] td[data-f="{field}"]'


async def start(config: Path) -> Daemon:
    daemon = Daemon(config)
    await daemon.start()
    await serving(daemon)
    return daemon


async def test_the_page_is_live_escapes_hostile_names_and_comes_back_after_a_restart(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    garage = simulator.charger(SERIALS["garage"])
    garage.friendly_name = HOSTILE_NAME
    garage.card_names[0] = HOSTILE_CARD
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    port = free_port()  # the same address after the restart
    raw["http"]["listen"] = f"127.0.0.1:{port}"
    config = write_config(tmp_path, raw)
    url = f"http://127.0.0.1:{port}"
    dialogs: list[str] = []
    daemon = await start(config)
    try:
        async with chromium() as browser:
            page = await browser.new_page()

            async def dialog(opened: Dialog) -> None:
                dialogs.append(opened.message)
                await opened.dismiss()

            page.on("dialog", dialog)
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            await page.goto(url + "/")
            assert await rows_shown(page) == ["garage", "carport"]
            await page.wait_for_selector("#live.up")  # the stream is open
            # One request for the page, its script and style inside (allowed by their
            # hashes): on a busy bridge each request waits its turn. Then its stream.
            assert asked == [url + "/", url + "/events?"]
            await expect(page.locator(cell("garage", "own_name"))).to_have_text(HOSTILE_NAME)
            assert await page.locator(f"{cell('garage', 'own_name')} img").count() == 0

            # Live: a car plugged in on the simulator shows without a reload.
            assert await page.text_content(cell("carport", "car")) == "idle"
            simulator.charger(SERIALS["carport"]).plug_in()
            await expect(page.locator(cell("carport", "car"))).to_have_text(
                "charging", timeout=LIVE_WITHIN_MS
            )
            assert (await page.text_content(cell("carport", "power"))) != "0 W"
            if SCREENSHOT:
                await page.screenshot(path=SCREENSHOT, full_page=True)

            # A charger's own page: every entity, hostile texts as text.
            charger_page = await browser.new_page()
            charger_page.on("dialog", dialog)
            await charger_page.goto(url + "/charger/garage")
            states = await charger_page.locator("#states td[data-s]").evaluate_all(
                "cells => Object.fromEntries(cells.map(c => [c.dataset.s, c.textContent]))"
            )
            assert states["name"] == HOSTILE_NAME
            assert states["card_0_name"] == HOSTILE_CARD
            assert await charger_page.locator("#states img, #states script").count() == 0
            await charger_page.wait_for_selector("#live.up")

            # The bridge restarts: the open page reconnects by itself and updates again.
            assert await daemon.end(signal.SIGTERM) == 0
            await page.wait_for_selector("#live.down")
            daemon = await start(config)
            await page.wait_for_selector("#live.up", timeout=WAIT * 1000)
            simulator.charger(SERIALS["carport"]).unplug()
            await expect(page.locator(cell("carport", "car"))).to_have_text(
                "idle", timeout=WAIT * 1000
            )
    finally:
        if daemon.running:
            await daemon.end(signal.SIGTERM)
    assert dialogs == []  # nothing a charger said ran as script


@contextlib.asynccontextmanager
async def page_of(folder: Path, raw: dict[str, Any]) -> AsyncIterator[tuple[Page, str]]:
    """The bridge on this config, as its own process, once it serves its chargers: a
    browser's new page and the bridge's base URL. The bridge is stopped at the end."""
    daemon = Daemon(write_config(folder, raw))
    await daemon.start()
    try:
        url = await serving(daemon)
        async with chromium() as browser:
            yield await browser.new_page(), url
    finally:
        await daemon.end(signal.SIGTERM)


async def rows_shown(page: Page) -> list[str]:
    names: list[str] = await page.locator("#fleet tbody tr").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-name'))"
    )
    return names


async def test_filter_and_paging_with_200_chargers(broker: MosquittoBroker, tmp_path: Path) -> None:
    serials = [f"{n:06d}" for n in range(300000, 300200)]
    simulator = Simulator(SimulatedCharger(serial, TOKEN) for serial in serials)
    await simulator.start()
    raw: dict[str, Any] = make_settings(broker, simulator)
    raw["chargers"] = [
        {"name": f"c{serial}", "serial": serial, "token": TOKEN,
         "api_url": simulator.url_for(serial), "scan_interval": 5}
        for serial in serials
    ]  # fmt: skip
    try:
        async with page_of(tmp_path, raw) as (page, url):
            await page.goto(url + "/")
            assert await rows_shown(page) == [f"c{s}" for s in serials[:50]]
            assert (await page.text_content("#pages") or "").startswith("200 chargers, page 1 of 4")
            await page.click("#next")
            await page.wait_for_url("**/?page=2")
            assert await rows_shown(page) == [f"c{s}" for s in serials[50:100]]
            # Typing filters (after a short pause): 10 names hold "c30011".
            await page.fill('input[name="q"]', "c30011")
            await page.wait_for_url("**/?q=c30011*")
            assert await rows_shown(page) == [f"c3001{n}" for n in range(10, 20)]
            assert (await page.text_content("#pages") or "").startswith("10 chargers, page 1 of 1")
            await page.select_option('select[name="transport"]', "websocket")
            await page.wait_for_url("**transport=websocket*")
            assert await rows_shown(page) == []  # every one polls
            await page.goto(url + "/?size=100&page=2")
            assert await rows_shown(page) == [f"c{s}" for s in serials[100:200]]
    finally:
        await simulator.stop()


async def test_with_a_token_the_page_works_in_a_browser_through_its_cookie(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    secret = "page-tok-6b1d93e0"
    token_file = tmp_path / "token"
    token_file.write_text(secret)
    token_file.chmod(0o600)
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    raw["http"]["token_file"] = str(token_file)
    async with page_of(tmp_path, raw) as (page, url):
        answer = await page.goto(url + "/")
        assert answer is not None
        assert answer.status == 401
        await page.goto(f"{url}/?token={secret}")
        assert page.url == url + "/"  # the token left the address bar
        assert await rows_shown(page) == ["garage", "carport"]
        await page.wait_for_selector("#live.up")  # the stream, by the cookie too
        assert secret not in await page.evaluate("document.cookie")  # HttpOnly
        simulator.charger(SERIALS["garage"]).plug_in()
        await expect(page.locator(cell("garage", "car"))).to_have_text(
            "charging", timeout=WAIT * 1000
        )
        assert secret not in await page.content()


async def test_a_page_past_http_max_streams_says_it_is_not_live(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """EventSource cannot tell a refusal (503) from a restart: the script asks with HEAD
    and then waits Retry-After (30 s), not a second as after a restart."""
    raw = make_settings(broker, simulator, chargers=("garage",))
    raw["http"]["max_streams"] = 1
    daemon = await start(write_config(tmp_path, raw))
    try:
        url = await listening(daemon)
        async with chromium() as browser:
            first = await browser.new_page()
            await first.goto(url + "/")
            await first.wait_for_selector("#live.up")
            await expect(first.locator('[data-h="streams"]')).to_have_text("1 of 1")
            second = await browser.new_page()
            asked: list[str] = []
            second.on("request", lambda request: asked.append(request.method))
            await second.goto(url + "/")
            await expect(second.locator("#live")).to_have_text(
                "not live: too many pages open, retrying", timeout=WAIT * 1000
            )
            assert asked == ["GET", "GET", "HEAD"]  # the page, its stream, the question
            await first.close()
    finally:
        await daemon.end(signal.SIGTERM)
