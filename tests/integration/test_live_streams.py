"""The status page's live streams (/events) are bounded by http.max_streams: one more
is refused with 503 and Retry-After, /metrics and the page's header count them, and a
stream its page abandons gives its slot back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import WAIT, make_settings
from ..web import web_daemon

LIMIT = 3


async def stream_figures(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """goe2mqtt_http_streams* from a scrape: open, limit, refused."""
    async with session.get(url + "/metrics") as answer:
        assert answer.status == 200
        text = await answer.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("goe2mqtt_http_streams")
    }


async def until_open(session: aiohttp.ClientSession, url: str, count: int) -> None:
    """Until /metrics says count streams are open (bounded: liveness, not speed)."""

    async def poll() -> None:
        while (await stream_figures(session, url))["goe2mqtt_http_streams"] != count:  # noqa: ASYNC110 - the count is the daemon's
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), WAIT)
    except TimeoutError:
        figures = await stream_figures(session, url)
        raise AssertionError(f"never {count} streams open: {figures}") from None


async def until_listed(session: aiohttp.ClientSession, url: str, name: str) -> None:
    """Until the bridge has the charger (its page answers 200)."""

    async def poll() -> None:
        while True:
            async with session.get(f"{url}/charger/{name}") as answer:
                if answer.status == 200:
                    return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), WAIT)


@contextlib.asynccontextmanager
async def opened(session: aiohttp.ClientSession, url: str) -> AsyncIterator[None]:
    """A live stream held open: its first line read, so the bridge has taken its slot."""
    async with session.get(url + "/events") as stream:
        assert stream.status == 200
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"retry:")
        yield


async def test_one_stream_past_the_limit_is_refused_counted_and_let_in_once_one_closes(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, chargers=("garage",))
    raw["http"]["max_streams"] = LIMIT
    async with (
        web_daemon(tmp_path, raw) as (_, url),
        aiohttp.ClientSession() as session,
        contextlib.AsyncExitStack() as held,
    ):
        await until_listed(session, url, "garage")
        for _ in range(LIMIT):
            await held.enter_async_context(opened(session, url))
        async with session.get(url + "/events") as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "30"
            assert "http.max_streams" in await refused.text()
        async with session.get(url + "/events?charger=garage") as refused:
            assert refused.status == 503  # a charger's page counts the same
        async with session.head(url + "/events") as asked:  # the page's script asks so
            assert asked.status == 503
            assert asked.headers["Retry-After"] == "30"
        figures = await stream_figures(session, url)
        assert figures == {
            "goe2mqtt_http_streams": LIMIT,
            "goe2mqtt_http_streams_limit": LIMIT,
            "goe2mqtt_http_streams_refused_total": 2,
        }
        async with session.get(url + "/") as page:
            assert f'data-h="streams">{LIMIT} of {LIMIT}<' in await page.text()
        await held.aclose()  # the pages close
        await until_open(session, url, 0)
        async with session.head(url + "/events") as asked:
            assert asked.status == 200
        async with opened(session, url):
            assert (await stream_figures(session, url))["goe2mqtt_http_streams"] == 1


async def test_streams_opened_and_abandoned_by_the_hundred_leave_none_counted(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, chargers=("garage",))
    raw["http"]["max_streams"] = 10
    async with web_daemon(tmp_path, raw) as (_, url), aiohttp.ClientSession() as session:
        await until_listed(session, url, "garage")
        for _ in range(10):
            async with contextlib.AsyncExitStack() as held:
                for _ in range(10):
                    await held.enter_async_context(opened(session, url))
            await until_open(session, url, 0)
            # Abandoned in other ways too: before its first line is read, and a stream
            # for no charger (404) and a HEAD never take one.
            async with session.get(url + "/events?charger=garage") as stream:
                assert stream.status == 200
            async with session.get(url + "/events?charger=nobody") as missing:
                assert missing.status == 404
            async with session.head(url + "/events") as asked:
                assert asked.status == 200
            await until_open(session, url, 0)
        figures = await stream_figures(session, url)
        assert figures["goe2mqtt_http_streams_refused_total"] == 0
