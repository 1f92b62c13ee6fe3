"""Helpers for tests of the operator's HTTP surface: the daemon's address, requests."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from .conftest import Daemon, until, write_config


async def listening(daemon: Daemon) -> str:
    """The base URL the daemon's HTTP server took (the config may say port 0)."""

    def found() -> str | None:
        for event in daemon.events():
            if event.get("event") == "http_listening":
                return str(event["listen"])
        return None

    await until(lambda: found() is not None or not daemon.running, "http_listening")
    listen = found()
    assert listen is not None, daemon.stderr.decode()[-3000:]
    return f"http://{listen}"


async def serving(daemon: Daemon) -> str:
    """The base URL once the bridge has its chargers (bridge_started). The server listens
    before start-up's look for another live bridge: a page opened then lists none, true
    of that moment, and a test that read the rows at once failed on a fast machine."""
    url = await listening(daemon)
    await until(
        lambda: (
            any(e.get("event") == "bridge_started" for e in daemon.events()) or not daemon.running
        ),
        "bridge_started",
    )
    return url


@contextlib.asynccontextmanager
async def web_daemon(folder: Path, raw: dict[str, Any]) -> AsyncIterator[tuple[Daemon, str]]:
    """goe2mqtt run with this config, as its own process; its base URL."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    daemon = Daemon(write_config(folder, raw))
    await daemon.start()
    try:
        yield daemon, await listening(daemon)
    finally:
        if daemon.running:
            await daemon.end(signal.SIGTERM)


async def get(url: str, **options: Any) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, allow_redirects=False, **options) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
